/**
 * bench/soak — the daemon itself (sampling, planning, guards, executor, SQLite history, flag watcher) over a
 * simulated cluster of 2,000 hosts and 60,000 VMs for 1,000+ rounds fast-forwarded on a VirtualClock, with
 * hot hosts and two drains so it migrates. Reports round time, RSS and database size over the run, and open
 * handles and listeners at start and end (issue 8, item 4).
 *
 *   npm run bench:soak -- [--cells N --hosts-per-cell N --vms-per-host N --rounds N --interval-min N --retention-hours N --round-retention-days N]
 *
 * Prints a table, then one line of JSON (`{"bench":"soak",…}`). The CI test (test/hostile/soak.test.ts) runs
 * `runSoak` on a smaller cluster and asserts boundedness structurally, never times.
 */
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { pino } from "pino";
import { stringify } from "yaml";
import { table } from "../src/cli/table.js";
import { checkConfigText, formatIssue } from "../src/config/index.js";
import { Daemon } from "../src/daemon/daemon.js";
import { Metrics } from "../src/daemon/metrics.js";
import { createSimCluster, SimDriver } from "../src/drivers/sim/index.js";
import { openHistory, type StoreStats } from "../src/store/index.js";
import { VirtualClock } from "../src/util/clock.js";
import { argValue } from "./args.js";

export interface SoakOptions {
  readonly cells: number;
  readonly hostsPerCell: number;
  readonly vmsPerHost: number;
  readonly rounds: number;
  /** Simulated minutes between scheduled rounds. */
  readonly intervalMin: number;
  /** history.sampleRetentionHours and roundRetentionDays: short enough that both are reached well within the run. */
  readonly retentionHours: number;
  readonly roundRetentionDays: number;
  /** Take a sample of RSS, database size and row counts every this many rounds. */
  readonly sampleEvery: number;
}

export const FULL: SoakOptions = { cells: 20, hostsPerCell: 100, vmsPerHost: 30, rounds: 1000, intervalMin: 2, retentionHours: 6, roundRetentionDays: 0.5, sampleEvery: 50 };

/** What a process holds that could leak: libuv handles by type, and listeners on `process`. */
export interface Resources {
  readonly handles: Record<string, number>;
  readonly processListeners: number;
}

export interface SoakPoint {
  readonly round: number;
  readonly simHours: number;
  readonly rssMiB: number;
  readonly heapMiB: number;
  readonly dbBytes: number;
  readonly rows: StoreStats["rows"];
  /** Time from the oldest host sample kept to the newest, and how many sampling times are kept. */
  readonly sampleSpanHours: number;
  readonly sampleTimes: number;
  /** Time from the oldest round kept to the newest. */
  readonly roundSpanHours: number;
}

export interface SoakReport {
  readonly hosts: number;
  readonly vms: number;
  readonly rounds: number;
  readonly simHours: number;
  readonly migrations: Record<string, number>;
  readonly roundMs: { readonly median: number; readonly p95: number; readonly max: number };
  readonly points: readonly SoakPoint[];
  readonly resources: { readonly start: Resources; readonly end: Resources; readonly afterStop: Resources };
}

export function resources(): Resources {
  const handles: Record<string, number> = {};
  for (const h of process.getActiveResourcesInfo()) handles[h] = (handles[h] ?? 0) + 1;
  const processListeners = process.eventNames().reduce((n, e) => n + process.listenerCount(e), 0);
  return { handles, processListeners };
}

const MiB = 1024 * 1024;

const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const dir = mkdtempSync(join(tmpdir(), "ballast-soak-"));
  const cells = Array.from({ length: o.cells }, (_, i) => ({ name: `c${i + 1}`, hosts: o.hostsPerCell, vmsPerHost: o.vmsPerHost, sharedStorage: `nfs-${i + 1}` }));
  // Through the real loader, so the figures are for the configuration an operator would write.
  const yaml = stringify({
    stateDir: dir,
    http: { enabled: false },
    logLevel: "fatal",
    history: { sampleRetentionHours: o.retentionHours, roundRetentionDays: o.roundRetentionDays },
    guards: { maxMigrationsPerHour: 60 },
    sim: { seed: 8, cells, hotHosts: cells.slice(0, 3).map((c) => `${c.name}-h1`), migrationFailureRate: 0.05 },
  });
  const checked = checkConfigText(yaml, join(dir, "soak.yaml"), dir);
  if (!checked.ok) throw new Error(checked.errors.map(formatIssue).join("\n"));
  const config = checked.config;
  const clock = new VirtualClock();
  const dbFile = join(dir, "ballast.db");
  const store = openHistory(dbFile);
  const driver = new SimDriver(createSimCluster(config.sim ?? (undefined as never), clock), { ownsCluster: true });
  const roundMs: number[] = [];
  let mark = 0;
  const daemon = new Daemon({
    config,
    driver,
    store,
    clock,
    log: pino({ level: "silent" }),
    metrics: new Metrics(false),
    hooks: {
      roundFinished: () => {
        const now = performance.now();
        roundMs.push(now - mark);
        mark = now;
      },
    },
  });
  const flag = (host: string): string => join(config.maintenanceDir, host);
  // Two drains: one set early and lifted half-way, one set half-way and kept.
  const drains = new Map<number, () => void>([
    [Math.floor(o.rounds * 0.1), () => writeFileSync(flag("c2-h5"), "soak: first drain")],
    [Math.floor(o.rounds * 0.5), () => (unlinkSync(flag("c2-h5")), writeFileSync(flag("c4-h7"), "soak: second drain"))],
  ]);
  const points: SoakPoint[] = [];
  // A second, read-only connection, as `ballast history` would open while the daemon runs.
  const reader = new Database(dbFile, { readonly: true });
  const span = reader.prepare<[], { ms: number | null; times: number }>("SELECT max(at) - min(at) AS ms, count(DISTINCT at) AS times FROM host_samples");
  const roundSpan = reader.prepare<[], number | null>("SELECT max(started_at) - min(started_at) FROM rounds").pluck();
  const point = (round: number): void => {
    const s = store.stats();
    const m = process.memoryUsage();
    const { ms, times } = span.get() ?? { ms: null, times: 0 };
    const now = clock.now();
    points.push({
      round,
      simHours: (now - start) / 3_600_000,
      rssMiB: m.rss / MiB,
      heapMiB: m.heapUsed / MiB,
      dbBytes: s.fileBytes + s.walBytes,
      rows: s.rows,
      sampleSpanHours: (ms ?? 0) / 3_600_000,
      sampleTimes: times,
      roundSpanHours: (roundSpan.get() ?? 0) / 3_600_000,
    });
  };
  const start = clock.now();
  try {
    await daemon.start();
    const atStart = resources();
    point(0);
    for (let i = 1; daemon.roundsRun < o.rounds; i++) {
      drains.get(i)?.();
      clock.set(start + i * o.intervalMin * 60_000);
      // The watch fires on real time; rescan now so a drain starts at this round (a change runs its own round).
      await daemon.rescanFlags();
      mark = performance.now();
      await daemon.trigger("schedule");
      if (i % o.sampleEvery === 0) point(daemon.roundsRun);
    }
    point(daemon.roundsRun);
    const atEnd = resources();
    reader.close();
    await daemon.stop();
    const byStatus: Record<string, number> = {};
    for (const m of store.recentMigrations(1_000_000)) byStatus[m.status] = (byStatus[m.status] ?? 0) + 1;
    store.close();
    await driver.close();
    const sorted = [...roundMs].sort((a, b) => a - b);
    const hosts = o.cells * o.hostsPerCell;
    return {
      hosts,
      vms: hosts * o.vmsPerHost,
      rounds: daemon.roundsRun,
      simHours: (clock.now() - start) / 3_600_000,
      migrations: byStatus,
      roundMs: { median: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), max: sorted.at(-1) ?? 0 },
      points,
      resources: { start: atStart, end: atEnd, afterStop: resources() },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function render(r: SoakReport): string {
  const fmt = (x: number): string => x.toFixed(1);
  return [
    `soak: ${r.hosts} hosts, ${r.vms} VMs, ${r.rounds} rounds over ${fmt(r.simHours)} simulated hours; migrations ${JSON.stringify(r.migrations)}`,
    `round time (wall): median ${fmt(r.roundMs.median)} ms, p95 ${fmt(r.roundMs.p95)} ms, max ${fmt(r.roundMs.max)} ms`,
    table(
      ["round", "sim h", "RSS MiB", "heap MiB", "DB MiB", "host samples", "kept h", "rounds", "decisions", "migrations", "events"],
      r.points.map((p) => [p.round, fmt(p.simHours), fmt(p.rssMiB), fmt(p.heapMiB), fmt(p.dbBytes / MiB), p.rows.hostSamples, fmt(p.sampleSpanHours), p.rows.rounds, p.rows.decisions, p.rows.migrations, p.rows.events]),
    ),
    `handles start ${JSON.stringify(r.resources.start.handles)} end ${JSON.stringify(r.resources.end.handles)} after stop ${JSON.stringify(r.resources.afterStop.handles)}`,
    `process listeners start ${r.resources.start.processListeners} end ${r.resources.end.processListeners} after stop ${r.resources.afterStop.processListeners}`,
  ].join("\n");
}

function arg(name: string, fallback: number): number {
  const v = Number(argValue(name));
  return Number.isFinite(v) ? v : fallback;
}

async function main(): Promise<void> {
  const r = await runSoak({
    cells: arg("cells", FULL.cells),
    hostsPerCell: arg("hosts-per-cell", FULL.hostsPerCell),
    vmsPerHost: arg("vms-per-host", FULL.vmsPerHost),
    rounds: arg("rounds", FULL.rounds),
    intervalMin: arg("interval-min", FULL.intervalMin),
    retentionHours: arg("retention-hours", FULL.retentionHours),
    roundRetentionDays: arg("round-retention-days", FULL.roundRetentionDays),
    sampleEvery: arg("sample-every", FULL.sampleEvery),
  });
  console.log(render(r));
  console.log(JSON.stringify({ bench: "soak", ...r }));
}

const entry = process.argv[1];
if (entry !== undefined && resolve(entry) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
