/**
 * bench/convergence — one live migration per case through the real Executor on a simulated two-host cluster
 * (shared storage, VirtualClock), once per convergence guard: ballast's (force-complete; and with post-copy
 * permitted), Nova's defaults, and no guard at all (the bench cancels it at a hard wall of 3× Nova's budget and
 * reports "never"). Issue 3 targets: every case completes or aborts cleanly within its budget, and ballast
 * completes the non-converging cases (dirty rate ≥ bandwidth) at least 5× sooner than the Nova-default guard.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/convergence.js [--json]
 *
 * Deterministic: the simulator is seeded and time is virtual.
 */
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { migrationSchema, type MigrationConfig } from "../src/config/schema.js";
import { ballastGuard, completionBudgetMs, noGuard, novaDefaultGuard, type ConvergenceGuard } from "../src/daemon/convergence.js";
import { Executor } from "../src/daemon/executor.js";
import type { Driver, GuardAction, MigrationOutcome } from "../src/drivers/driver.js";
import { createSimCluster, pickMove, SimDriver, type SimCluster, type SimConfigInput } from "../src/drivers/sim/index.js";
import type { Move } from "../src/model/index.js";
import { IN_MEMORY, openHistory } from "../src/store/index.js";
import { VirtualClock } from "../src/util/clock.js";
import { CASES, type ConvergenceCase } from "./convergence-cases.js";

export { CASES, SMOKE_CASES, type ConvergenceCase } from "./convergence-cases.js";

/** Nova's published defaults (nova.conf [libvirt] live_migration_*). */
const NOVA_DEFAULTS = {
  maxDowntimeMs: 500,
  downtimeSteps: 10,
  downtimeDelaySecPerGiB: 75,
  completionTimeoutSecPerGiB: 800,
  timeoutAction: "abort",
  permitPostCopy: false,
  permitAutoConverge: false,
} as const;

export interface GuardSpec {
  readonly name: string;
  readonly guard: ConvergenceGuard;
  readonly config: MigrationConfig;
}

export const GUARDS: readonly GuardSpec[] = [
  { name: "ballast", guard: ballastGuard, config: migrationSchema.parse({ timeoutAction: "force-complete" }) },
  { name: "ballast+pc", guard: ballastGuard, config: migrationSchema.parse({ timeoutAction: "force-complete", permitPostCopy: true }) },
  { name: "nova", guard: novaDefaultGuard, config: migrationSchema.parse(NOVA_DEFAULTS) },
  { name: "none", guard: noGuard, config: migrationSchema.parse(NOVA_DEFAULTS) },
];

/** The unguarded run is cancelled by the bench after this multiple of Nova's completion budget. */
export const WALL_FACTOR = 3;

export type RunOutcome = "succeeded" | "aborted" | "failed" | "never";

export interface RunResult {
  readonly case: string;
  readonly memoryGiB: number;
  readonly ratio: number;
  readonly bandwidthMiBps: number;
  readonly guard: string;
  /** Simulator seed and the VM moved (reproducible). */
  readonly seed: number;
  readonly vm: string;
  readonly outcome: RunOutcome;
  /** Simulated seconds from intent to the recorded end (for "never": when the bench gave up). */
  readonly timeS: number;
  readonly downtimeMs: number | null;
  /** Memory passes: from the hypervisor's outcome on success, else the last sample's iteration. */
  readonly passes: number | null;
  readonly dataMiB: number | null;
  /**
   * After a forced completion (pause): how long the guest sat paused on the destination between the hypervisor's
   * end of the job and the executor's resume (its next poll). Not part of the reported downtime; null otherwise.
   */
  readonly pausedAfterEndMs: number | null;
  /** Guard actions, in order, condensed ("dt×3→500 pause"). */
  readonly actions: string;
  /** Ended running on exactly one host (destination on success, source otherwise), no job left. */
  readonly clean: boolean;
  readonly where: string;
  /** Nova's completion budget for this VM (800 s/GiB). */
  readonly budgetS: number;
  /** Ended (succeeded or aborted) within the budget plus two poll intervals. */
  readonly withinBudget: boolean;
  readonly error?: string;
}

/** Simulator config for a case: two hosts sharing storage, enough VMs per host that the RAM size exists. */
function simFor(c: ConvergenceCase, seed: number): SimConfigInput {
  const vmsPerHost = Math.max(2, Math.min(60, Math.round((256 * 0.6) / c.memoryGiB)));
  return {
    seed,
    cells: [{ name: "bench", hosts: 2, vmsPerHost }],
    bandwidthMiBps: c.bandwidthMiBps,
    heavyDirtierFraction: 0,
    migrationFailureRate: 0,
  };
}

const pickFor = (cluster: SimCluster, c: ConvergenceCase): ReturnType<typeof pickMove> =>
  pickMove(cluster.sample(), { minMemoryMiB: c.memoryGiB * 1024, maxMemoryMiB: c.memoryGiB * 1024 });

/** The first seed whose inventory has a running, shared-storage VM of exactly the case's RAM. */
export function seedFor(c: ConvergenceCase): number {
  for (let seed = 1; seed <= 500; seed++) {
    try {
      pickFor(createSimCluster(simFor(c, seed), new VirtualClock()), c);
      return seed;
    } catch {
      // no VM of that size with this seed: try the next
    }
  }
  throw new Error(`bench: no seed gives a ${c.memoryGiB} GiB shared-storage VM`);
}

function condense(actions: readonly GuardAction[]): string {
  const out: string[] = [];
  let raises = 0;
  let lastMs = 0;
  const flush = (): void => {
    if (raises > 0) out.push(raises === 1 ? `dt→${lastMs}` : `dt×${raises}→${lastMs}`);
    raises = 0;
  };
  for (const a of actions) {
    if (a.kind === "raise-downtime") {
      raises++;
      lastMs = a.ms;
      continue;
    }
    flush();
    out.push(a.kind);
  }
  flush();
  return out.join(" ") || "-";
}

/** Runs one migration of the case's VM under one guard on a fresh cluster and clock. */
export async function runCase(c: ConvergenceCase, spec: GuardSpec, seed = seedFor(c)): Promise<RunResult> {
  const clock = new VirtualClock();
  const cluster = createSimCluster(simFor(c, seed), clock);
  const pick = pickFor(cluster, c);
  cluster.setDirtyRate(pick.vm, c.ratio * c.bandwidthMiBps);

  const inner = new SimDriver(cluster);
  let hvOutcome: MigrationOutcome | undefined;
  const driver: Driver = {
    name: inner.name,
    capabilities: inner.capabilities,
    sample: () => inner.sample(),
    migrate: async (req) => {
      const handle = await inner.migrate(req);
      handle.done.then(
        (o) => (hvOutcome = o),
        () => undefined,
      );
      return handle;
    },
    locate: (vm) => inner.locate(vm),
    cancel: (vm) => inner.cancel(vm),
    resume: (vm, host) => inner.resume(vm, host),
    close: () => inner.close(),
  };

  const memoryMiB = pick.vmInfo.memoryMiB;
  const budgetMs = completionBudgetMs(memoryMiB, 0, spec.config);
  const wallMs = WALL_FACTOR * completionBudgetMs(memoryMiB, 0, NOVA_DEFAULTS);
  const actions: GuardAction[] = [];
  let lastIteration: number | null = null;
  let job: ReturnType<SimCluster["job"]>;
  let gaveUp = false;

  const journal = openHistory(IN_MEMORY);
  try {
    const executor = new Executor({
      driver,
      journal,
      clock,
      guard: spec.guard,
      observer: {
        onStats: (_m, s) => {
          lastIteration = s.memoryIteration;
          job ??= cluster.job(pick.vm);
          if (s.elapsedMs >= wallMs && !gaveUp) {
            gaveUp = true;
            try {
              cluster.cancel(pick.vm, `bench: no end after ${wallMs / 1000} s`);
            } catch {
              // post-copy cannot be aborted; it ends on its own
            }
          }
        },
        onGuard: (_m, d) => actions.push(d.action),
      },
    });
    const move: Move = { vm: pick.vm, from: pick.from, to: pick.to, kind: pick.kind, policy: "bench", reason: c.name };
    const result = await executor.execute(move, pick.vmInfo, spec.config, null);

    const placements = cluster.vmPlacements(pick.vm);
    const outcome: RunOutcome = gaveUp && result.status !== "succeeded" ? "never" : result.status;
    const expectedHost = result.status === "succeeded" ? pick.to : pick.from;
    const [only, ...rest] = placements;
    const clean = cluster.jobs().length === 0 && rest.length === 0 && only?.host === expectedHost && only.state === "running";
    const ended = outcome === "succeeded" || outcome === "aborted";
    const jobEnd = job?.endedAt ?? null;
    const paused = actions.some((a) => a.kind === "pause");
    const pausedAfterEndMs = paused && result.status === "succeeded" && jobEnd !== null ? clock.now() - jobEnd : null;
    return {
      case: c.name,
      memoryGiB: c.memoryGiB,
      ratio: c.ratio,
      bandwidthMiBps: c.bandwidthMiBps,
      guard: spec.name,
      seed,
      vm: pick.vm,
      outcome,
      timeS: result.durationMs / 1000,
      downtimeMs: result.downtimeMs ?? null,
      passes: hvOutcome?.status === "succeeded" ? hvOutcome.passes : lastIteration,
      dataMiB: result.dataMiB ?? null,
      pausedAfterEndMs,
      actions: condense(actions),
      clean,
      where: placements.map((p) => `${p.host === pick.to ? "dst" : p.host === pick.from ? "src" : p.host}:${p.state}`).join(",") || "nowhere",
      budgetS: budgetMs / 1000,
      withinBudget: ended && result.durationMs <= budgetMs + 2 * spec.config.pollIntervalMs,
      ...(result.error !== undefined && { error: result.error }),
    };
  } finally {
    journal.close();
  }
}

export interface GuardSummary {
  readonly guard: string;
  readonly runs: number;
  readonly succeeded: number;
  readonly aborted: number;
  readonly failed: number;
  readonly never: number;
  readonly completionRate: number;
  readonly clean: number;
  readonly withinBudget: number;
  /** Over the non-converging cases (ratio ≥ 1). */
  readonly nonConvergingCompleted: number;
  readonly maxDowntimeMs: number | null;
  /** Longest time a guest the guard paused stayed paused on the destination after the job ended. */
  readonly maxPausedAfterEndMs: number | null;
}

export interface SpeedupRow {
  readonly case: string;
  readonly ballastS: number;
  readonly ballastOutcome: RunOutcome;
  readonly novaS: number;
  readonly novaOutcome: RunOutcome;
  /** nova time / ballast time. */
  readonly speedup: number;
}

export interface BenchSummary {
  readonly guards: readonly GuardSummary[];
  readonly nonConverging: readonly SpeedupRow[];
  /**
   * Converging cases (dirty rate < bandwidth) that Nova's guard completed live, but in which ballast's guard
   * paused the guest or switched to post-copy anyway: a false escalation.
   */
  readonly convergingForced: readonly { case: string; guard: string; actions: string; downtimeMs: number | null; novaDowntimeMs: number | null }[];
  readonly minSpeedup: number | null;
  readonly geomeanSpeedup: number | null;
  readonly targets: {
    /** ballast completes every non-converging case ≥ 5× sooner than nova. */
    readonly speedup5x: boolean;
    /** ballast and nova: every case succeeded or aborted, cleanly, within its budget. */
    readonly cleanWithinBudget: boolean;
  };
}

export function summarise(rows: readonly RunResult[]): BenchSummary {
  const names = [...new Set(rows.map((r) => r.guard))];
  const guards = names.map((guard): GuardSummary => {
    const rs = rows.filter((r) => r.guard === guard);
    const count = (o: RunOutcome): number => rs.filter((r) => r.outcome === o).length;
    const downtimes = rs.flatMap((r) => (r.downtimeMs === null ? [] : [r.downtimeMs]));
    const lags = rs.flatMap((r) => (r.pausedAfterEndMs === null ? [] : [r.pausedAfterEndMs]));
    return {
      guard,
      runs: rs.length,
      succeeded: count("succeeded"),
      aborted: count("aborted"),
      failed: count("failed"),
      never: count("never"),
      completionRate: rs.length ? count("succeeded") / rs.length : 0,
      clean: rs.filter((r) => r.clean).length,
      withinBudget: rs.filter((r) => r.withinBudget).length,
      nonConvergingCompleted: rs.filter((r) => r.ratio >= 1 && r.outcome === "succeeded").length,
      maxDowntimeMs: downtimes.length ? Math.max(...downtimes) : null,
      maxPausedAfterEndMs: lags.length ? Math.max(...lags) : null,
    };
  });
  const nonConverging: SpeedupRow[] = [];
  for (const b of rows.filter((r) => r.guard === "ballast" && r.ratio >= 1)) {
    const n = rows.find((r) => r.guard === "nova" && r.case === b.case);
    if (!n) continue;
    nonConverging.push({
      case: b.case,
      ballastS: b.timeS,
      ballastOutcome: b.outcome,
      novaS: n.timeS,
      novaOutcome: n.outcome,
      speedup: n.timeS / Math.max(b.timeS, 1e-3),
    });
  }
  const speedups = nonConverging.map((s) => s.speedup);
  const minSpeedup = speedups.length ? Math.min(...speedups) : null;
  const geomeanSpeedup = speedups.length ? Math.exp(speedups.reduce((a, s) => a + Math.log(s), 0) / speedups.length) : null;
  const convergingForced = rows.flatMap((r) => {
    if (r.ratio >= 1 || !r.guard.startsWith("ballast") || !/pause|post-copy/.test(r.actions)) return [];
    const n = rows.find((x) => x.guard === "nova" && x.case === r.case);
    if (n?.outcome !== "succeeded") return [];
    return [{ case: r.case, guard: r.guard, actions: r.actions, downtimeMs: r.downtimeMs, novaDowntimeMs: n.downtimeMs }];
  });
  const guarded = rows.filter((r) => r.guard === "ballast" || r.guard === "ballast+pc" || r.guard === "nova");
  return {
    guards,
    nonConverging,
    convergingForced,
    minSpeedup,
    geomeanSpeedup,
    targets: {
      speedup5x: nonConverging.length > 0 && nonConverging.every((s) => s.ballastOutcome === "succeeded" && s.speedup >= 5),
      cleanWithinBudget: guarded.every((r) => r.clean && r.withinBudget),
    },
  };
}

export async function runBench(
  cases: readonly ConvergenceCase[] = CASES,
  guards: readonly GuardSpec[] = GUARDS,
): Promise<{ rows: RunResult[]; summary: BenchSummary }> {
  const rows: RunResult[] = [];
  for (const c of cases) {
    const seed = seedFor(c);
    for (const g of guards) rows.push(await runCase(c, g, seed));
  }
  return { rows, summary: summarise(rows) };
}

// ---------------------------------------------------------------- output

function table(head: readonly string[], body: readonly (readonly string[])[], right: ReadonlySet<number>): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]): string =>
    r.map((cell, i) => (right.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join("  ").trimEnd();
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

const fmt = (x: number | null, digits = 0): string => (x === null ? "-" : x.toFixed(digits));

export function render(rows: readonly RunResult[], summary: BenchSummary): string {
  const out: string[] = [];
  let prev = "";
  const body = rows.map((r) => {
    const first = r.case !== prev;
    prev = r.case;
    return [
      first ? r.case : "",
      first ? String(r.memoryGiB) : "",
      first ? String(r.ratio) : "",
      first ? String(r.bandwidthMiBps) : "",
      r.guard,
      r.outcome,
      fmt(r.timeS, 1),
      r.pausedAfterEndMs === null ? fmt(r.downtimeMs) : `${fmt(r.downtimeMs)} (+${r.pausedAfterEndMs})`,
      fmt(r.passes),
      r.actions,
      r.clean ? "yes" : "NO",
      r.where,
      r.withinBudget ? "yes" : r.outcome === "never" ? "-" : "NO",
    ];
  });
  out.push(
    table(
      ["case", "GiB", "dirty/bw", "MiB/s", "guard", "outcome", "time s", "downtime ms", "passes", "guard actions", "clean", "ended on", "≤budget"],
      body,
      new Set([1, 2, 3, 6, 7, 8]),
    ),
  );
  out.push("");
  out.push(
    table(
      ["guard", "runs", "succeeded", "aborted", "failed", "never", "completion", "clean", "≤budget", "dirty≥bw done", "max downtime ms"],
      summary.guards.map((g) => [
        g.guard,
        String(g.runs),
        String(g.succeeded),
        String(g.aborted),
        String(g.failed),
        String(g.never),
        `${(g.completionRate * 100).toFixed(0)} %`,
        `${g.clean}/${g.runs}`,
        `${g.withinBudget}/${g.runs}`,
        String(g.nonConvergingCompleted),
        fmt(g.maxDowntimeMs),
      ]),
      new Set([1, 2, 3, 4, 5, 6, 10]),
    ),
  );
  out.push("");
  out.push("non-converging cases (dirty rate ≥ bandwidth): nova time / ballast time");
  out.push(
    table(
      ["case", "ballast s", "ballast", "nova s", "nova", "nova/ballast"],
      summary.nonConverging.map((s) => [s.case, fmt(s.ballastS, 1), s.ballastOutcome, fmt(s.novaS, 1), s.novaOutcome, `${s.speedup.toFixed(1)}×`]),
      new Set([1, 3, 5]),
    ),
  );
  out.push("");
  out.push(
    `speedup: min ${fmt(summary.minSpeedup, 1)}×, geometric mean ${fmt(summary.geomeanSpeedup, 1)}×   (target ≥ 5×: ${summary.targets.speedup5x ? "met" : "NOT met"})`,
  );
  out.push(`ballast, ballast+pc, nova: every case ended cleanly within its budget: ${summary.targets.cleanWithinBudget ? "yes" : "NO"}`);
  for (const f of summary.convergingForced) {
    out.push(
      `WARNING ${f.case} converges (Nova completed it live, downtime ${fmt(f.novaDowntimeMs)} ms) but ${f.guard} escalated: ${f.actions}, downtime ${fmt(f.downtimeMs)} ms`,
    );
  }
  const lag = Math.max(...summary.guards.map((g) => g.maxPausedAfterEndMs ?? 0));
  if (lag > 0) {
    out.push(`(+N): a guest paused to force completion stayed paused on the destination N ms more, until the executor's next poll resumed it (max ${lag} ms); not in the reported downtime`);
  }
  out.push(`none: cancelled by the bench after ${WALL_FACTOR}× Nova's budget ("never")`);
  return out.join("\n");
}

async function main(): Promise<void> {
  const json = process.argv.includes("--json");
  const { rows, summary } = await runBench();
  if (!json) console.log(render(rows, summary));
  console.log(JSON.stringify({ bench: "convergence", rows, summary }));
  if (!summary.targets.speedup5x || !summary.targets.cleanWithinBudget) process.exitCode = 1;
}

const entry = process.argv[1];
if (entry !== undefined && resolve(entry) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
