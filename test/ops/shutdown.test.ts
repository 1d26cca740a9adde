import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { demoConfig, history, killIfRunning, merge, msg, runDaemon, SLOW_MIGRATION, type Daemon, type TempConfig, type Tree } from "./helpers.js";

/**
 * SIGTERM while a simulated migration is in flight (a slow link makes sure one is): scheduling stops, the
 * migration is waited for or aborted as `shutdown` says, the VM ends on exactly one host, the database is
 * closed cleanly with no open journal record, and the process exits 0.
 */
describe("SIGTERM during a migration", () => {
  let d: Daemon | undefined;
  let cfg: TempConfig | undefined;
  afterEach(() => {
    killIfRunning(d);
    cfg?.cleanup();
  });

  /** Starts the daemon, waits for its first migration to be under way, sends SIGTERM; returns what followed. */
  async function stopDuringMigration(name: string, patch: Tree): Promise<{ code: number | null; stopMs: number; migration: ReturnType<typeof history>["migrations"][number]; events: ReturnType<typeof history>["events"] }> {
    cfg = demoConfig(name, merge(SLOW_MIGRATION, patch));
    d = runDaemon(["run", "--config", cfg.file]);
    const started = JSON.parse(await d.waitFor(msg("migration started"), 20_000)) as { migration: number };
    await new Promise((r) => setTimeout(r, 1000)); // let it copy for a while
    const t0 = Date.now();
    d.child.kill("SIGTERM");
    const code = await d.exited;
    const stopMs = Date.now() - t0;
    expect(d.lines.some(msg("migration started"))).toBe(true);
    // Nothing new started after the signal.
    const stopAt = d.lines.findIndex(msg("stopping"));
    expect(stopAt).toBeGreaterThan(0);
    expect(d.lines.slice(stopAt).some((l) => msg("migration started")(l) || msg("decision")(l))).toBe(false);

    // Clean close: the WAL was checkpointed into the file, and reopening shows no unfinished intent.
    const dbFile = join(cfg.dir, "state", "ballast.db");
    expect(!existsSync(`${dbFile}-wal`) || statSync(`${dbFile}-wal`).size === 0).toBe(true);
    const db = new Database(dbFile, { readonly: true });
    try {
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      const open = db.prepare("SELECT count(*) AS n FROM migrations WHERE status IN ('intent', 'running')").get() as { n: number };
      expect(open.n).toBe(0);
    } finally {
      db.close();
    }
    // The lock is gone: the next start is not refused.
    expect(existsSync(join(cfg.dir, "state", "ballast.pid"))).toBe(false);

    const h = history(cfg.file);
    const migration = h.migrations.find((m) => m.id === started.migration);
    if (!migration) throw new Error(`migration #${started.migration} not in history`);
    expect(h.events[0]?.kind).toBe("stopped");
    return { code, stopMs, migration, events: h.events };
  }

  it("shutdown.action abort: aborts at once, the VM stays on its source, exit 0", async () => {
    const r = await stopDuringMigration("stop-abort", { shutdown: { action: "abort" } });
    expect(r.code).toBe(0);
    expect(r.stopMs).toBeLessThan(10_000); // not the ~60 s the copy would take
    expect(r.migration.status).toBe("aborted");
    // The executor verified the VM's placement: only on its source (otherwise the error says where it is).
    expect(r.migration.error ?? "").not.toMatch(/VM is on/);
    expect(r.events.some((e) => e.kind === "shutdown-abort" && /shutdown\.action is abort/.test(e.message))).toBe(true);
  }, 40_000);

  it("shutdown.action wait: waits stopTimeoutSec, then aborts; exit 0", async () => {
    const r = await stopDuringMigration("stop-wait-timeout", { shutdown: { action: "wait", stopTimeoutSec: 3 } });
    expect(r.code).toBe(0);
    expect(r.stopMs).toBeGreaterThanOrEqual(2900);
    expect(r.stopMs).toBeLessThan(15_000);
    expect(r.migration.status).toBe("aborted");
    expect(r.migration.error ?? "").not.toMatch(/VM is on/);
    expect(r.events.some((e) => e.kind === "shutdown-abort" && /stopTimeoutSec \(3 s\)/.test(e.message))).toBe(true);
  }, 40_000);

  it("shutdown.action wait: a migration that finishes in time completes; exit 0", async () => {
    // A fast link: the copy takes seconds, well within the default 300 s.
    const r = await stopDuringMigration("stop-wait-done", { sim: { bandwidthMiBps: 2000 } });
    expect(r.code).toBe(0);
    expect(r.migration.status).toBe("succeeded");
    expect(r.events.some((e) => e.kind === "shutdown-abort")).toBe(false);
    expect(d?.lines.some(msg("waiting for the migration in flight before stopping"))).toBe(true);
  }, 40_000);
});
