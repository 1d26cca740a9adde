import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { hostId, vmId, type VmId } from "../../src/model/index.js";
import { StoreError, openHistory, type HistoryStore, type MigrationIntent } from "../../src/store/index.js";
import { tempStores } from "./helpers.js";

const t = tempStores();

const A = hostId("host-a");
const B = hostId("host-b");

function intent(roundId: number | null, vm: VmId = vmId("vm-1"), startedAt = 1_000): MigrationIntent {
  return {
    roundId,
    vm,
    from: A,
    to: B,
    kind: "live-shared",
    policy: "maintenance-drain",
    reason: "host-a in maintenance",
    flags: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"],
    startedAt,
    predictedMs: 4_200,
    details: { dirtyRateMiBps: 12.5, converges: true },
  };
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StoreError);
    return (e as StoreError).code;
  }
  return undefined;
}

describe("rounds and decisions", () => {
  it("starts and finishes a round; finishing twice throws", () => {
    const s = t.open();
    const id = s.startRound({ startedAt: 100, trigger: "flag" });
    expect(s.round(id)).toMatchObject({ id, startedAt: 100, trigger: "flag", finishedAt: null, outcome: null });
    s.finishRound(id, { finishedAt: 150, outcome: "ok", planned: 2, blocked: 1, summary: "2 moves" });
    expect(s.round(id)).toMatchObject({ finishedAt: 150, outcome: "ok", planned: 2, blocked: 1, migrated: null, summary: "2 moves", error: null });
    expect(code(() => s.finishRound(id, { finishedAt: 160, outcome: "error", planned: 0, blocked: 0 }))).toBe(
      "invalid-transition",
    );
    expect(code(() => s.finishRound(999, { finishedAt: 160, outcome: "ok", planned: 0, blocked: 0 }))).toBe("not-found");
    expect(code(() => s.finishRound(id, { finishedAt: 1, outcome: "bogus" as "ok", planned: 0, blocked: 0 }))).toBe(
      "invalid-argument",
    );
  });

  it("records decisions with JSON details, per round and newest first", () => {
    const s = t.open();
    const r1 = s.startRound({ startedAt: 1, trigger: "schedule" });
    const r2 = s.startRound({ startedAt: 2, trigger: "schedule" });
    s.recordDecisions([
      { roundId: r1, at: 1, outcome: "moved", policy: "hotspot-relief", vm: vmId("v1"), from: A, to: B, kind: "live-shared", reason: "hot", details: { gain: 0.2 } },
      { roundId: r1, at: 1, outcome: "blocked", policy: "maintenance-drain", vm: vmId("v2"), from: A, code: "no-destination", reason: "nothing fits" },
      { roundId: r2, at: 2, outcome: "refused", policy: "hotspot-relief", vm: vmId("v1"), from: B, to: A, code: "cooldown", reason: "moved 3 min ago" },
    ]);
    const d1 = s.decisionsForRound(r1);
    expect(d1.map((d) => d.outcome)).toEqual(["moved", "blocked"]);
    expect(d1[0]).toMatchObject({ vm: "v1", from: "host-a", to: "host-b", kind: "live-shared", code: null, details: { gain: 0.2 } });
    expect(d1[1]).toMatchObject({ to: null, kind: null, code: "no-destination", details: null });
    expect(s.recentDecisions(10).map((d) => d.roundId)).toEqual([r2, r1, r1]);
    expect(s.recentDecisions(10, { vm: vmId("v1") }).map((d) => d.outcome)).toEqual(["refused", "moved"]);
    expect(s.recentDecisions(10, { outcome: "blocked" })).toHaveLength(1);
    expect(s.pruneDecisions(2)).toBe(2);
    expect(s.recentDecisions(10)).toHaveLength(1);
  });

  it("a batch of decisions is all-or-nothing", () => {
    const s = t.open();
    const r = s.startRound({ startedAt: 1, trigger: "schedule" });
    expect(() =>
      s.recordDecisions([
        { roundId: r, at: 1, outcome: "moved", policy: "p", vm: vmId("v1"), reason: "ok" },
        { roundId: 12345, at: 1, outcome: "moved", policy: "p", vm: vmId("v2"), reason: "no such round" },
      ]),
    ).toThrow();
    expect(s.decisionsForRound(r)).toEqual([]);
  });
});

describe("migration journal", () => {
  it("intent → running → succeeded, with events, flags and details read back", () => {
    const s = t.open();
    const round = s.startRound({ startedAt: 900, trigger: "schedule" });
    const id = s.recordIntent(intent(round));
    expect(s.migration(id)).toMatchObject({ status: "intent", runningAt: null, finishedAt: null });
    expect(s.openIntents().map((m) => m.id)).toEqual([id]);

    s.markRunning(id, 1_010);
    s.appendMigrationEvent(id, { at: 2_000, kind: "stats", data: { elapsedMs: 990, phase: "precopy", dataRemainingMiB: 512 } });
    s.appendMigrationEvent(id, { at: 3_000, kind: "guard", data: { action: { kind: "raise-downtime", ms: 100 }, inputs: { dirty: 80 } } });
    s.appendMigrationEvent(id, { at: 3_500, kind: "note", data: "resumed" });
    s.finishMigration(id, { status: "succeeded", finishedAt: 5_000, downtimeMs: 42.5, dataMiB: 8_200, passes: 4, actualMs: 3_990 });

    const m = s.migrationWithEvents(id);
    expect(m).toMatchObject({
      id,
      roundId: round,
      vm: "vm-1",
      from: "host-a",
      to: "host-b",
      kind: "live-shared",
      policy: "maintenance-drain",
      flags: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"],
      status: "succeeded",
      startedAt: 1_000,
      runningAt: 1_010,
      finishedAt: 5_000,
      predictedMs: 4_200,
      actualMs: 3_990,
      downtimeMs: 42.5,
      dataMiB: 8_200,
      passes: 4,
      error: null,
      details: { dirtyRateMiBps: 12.5, converges: true },
    });
    expect(m?.events.map((e) => [e.at, e.kind])).toEqual([
      [2_000, "stats"],
      [3_000, "guard"],
      [3_500, "note"],
    ]);
    expect(m?.events[1]?.data).toEqual({ action: { kind: "raise-downtime", ms: 100 }, inputs: { dirty: 80 } });
    expect(m?.events[2]?.data).toBe("resumed");
    expect(s.openIntents()).toEqual([]);
    expect(s.migrationWithEvents(999)).toBeUndefined();
  });

  it("checks state transitions", () => {
    const s = t.open();
    const id = s.recordIntent(intent(null));
    s.markRunning(id, 1_100);
    expect(code(() => s.markRunning(id, 1_200))).toBe("invalid-transition");
    s.finishMigration(id, { status: "aborted", finishedAt: 2_000, error: "guard: dirty rate above bandwidth" });
    // Cannot finish twice, whatever the second status.
    for (const status of ["succeeded", "failed", "aborted", "interrupted"] as const) {
      expect(code(() => s.finishMigration(id, { status, finishedAt: 3_000 }))).toBe("invalid-transition");
    }
    expect(code(() => s.markRunning(id, 3_000))).toBe("invalid-transition");
    expect(s.migration(id)).toMatchObject({ status: "aborted", finishedAt: 2_000, error: "guard: dirty rate above bandwidth" });

    // intent may be closed directly (re-check failed before the driver was called; reconciliation).
    const id2 = s.recordIntent(intent(null, vmId("vm-2")));
    s.finishMigration(id2, { status: "failed", finishedAt: 1_500, error: "re-check failed" });
    expect(s.migration(id2)?.runningAt).toBeNull();

    // Not a final status; unknown ids.
    const id3 = s.recordIntent(intent(null, vmId("vm-3")));
    expect(code(() => s.finishMigration(id3, { status: "running" as "failed", finishedAt: 1 }))).toBe("invalid-argument");
    expect(code(() => s.finishMigration(424242, { status: "failed", finishedAt: 1 }))).toBe("not-found");
    expect(code(() => s.markRunning(424242, 1))).toBe("not-found");
    expect(code(() => s.appendMigrationEvent(424242, { at: 1, kind: "note", data: {} }))).toBe("not-found");
    expect(code(() => s.appendMigrationEvent(id3, { at: 1, kind: "bogus" as "note", data: {} }))).toBe("invalid-argument");
  });

  it("refuses a second unfinished migration of the same VM until the first is closed", () => {
    const s = t.open();
    const first = s.recordIntent(intent(null));
    let err: unknown;
    try {
      s.recordIntent(intent(null, vmId("vm-1"), 2_000));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe("vm-has-open-migration");
    expect((err as StoreError).message).toMatch(new RegExp(`#${first}, intent`));
    // Other VMs are unaffected; after closing, the VM may migrate again.
    s.recordIntent(intent(null, vmId("vm-2")));
    s.finishMigration(first, { status: "interrupted", finishedAt: 3_000 });
    const again = s.recordIntent(intent(null, vmId("vm-1"), 4_000));
    expect(s.migrationsForVm(vmId("vm-1"), 10).map((m) => m.id)).toEqual([again, first]);
    expect(s.migrationsForVm(vmId("vm-1"), 1).map((m) => m.id)).toEqual([again]);
    expect(s.recentMigrations(2).map((m) => m.vm)).toEqual(["vm-1", "vm-2"]);
  });

  it("openIntents survives a crash: writer abandoned without finishing or closing", () => {
    const path = join(t.dir(), "history.db");
    // Writer "dies": never closed (no checkpoint), the intent only in the WAL.
    const dead: HistoryStore = openHistory(path);
    const round = dead.startRound({ startedAt: 1, trigger: "schedule" });
    const running = dead.recordIntent(intent(round, vmId("vm-run")));
    dead.markRunning(running, 1_050);
    const justIntent = dead.recordIntent(intent(round, vmId("vm-intent"), 1_100));
    const done = dead.recordIntent(intent(round, vmId("vm-done"), 1_200));
    dead.finishMigration(done, { status: "succeeded", finishedAt: 1_300 });

    const restarted = t.open();
    try {
      const open = restarted.openIntents();
      expect(open.map((m) => [m.id, m.vm, m.status])).toEqual([
        [running, "vm-run", "running"],
        [justIntent, "vm-intent", "intent"],
      ]);
      // Reconciliation closes them with the true outcome and a note.
      restarted.finishMigration(running, { status: "succeeded", finishedAt: 9_000 });
      restarted.appendMigrationEvent(running, { at: 9_000, kind: "note", data: { reconciled: "VM found on host-b" } });
      restarted.finishMigration(justIntent, { status: "interrupted", finishedAt: 9_000 });
      expect(restarted.openIntents()).toEqual([]);
      expect(restarted.round(round)?.finishedAt).toBeNull();
    } finally {
      dead.close();
    }
  });

  it("openIntents after a clean close without finishing", () => {
    const s1 = t.open();
    const id = s1.recordIntent(intent(null));
    s1.close();
    const s2 = t.open();
    expect(s2.openIntents().map((m) => [m.id, m.status])).toEqual([[id, "intent"]]);
  });
});

describe("events", () => {
  it("records events with optional host and JSON data, newest first, filterable by kind", () => {
    const s = t.open();
    s.recordEvent({ at: 1, kind: "started", message: "ballast 0.1.0 started" });
    s.recordEvent({ at: 2, kind: "flag-set", host: A, message: "maintenance flag set", data: { reason: "kernel update" } });
    s.recordEvent({ at: 3, kind: "flag-cleared", host: A, message: "maintenance flag cleared" });
    s.recordEvent({ at: 4, kind: "config-rejected", message: "bad config kept old", data: ["line 3: x"] });
    expect(s.recentEvents(10).map((e) => e.kind)).toEqual(["config-rejected", "flag-cleared", "flag-set", "started"]);
    expect(s.recentEvents(2).map((e) => e.at)).toEqual([4, 3]);
    const [flag] = s.recentEvents(10, { kind: "flag-set" });
    expect(flag).toMatchObject({ at: 2, host: "host-a", message: "maintenance flag set", data: { reason: "kernel update" } });
    expect(s.recentEvents(10, { kind: "started" })[0]).toMatchObject({ host: null, data: null });
    expect(s.recentEvents(1)[0]?.data).toEqual(["line 3: x"]);
  });
});

describe("crash of the writer process", () => {
  it("an intent journalled by a process killed with SIGKILL is found on restart (read-only first, then writer)", () => {
    // Run the real store code in a child process: transpile src/store to CommonJS in the temp dir.
    const out = join(t.dir(), "store-js");
    mkdirSync(out);
    const srcDir = fileURLToPath(new URL("../../src/store/", import.meta.url));
    for (const f of readdirSync(srcDir).filter((n) => n.endsWith(".ts"))) {
      const js = ts.transpileModule(readFileSync(join(srcDir, f), "utf8"), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      }).outputText;
      writeFileSync(join(out, f.replace(/\.ts$/, ".js")), js);
    }
    const db = join(t.dir(), "history.db");
    const script = `
      const { openHistory } = require(${JSON.stringify(join(out, "index.js"))});
      const s = openHistory(${JSON.stringify(db)});
      const round = s.startRound({ startedAt: 1, trigger: "schedule" });
      const id = s.recordIntent({ roundId: round, vm: "vm-k", from: "a", to: "b", kind: "live-shared",
        policy: "p", reason: "r", flags: ["LIVE"], startedAt: 2 });
      s.markRunning(id, 3);
      s.appendMigrationEvent(id, { at: 4, kind: "stats", data: { dataRemainingMiB: 100 } });
      process.stdout.write(String(id));
      process.kill(process.pid, "SIGKILL");
    `;
    const nodeModules = fileURLToPath(new URL("../../node_modules/", import.meta.url));
    const r = spawnSync(process.execPath, ["-e", script], {
      env: { ...process.env, NODE_PATH: nodeModules },
      encoding: "utf8",
    });
    expect(r.stderr).toBe("");
    expect(r.signal).toBe("SIGKILL");
    const id = Number(r.stdout);
    expect(id).toBeGreaterThan(0);
    expect(existsSync(`${db}-wal`)).toBe(true);

    const reader = t.open("history.db", { readonly: true });
    expect(reader.openIntents().map((m) => [m.id, m.vm, m.status])).toEqual([[id, "vm-k", "running"]]);
    reader.close();

    const restarted = t.open();
    const [open] = restarted.openIntents();
    expect(open).toMatchObject({ id, status: "running", runningAt: 3, flags: ["LIVE"] });
    expect(restarted.migrationWithEvents(id)?.events.map((e) => e.kind)).toEqual(["stats"]);
    restarted.finishMigration(id, { status: "interrupted", finishedAt: 10 });
    expect(restarted.openIntents()).toEqual([]);
  });
});
