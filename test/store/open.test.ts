import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { cellId, hostId, vmId } from "../../src/model/index.js";
import {
  APPLICATION_ID,
  IN_MEMORY,
  MIGRATIONS,
  SCHEMA_VERSION,
  StoreError,
  openDatabase,
  openHistory,
  type SchemaMigration,
} from "../../src/store/index.js";
import { tempStores } from "./helpers.js";

const t = tempStores();

function raw(path: string, readonly = true): Database.Database {
  return new Database(path, { readonly, fileMustExist: true });
}

function pragma(path: string, p: string): unknown {
  const db = raw(path);
  try {
    return db.pragma(p, { simple: true });
  } finally {
    db.close();
  }
}

function expectStoreError(fn: () => unknown, code: StoreError["code"], message?: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StoreError);
    expect((e as StoreError).code).toBe(code);
    if (message) expect((e as StoreError).message).toMatch(message);
    return;
  }
  expect.fail(`expected StoreError ${code}`);
}

describe("openHistory", () => {
  it("creates the schema from an empty directory, with the version recorded", () => {
    const path = join(t.dir(), "nested", "state", "history.db");
    const s = t.track(openHistory(path));
    expect(s.schemaVersion).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
    s.close();
    expect(pragma(path, "user_version")).toBe(SCHEMA_VERSION);
    expect(pragma(path, "application_id")).toBe(APPLICATION_ID);
    const db = raw(path);
    const tables = db
      .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .pluck()
      .all();
    db.close();
    expect(tables).toEqual([
      "decisions",
      "events",
      "host_samples",
      "imbalance_samples",
      "migration_events",
      "migrations",
      "rounds",
    ]);
  });

  it("creates the directory 0700 and the file 0600; WAL files inherit the file's mode", () => {
    const dir = join(t.dir(), "state");
    const path = join(dir, "history.db");
    const s = t.open("state/history.db");
    s.recordEvent({ at: 1, kind: "started", message: "x" });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(existsSync(`${path}-wal`)).toBe(true);
    expect(statSync(`${path}-wal`).mode & 0o777).toBe(0o600);
    expect(statSync(`${path}-shm`).mode & 0o777).toBe(0o600);
  });

  it("uses WAL, synchronous=NORMAL, foreign keys and a busy timeout", () => {
    const s = t.open("history.db", { busyTimeoutMs: 1234 });
    expect(s.settings()).toEqual({ journalMode: "wal", synchronous: "normal", foreignKeys: true, busyTimeoutMs: 1234 });
    expect(() =>
      s.recordDecision({ roundId: 999, at: 1, outcome: "moved", policy: "p", vm: vmId("v"), reason: "r" }),
    ).toThrow(/FOREIGN KEY/);
    s.close();
    expect(pragma(join(t.dir(), "history.db"), "journal_mode")).toBe("wal");
  });

  it("is idempotent on reopen and keeps the data", () => {
    const s1 = t.open();
    const id = s1.startRound({ startedAt: 1000, trigger: "schedule" });
    s1.close();
    const s2 = t.open();
    expect(s2.schemaVersion).toBe(SCHEMA_VERSION);
    expect(s2.round(id)?.trigger).toBe("schedule");
    s2.close();
    const s3 = t.open();
    expect(s3.recentRounds(10)).toHaveLength(1);
  });

  it("applies only the migrations not yet applied, and several at once", () => {
    const extra: SchemaMigration[] = [
      ...MIGRATIONS,
      { version: MIGRATIONS.length + 1, name: "a", sql: "CREATE TABLE extra_a (x INTEGER)" },
      { version: MIGRATIONS.length + 2, name: "b", sql: "CREATE TABLE extra_b (x INTEGER)" },
    ];
    t.open().close();
    const s = t.open("history.db", { migrations: extra });
    expect(s.schemaVersion).toBe(MIGRATIONS.length + 2);
    s.close();
    expect(pragma(join(t.dir(), "history.db"), "user_version")).toBe(MIGRATIONS.length + 2);
  });

  it("rolls back every migration of the batch when one fails", () => {
    t.open().close();
    const path = join(t.dir(), "history.db");
    const broken: SchemaMigration[] = [
      ...MIGRATIONS,
      { version: MIGRATIONS.length + 1, name: "good", sql: "CREATE TABLE extra_ok (x INTEGER)" },
      { version: MIGRATIONS.length + 2, name: "bad", sql: "CREATE TABLE oops (" },
    ];
    expectStoreError(() => openHistory(path, { migrations: broken }), "open-failed", /migration \d+ \(bad\) failed/);
    expect(pragma(path, "user_version")).toBe(SCHEMA_VERSION);
    const db = raw(path);
    expect(db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'extra_ok'").pluck().get()).toBe(0);
    db.close();
  });

  it("refuses a database written by a newer ballast", () => {
    t.open().close();
    const path = join(t.dir(), "history.db");
    const db = raw(path, false);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expectStoreError(() => openHistory(path), "schema-too-new", /schema version \d+, newer than this ballast knows/);
    expectStoreError(() => openHistory(path, { readonly: true }), "schema-too-new");
    // Refusal changed nothing.
    expect(pragma(path, "user_version")).toBe(SCHEMA_VERSION + 1);
  });

  it("refuses a file that is not a ballast database", () => {
    const other = join(t.dir(), "other.db");
    const db = new Database(other);
    db.exec("CREATE TABLE foo (x)");
    db.close();
    expectStoreError(() => openHistory(other), "not-ballast", /not a ballast history database/);

    const junk = join(t.dir(), "junk.db");
    writeFileSync(junk, "this is not sqlite at all, not even close.".repeat(100));
    expectStoreError(() => openHistory(junk), "open-failed", /junk\.db/);
  });

  it("close() checkpoints the WAL and is idempotent", () => {
    const s = t.open();
    s.recordSamples(1, [{ host: hostId("h"), cell: cellId("c"), cpuLoad: 0.5, memoryUsedMiB: 1, memoryMiB: 2, maintenance: false }]);
    const path = join(t.dir(), "history.db");
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
    s.close();
    s.close();
    expect(s.closed).toBe(true);
    // Last connection closed: SQLite removes the WAL after checkpointing; either way nothing is left in it.
    expect(existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0).toBe(0);
    expect(() => s.recentEvents(1)).toThrow();
  });

  it("works in memory", () => {
    const s = t.track(openHistory(IN_MEMORY));
    s.recordEvent({ at: 5, kind: "started", message: "hello" });
    expect(s.recentEvents(5)[0]?.message).toBe("hello");
    expect(s.stats().fileBytes).toBe(0);
  });
});

describe("read-only open", () => {
  it("sees what a live writer connection has committed (WAL not checkpointed)", () => {
    const writer = t.open();
    const round = writer.startRound({ startedAt: 10, trigger: "schedule" });
    const id = writer.recordIntent({
      roundId: round,
      vm: vmId("vm-1"),
      from: hostId("a"),
      to: hostId("b"),
      kind: "live-shared",
      policy: "hotspot-relief",
      reason: "hot",
      flags: ["LIVE"],
      startedAt: 11,
    });
    const path = join(t.dir(), "history.db");
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);

    const reader = t.track(openHistory(path, { readonly: true }));
    expect(reader.readonly).toBe(true);
    expect(reader.openIntents().map((m) => m.id)).toEqual([id]);

    // Later writes are visible to the reader's next statement.
    writer.markRunning(id, 12);
    writer.finishMigration(id, { status: "succeeded", finishedAt: 20, downtimeMs: 30 });
    expect(reader.migration(id)?.status).toBe("succeeded");
    expect(reader.recentMigrations(5)).toHaveLength(1);
    expect(reader.stats().rows.migrations).toBe(1);

    expect(() => reader.recordEvent({ at: 1, kind: "x", message: "no" })).toThrow(/readonly/i);
    reader.close();
    // The writer is unaffected by the reader leaving.
    writer.recordEvent({ at: 21, kind: "stopped", message: "bye" });
  });

  it("works after the writer closed cleanly (no -wal/-shm left)", () => {
    const w = t.open();
    w.recordEvent({ at: 1, kind: "started", message: "a" });
    w.close();
    const r = t.open("history.db", { readonly: true });
    expect(r.recentEvents(10).map((e) => e.message)).toEqual(["a"]);
  });

  it("gives a clear error for a missing file and never creates it", () => {
    const path = join(t.dir(), "missing", "history.db");
    expectStoreError(() => openHistory(path, { readonly: true }), "open-failed", /does not exist/);
    expect(existsSync(join(t.dir(), "missing"))).toBe(false);
  });

  it("refuses an older schema (it cannot migrate)", () => {
    const path = join(t.dir(), "history.db");
    openDatabase(path, { migrations: [] }).db.close();
    expectStoreError(() => openHistory(path, { readonly: true }), "schema-too-old", /start the daemon/);

    const current = join(t.dir(), "current.db");
    openHistory(current).close();
    const newer: SchemaMigration[] = [...MIGRATIONS, { version: MIGRATIONS.length + 1, name: "next", sql: "SELECT 1" }];
    expectStoreError(
      () => openHistory(current, { readonly: true, migrations: newer }),
      "schema-too-old",
      new RegExp(`schema version ${SCHEMA_VERSION}, older than this ballast expects \\(${SCHEMA_VERSION + 1}\\)`),
    );
  });
});
