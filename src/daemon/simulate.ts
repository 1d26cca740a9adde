import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { ResolvedConfig } from "../config/index.js";
import { createSimCluster, SimDriver } from "../drivers/sim/index.js";
import { imbalance } from "../model/index.js";
import { openHistory } from "../store/index.js";
import { VirtualClock } from "../util/clock.js";
import { Daemon } from "./daemon.js";
import { Metrics } from "./metrics.js";

export interface SimulationReport {
  readonly durationHours: number;
  readonly rounds: number;
  readonly migrations: { readonly total: number; readonly byOutcome: Record<string, number>; readonly byPolicy: Record<string, number> };
  readonly gibCopied: number;
  /** Time hosts spent at or above cpuHigh, summed over hosts. */
  readonly hotspotHostMinutes: number;
  readonly imbalance: { readonly meanCpu: number; readonly maxCpu: number; readonly meanMemory: number; readonly maxMemory: number };
  readonly blockedByReason: Record<string, number>;
  readonly convergenceFailures: number;
}

/**
 * Fast-forwards the daemon itself (same planner, guards and executor) over the simulator on a virtual clock.
 * State lives in a temporary directory that is removed afterwards.
 */
export async function simulate(config: ResolvedConfig, durationMs: number, roundIntervalMs: number): Promise<SimulationReport> {
  if (!config.sim) throw new Error("simulate needs a config with a sim: section");
  const clock = new VirtualClock();
  const dir = mkdtempSync(join(tmpdir(), "ballast-sim-"));
  const cfg: ResolvedConfig = { ...config, stateDir: dir, maintenanceDir: join(dir, "maintenance"), http: { ...config.http, enabled: false } };
  const store = openHistory(join(dir, "history.db"));
  const driver = new SimDriver(createSimCluster(config.sim, clock), { ownsCluster: true });
  const daemon = new Daemon({ config: cfg, driver, store, clock, log: pino({ level: "silent" }), metrics: new Metrics(false) });
  const start = clock.now();
  const end = start + durationMs;
  let hotMinutes = 0;
  let rounds = 0;
  const cpuImb: number[] = [];
  const memImb: number[] = [];
  const blocked: Record<string, number> = {};
  try {
    await daemon.start();
    let next = start;
    while (next < end) {
      clock.set(next);
      await daemon.trigger("schedule");
      rounds++;
      const snap = daemon.lastSnapshot;
      if (snap) {
        // The sample at the round's start stands for the interval up to the next round.
        const hot = snap.hosts.filter((h) => h.cpuLoad >= cfg.thresholds.cpuHigh).length;
        hotMinutes += (hot * roundIntervalMs) / 60_000;
        for (const c of imbalance(snap)) {
          cpuImb.push(c.cpu);
          memImb.push(c.memory);
        }
      }
      for (const b of daemon.lastPlan?.blocked ?? []) {
        const code = b.reason.split(":")[0] ?? b.reason;
        blocked[code] = (blocked[code] ?? 0) + 1;
      }
      next = Math.max(next + roundIntervalMs, clock.now());
    }
    await daemon.stop();
    const all = store.migrationsSince(start - 1);
    const migrations = store.recentMigrations(Math.max(1, all.total));
    const byOutcome: Record<string, number> = {};
    const byPolicy: Record<string, number> = {};
    let mib = 0;
    for (const m of migrations) {
      byOutcome[m.status] = (byOutcome[m.status] ?? 0) + 1;
      byPolicy[m.policy] = (byPolicy[m.policy] ?? 0) + 1;
      mib += m.dataMiB ?? 0;
    }
    const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
    // A reduce, not Math.max(...xs): a long run has more samples than a call may take arguments.
    const max = (xs: number[]): number => xs.reduce((a, b) => Math.max(a, b), 0);
    const round3 = (x: number): number => Math.round(x * 1000) / 1000;
    return {
      durationHours: durationMs / 3_600_000,
      rounds,
      migrations: { total: migrations.length, byOutcome, byPolicy },
      gibCopied: round3(mib / 1024),
      hotspotHostMinutes: round3(hotMinutes),
      imbalance: { meanCpu: round3(mean(cpuImb)), maxCpu: round3(max(cpuImb)), meanMemory: round3(mean(memImb)), maxMemory: round3(max(memImb)) },
      blockedByReason: blocked,
      convergenceFailures: byOutcome.aborted ?? 0,
    };
  } finally {
    store.close();
    await driver.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
