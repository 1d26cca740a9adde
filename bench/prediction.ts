/**
 * bench/prediction — how often hotspot-relief's predictive trigger is right. Every shipped scenario runs without
 * balancing (the loads as they come); at each sample, a host between cpuLow and cpuHigh is "predicted hot" when
 * its projected load within the scenario's predictMinutes reaches cpuHigh. A prediction is right when the host
 * does reach cpuHigh within that horizon; a hot onset (a sample at or above cpuHigh after one below) is caught
 * when the sample before it predicted it. Two projections are compared:
 *   step: ballast's — the rise still to come after the last step of the smoothed load (projectedRise);
 *   line: a least-squares line through the last two minutes, extended (ballast's trigger before this bench).
 *
 *   npm run bench:prediction [-- --json] [-- --scenarios DIR --duration 24h]
 */
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { table } from "../src/cli/table.js";
import { loadConfig } from "../src/config/index.js";
import { runSimulation } from "../src/daemon/simulate.js";
import type { HostId } from "../src/model/index.js";
import { projectedRise } from "../src/policies/hotspot-relief.js";
import type { LoadPoint } from "../src/policies/types.js";
import { durationMs } from "../src/util/duration.js";
import { argValue } from "./args.js";
import { baseline, noBalancing } from "./baselines/runner.js";

const ROUND_MS = 60_000;
const LINE_WINDOW_MS = 2 * 60_000;

/** Least-squares slope (load per ms) of the points within the last LINE_WINDOW_MS, 0 with fewer than two. */
function lineSlope(points: readonly LoadPoint[], nowMs: number): number {
  const recent = points.filter((p) => p.atMs >= nowMs - LINE_WINDOW_MS);
  if (recent.length < 2) return 0;
  const mt = recent.reduce((a, p) => a + p.atMs, 0) / recent.length;
  const ml = recent.reduce((a, p) => a + p.cpuLoad, 0) / recent.length;
  let num = 0;
  let den = 0;
  for (const p of recent) {
    num += (p.atMs - mt) * (p.cpuLoad - ml);
    den += (p.atMs - mt) ** 2;
  }
  return den > 0 ? num / den : 0;
}

const PROJECTIONS = {
  step: (points: readonly LoadPoint[], nowMs: number, horizonMs: number) => projectedRise(points, nowMs, horizonMs),
  line: (points: readonly LoadPoint[], nowMs: number, horizonMs: number) => lineSlope(points, nowMs) * horizonMs,
} as const;

export interface PredictionRow {
  readonly scenario: string;
  readonly projection: keyof typeof PROJECTIONS;
  readonly predictions: number;
  readonly right: number;
  readonly onsets: number;
  readonly caught: number;
}

/** Each host's load samples over a run of the scenario without balancing. */
async function samples(file: string, duration: number): Promise<{ name: string; series: Map<HostId, LoadPoint[]>; config: ReturnType<typeof loadConfig> }> {
  const config = loadConfig(file);
  const series = new Map<HostId, LoadPoint[]>();
  const none = baseline(noBalancing);
  await runSimulation(
    config,
    (world) => {
      const b = none(world);
      return {
        ...b,
        round: (snapshot) => {
          for (const h of snapshot.hosts) {
            const list = series.get(h.name) ?? [];
            list.push({ atMs: world.clock.now(), cpuLoad: h.cpuLoad });
            series.set(h.name, list);
          }
          return b.round(snapshot);
        },
      };
    },
    { durationMs: duration, roundIntervalMs: ROUND_MS },
  );
  return { name: config.scenario?.name ?? file, series, config };
}

export async function measure(file: string, duration: number): Promise<PredictionRow[]> {
  const { name, series, config } = await samples(file, duration);
  const { cpuHigh, cpuLow } = config.thresholds;
  const horizonMs = Math.max(config.policies["hotspot-relief"].predictMinutes, 1) * 60_000;
  const ahead = Math.ceil(horizonMs / ROUND_MS);
  return (Object.keys(PROJECTIONS) as (keyof typeof PROJECTIONS)[]).map((projection) => {
    let predictions = 0;
    let right = 0;
    let onsets = 0;
    let caught = 0;
    for (const points of series.values()) {
      const predicted = points.map((p, i) => p.cpuLoad >= cpuLow && p.cpuLoad < cpuHigh && p.cpuLoad + PROJECTIONS[projection](points.slice(0, i + 1), p.atMs, horizonMs) >= cpuHigh);
      points.forEach((p, i) => {
        if (predicted[i]) {
          predictions++;
          if (points.slice(i + 1, i + 1 + ahead).some((q) => q.cpuLoad >= cpuHigh)) right++;
        }
        const before = points[i - 1];
        if (before && before.cpuLoad < cpuHigh && p.cpuLoad >= cpuHigh) {
          onsets++;
          if (predicted[i - 1]) caught++;
        }
      });
    }
    return { scenario: name, projection, predictions, right, onsets, caught };
  });
}

const pct = (n: number, d: number): string => (d === 0 ? "n/a" : `${Math.round((100 * n) / d)} %`);

async function main(): Promise<void> {
  const dir = argValue("scenarios") ?? "config/scenarios";
  const duration = durationMs(argValue("duration") ?? "24h");
  if (duration === undefined) throw new Error("--duration: expected a duration like 6h or 24h");
  const rows: PredictionRow[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith(".yaml")).sort()) rows.push(...(await measure(join(dir, f), duration)));
  if (process.argv.includes("--json")) {
    process.stdout.write(JSON.stringify({ bench: "prediction", rows }, null, 2) + "\n");
    return;
  }
  const total = (p: string, k: "predictions" | "right" | "onsets" | "caught"): number => rows.filter((r) => r.projection === p).reduce((a, r) => a + r[k], 0);
  const all = Object.keys(PROJECTIONS).map((p) => ({ scenario: "all", projection: p, predictions: total(p, "predictions"), right: total(p, "right"), onsets: total(p, "onsets"), caught: total(p, "caught") }));
  process.stdout.write(
    `${table(
      ["scenario", "projection", "predicted", "right", "precision", "hot onsets", "caught beforehand"],
      [...rows, ...all].map((r) => [r.scenario, r.projection, r.predictions, r.right, pct(r.right, r.predictions), r.onsets, `${r.caught} (${pct(r.caught, r.onsets)})`]),
    )}\n`,
  );
}

const entry = process.argv[1];
if (entry !== undefined && resolve(entry) === fileURLToPath(import.meta.url)) await main();
