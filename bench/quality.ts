/**
 * bench/quality — issue 6: ballast against the peers' published balancing methods on the shipped scenarios
 * (config/scenarios/*.yaml), each algorithm on the same seeded simulator (same load, same migration link and
 * failure model) and measured by the same report code as `ballast simulate --scenario`:
 *   (a) none: no balancing (operator drains are still evacuated, as every platform does);
 *   (b) ProxLB: largest guest from the busiest to the emptiest node while the gap exceeds balanciness
 *       (memory and cpu methods);
 *   (c) Xen Orchestra performance mode with its defaults;
 *   ballast: the real daemon with the scenario file's own configuration.
 * Targets per scenario: ballast's hotspot host-minutes ≥ 90 % below none; ≤ half the migrations of (b) with
 * hotspot minutes no worse than (b)'s; fewer migrations than (c) at equal or better hotspot minutes; no ping-pong.
 *
 *   npm run bench:quality [-- --json] [-- --duration 24h --scenarios DIR --seed-offset N --seeds K]
 *
 * --seeds K runs every scenario on K seeds (the file's seed plus offsets first … first + K − 1): the same
 * scenario with other VM sizes, bursts and failures, to tell a robust result from a lucky one.
 *
 * Deterministic: seeded simulator, virtual time. Missed targets are reported, not fatal.
 */
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { table } from "../src/cli/table.js";
import { loadConfig } from "../src/config/index.js";
import { ballastBalancer, runSimulation, type BalancerFactory, type SimulationReport } from "../src/daemon/simulate.js";
import { durationMs } from "../src/util/duration.js";
import { argValue } from "./args.js";
import { proxlb } from "./baselines/proxlb.js";
import { baseline, noBalancing } from "./baselines/runner.js";
import { xoPerformance } from "./baselines/xo.js";

export interface Algorithm {
  readonly name: string;
  /** A fresh balancer per run (baselines keep state, e.g. XO's load history). */
  readonly factory: () => BalancerFactory;
}

export const ALGORITHMS: readonly Algorithm[] = [
  { name: "none", factory: () => baseline(noBalancing) },
  { name: "proxlb-mem", factory: () => baseline(proxlb("memory")) },
  { name: "proxlb-cpu", factory: () => baseline(proxlb("cpu")) },
  { name: "xo-perf", factory: () => baseline(xoPerformance()) },
  { name: "ballast", factory: () => ballastBalancer },
];

export interface QualityRow {
  readonly scenario: string;
  readonly algorithm: string;
  readonly migrations: number;
  readonly failed: number;
  readonly gibCopied: number;
  readonly hotspotHostMinutes: number;
  readonly meanImbalanceCpu: number;
  readonly maxImbalanceCpu: number;
  readonly meanImbalanceMemory: number;
  readonly maxImbalanceMemory: number;
  readonly pingPongs: number;
  readonly blocked: Record<string, number>;
  readonly convergenceFailures: number;
}

export interface TargetCheck {
  readonly scenario: string;
  readonly target: string;
  readonly met: boolean;
  readonly detail: string;
}

function row(scenario: string, r: SimulationReport): QualityRow {
  return {
    scenario,
    algorithm: r.algorithm,
    migrations: r.migrations.total,
    failed: (r.migrations.byOutcome.failed ?? 0) + (r.migrations.byOutcome.aborted ?? 0),
    gibCopied: r.gibCopied,
    hotspotHostMinutes: r.hotspotHostMinutes,
    meanImbalanceCpu: r.imbalance.meanCpu,
    maxImbalanceCpu: r.imbalance.maxCpu,
    meanImbalanceMemory: r.imbalance.meanMemory,
    maxImbalanceMemory: r.imbalance.maxMemory,
    pingPongs: r.pingPongs,
    blocked: r.blockedByReason,
    convergenceFailures: r.convergenceFailures,
  };
}

/** Runs every algorithm on one scenario file. */
export async function runScenario(
  file: string,
  opts: { durationMs: number; roundIntervalMs: number; algorithms?: readonly Algorithm[]; seedOffset?: number },
): Promise<QualityRow[]> {
  const loaded = loadConfig(file);
  // Another seed: the same scenario with other VM sizes, bursts and failures (how robust a result is).
  const config = opts.seedOffset && loaded.sim ? { ...loaded, sim: { ...loaded.sim, seed: loaded.sim.seed + opts.seedOffset } } : loaded;
  const name = config.scenario?.name ?? file;
  const rows: QualityRow[] = [];
  for (const a of opts.algorithms ?? ALGORITHMS) rows.push(row(name, await runSimulation(config, a.factory(), opts)));
  return rows;
}

const pctBelow = (x: number, ref: number): string => (ref === 0 ? "n/a (reference 0)" : `${(100 * (1 - x / ref)).toFixed(1)} % below`);

/** The issue's targets for one scenario's rows. */
export function checkTargets(rows: readonly QualityRow[]): TargetCheck[] {
  const by = new Map(rows.map((r) => [r.algorithm, r] as const));
  const b = by.get("ballast");
  if (!b) return [];
  const out: TargetCheck[] = [];
  const scenario = b.scenario;
  const none = by.get("none");
  if (none) {
    const limit = none.hotspotHostMinutes * 0.1;
    out.push({
      scenario,
      target: "hotspot ≥ 90 % below none",
      met: b.hotspotHostMinutes <= limit,
      detail: `${b.hotspotHostMinutes} vs ${none.hotspotHostMinutes} (${pctBelow(b.hotspotHostMinutes, none.hotspotHostMinutes)})`,
    });
  }
  for (const name of ["proxlb-mem", "proxlb-cpu"]) {
    const p = by.get(name);
    if (!p) continue;
    out.push({
      scenario,
      target: `≤ ½ migrations of ${name}, hotspot no worse`,
      met: b.migrations <= p.migrations / 2 && b.hotspotHostMinutes <= p.hotspotHostMinutes,
      detail: `migrations ${b.migrations} vs ${p.migrations}; hotspot ${b.hotspotHostMinutes} vs ${p.hotspotHostMinutes}`,
    });
  }
  const xo = by.get("xo-perf");
  if (xo) {
    out.push({
      scenario,
      target: "fewer migrations than xo-perf, hotspot ≤",
      met: b.migrations < xo.migrations && b.hotspotHostMinutes <= xo.hotspotHostMinutes,
      detail: `migrations ${b.migrations} vs ${xo.migrations}; hotspot ${b.hotspotHostMinutes} vs ${xo.hotspotHostMinutes}`,
    });
  }
  out.push({ scenario, target: "zero ping-pongs", met: b.pingPongs === 0, detail: `${b.pingPongs}` });
  return out;
}

export function formatTable(rows: readonly QualityRow[]): string {
  return table(
    ["scenario", "algorithm", "migr", "failed", "GiB", "hot host-min", "imb cpu mean/max", "imb mem mean/max", "ping-pong", "blocked", "conv fail"],
    rows.map((r) => [
      r.scenario,
      r.algorithm,
      r.migrations,
      r.failed,
      r.gibCopied,
      r.hotspotHostMinutes,
      `${r.meanImbalanceCpu.toFixed(3)}/${r.maxImbalanceCpu.toFixed(3)}`,
      `${r.meanImbalanceMemory.toFixed(3)}/${r.maxImbalanceMemory.toFixed(3)}`,
      r.pingPongs,
      Object.values(r.blocked).reduce((a, n) => a + n, 0),
      r.convergenceFailures,
    ]),
  );
}

async function main(): Promise<void> {
  const dir = argValue("scenarios") ?? "config/scenarios";
  const duration = durationMs(argValue("duration") ?? "24h");
  if (duration === undefined) throw new Error("--duration: expected a duration like 6h or 24h");
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => join(dir, f));
  const first = Number(argValue("seed-offset") ?? 0);
  const seeds = Number(argValue("seeds") ?? 1);
  if (!Number.isInteger(first) || !Number.isInteger(seeds) || seeds < 1) throw new Error("--seed-offset: expected an integer; --seeds: expected a whole number ≥ 1");
  const started = Date.now();
  const rows: QualityRow[] = [];
  const targets: TargetCheck[] = [];
  const perSeed: string[] = [];
  for (let seedOffset = first; seedOffset < first + seeds; seedOffset++) {
    // With several seeds each run is labelled by its offset, so the tables tell them apart.
    const label = (name: string): string => (seeds > 1 ? `${name} +${seedOffset}` : name);
    const seedTargets: TargetCheck[] = [];
    for (const file of files) {
      const r = (await runScenario(file, { durationMs: duration, roundIntervalMs: 60_000, seedOffset })).map((x) => ({ ...x, scenario: label(x.scenario) }));
      rows.push(...r);
      seedTargets.push(...checkTargets(r));
    }
    targets.push(...seedTargets);
    perSeed.push(`seed offset ${seedOffset}: ${seedTargets.filter((t) => t.met).length}/${seedTargets.length}`);
  }
  if (process.argv.includes("--json")) {
    process.stdout.write(JSON.stringify({ bench: "quality", durationHours: duration / 3_600_000, rows, targets }, null, 2) + "\n");
    return;
  }
  process.stdout.write(`${formatTable(rows)}\n\n`);
  process.stdout.write(
    `${table(
      ["scenario", "target", "met", "detail"],
      targets.map((t) => [t.scenario, t.target, t.met ? "yes" : "NO", t.detail]),
    )}\n\n${seeds > 1 ? `${perSeed.join("; ")}\n` : ""}${targets.filter((t) => t.met).length}/${targets.length} targets met; ${files.length} scenarios × ${ALGORITHMS.length} algorithms × ${seeds} seed(s) in ${((Date.now() - started) / 1000).toFixed(0)} s wall time\n`,
  );
}

const entry = process.argv[1];
if (entry !== undefined && resolve(entry) === fileURLToPath(import.meta.url)) await main();
