import type { DriverCapabilities, GuardAction, JobStats } from "../drivers/driver.js";
import type { MigrationKind } from "../model/index.js";

/** The convergence settings of the `migration` config section (defaults match Nova's where Nova has one). */
export interface ConvergenceConfig {
  /** Highest downtime the guard may allow (Nova live_migration_downtime, 500 ms). */
  readonly maxDowntimeMs: number;
  /** Downtime is raised in this many steps (Nova live_migration_downtime_steps, 10). */
  readonly downtimeSteps: number;
  /** Time between steps, per GiB of RAM + disk (Nova live_migration_downtime_delay, 75 s). */
  readonly downtimeDelaySecPerGiB: number;
  /** Budget for the whole migration, per GiB of RAM + copied disk (Nova, 800 s). */
  readonly completionTimeoutSecPerGiB: number;
  /** No new low of remaining data across memory passes for this long is a stall (0: off). */
  readonly progressTimeoutSec: number;
  readonly permitPostCopy: boolean;
  readonly permitAutoConverge: boolean;
  /** What a spent budget or a stall leads to once cheaper steps are exhausted. */
  readonly timeoutAction: "abort" | "force-complete";
  /** Consecutive samples with dirty rate ≥ bandwidth before escalating at once. */
  readonly escalateAfterSamples: number;
}

/** What the guard knows about the migration it watches. */
export interface GuardInput {
  /** Job statistics so far, oldest first (about one a second). */
  readonly stats: readonly JobStats[];
  readonly memoryMiB: number;
  /** Disk copied by a block migration (0 otherwise). */
  readonly diskMiB: number;
  readonly kind: MigrationKind;
  readonly config: ConvergenceConfig;
  readonly capabilities: DriverCapabilities;
  /** Actions already taken, oldest first, with the sample count when each was taken. */
  readonly taken: readonly TakenAction[];
}

export interface TakenAction {
  readonly action: GuardAction;
  /** stats.length when the action was taken. */
  readonly atSample: number;
}

export type GuardDecision =
  | { readonly kind: "continue" }
  | { readonly kind: "act"; readonly action: GuardAction; readonly reason: string };

function lastRaised(taken: readonly TakenAction[]): number | undefined {
  for (let i = taken.length - 1; i >= 0; i--) {
    const a = taken[i]?.action;
    if (a?.kind === "raise-downtime") return a.ms;
  }
  return undefined;
}

/** A pure decision from job-statistics history to the next step (DESIGN: convergence guards). */
export type ConvergenceGuard = (input: GuardInput) => GuardDecision;

const CONTINUE: GuardDecision = { kind: "continue" };
const act = (action: GuardAction, reason: string): GuardDecision => ({ kind: "act", action, reason });

/** RAM plus copied disk in GiB, at least 1 so tiny guests still get a sane budget (Nova's data_gb). */
export const dataGiB = (memoryMiB: number, diskMiB: number): number => Math.max(1, (memoryMiB + diskMiB) / 1024);

export function completionBudgetMs(memoryMiB: number, diskMiB: number, cfg: Pick<ConvergenceConfig, "completionTimeoutSecPerGiB">): number {
  return dataGiB(memoryMiB, diskMiB) * cfg.completionTimeoutSecPerGiB * 1000;
}

/** Nova's downtime schedule: step i (0…steps) at i × delay, downtime rising linearly from max/steps to max. */
export function downtimeAt(elapsedMs: number, memoryMiB: number, diskMiB: number, cfg: ConvergenceConfig): number {
  const steps = Math.max(1, cfg.downtimeSteps);
  const delayMs = cfg.downtimeDelaySecPerGiB * dataGiB(memoryMiB, diskMiB) * 1000;
  const base = cfg.maxDowntimeMs / steps;
  const offset = (cfg.maxDowntimeMs - base) / steps;
  const i = delayMs > 0 ? Math.min(steps, Math.floor(elapsedMs / delayMs)) : steps;
  return Math.round(base + offset * i);
}

/** The downtime a migration starts with: the first step of the schedule. */
export const initialDowntimeMs = (cfg: ConvergenceConfig): number => Math.round(cfg.maxDowntimeMs / Math.max(1, cfg.downtimeSteps));

/**
 * Progress judged per memory pass: a pass that starts below every earlier pass's start (the dirty set after a
 * sync) is progress for as long as it runs; a pass that does not is progress for none of its time. Remaining
 * saw-tooths within passes, so single samples are never compared across passes. Returns the elapsed time
 * of the last progress.
 */
export function lastProgressMs(stats: readonly JobStats[]): number {
  let lastProgress = stats[0]?.elapsedMs ?? 0;
  let bestPeak = Infinity;
  let pass = 0;
  let productive = false;
  let prevRemaining = Infinity;
  for (const s of stats) {
    if (s.memoryIteration !== pass) {
      pass = s.memoryIteration;
      productive = s.dataRemainingMiB < bestPeak;
      bestPeak = Math.min(bestPeak, s.dataRemainingMiB);
    }
    // The first pass copies everything once (disk first for block migration): any drop is progress.
    if (productive && (pass > 1 || s.dataRemainingMiB < prevRemaining)) lastProgress = s.elapsedMs;
    prevRemaining = s.dataRemainingMiB;
  }
  return lastProgress;
}

/** Headroom on the downtime computed from one pass's dirty set. */
const DOWNTIME_MARGIN = 1.25;

/** The largest remaining data seen in the current memory pass. */
export function currentPassPeak(stats: readonly JobStats[]): number {
  const pass = stats.at(-1)?.memoryIteration;
  let peak = 0;
  for (let i = stats.length - 1; i >= 0 && stats[i]?.memoryIteration === pass; i--) peak = Math.max(peak, stats[i]?.dataRemainingMiB ?? 0);
  return peak;
}

/**
 * How many of the latest samples in a row show the guest dirtying memory at least as fast as the link copies
 * it. Only from the second pass on: during the first, remaining is the whole RAM, not a dirty set, and
 * forcing completion then would cost the whole copy in downtime.
 */
export function outpacedSamples(stats: readonly JobStats[]): number {
  let n = 0;
  for (let i = stats.length - 1; i >= 0; i--) {
    const s = stats[i];
    if (!s || s.memoryIteration < 2 || s.dirtyRateMiBps === undefined || s.bandwidthMiBps === undefined || s.bandwidthMiBps <= 0) break;
    if (s.dirtyRateMiBps < s.bandwidthMiBps) break;
    n++;
  }
  return n;
}

/**
 * ballast's guard. Like Nova it raises downtime on a schedule and enforces a completion budget; beyond
 * Nova it watches the dirty rate and per-pass progress and, when pre-copy cannot converge, climbs the
 * ladder at once instead of waiting out the budget: the downtime that would let the remaining data go
 * (only if within maxDowntimeMs), then post-copy (if permitted), then pausing the guest (if the timeout
 * action is force-complete), else abort. Post-copy is never aborted: the guest already runs on the destination.
 */
export const ballastGuard: ConvergenceGuard = (input) => {
  const { stats, config: cfg, capabilities: cap, taken, memoryMiB, diskMiB } = input;
  const last = stats.at(-1);
  if (!last) return CONTINUE;
  const did = (k: GuardAction["kind"]): boolean => taken.some((t) => t.action.kind === k);
  if (last.phase === "postcopy" || did("post-copy") || did("abort")) return CONTINUE;
  const budget = completionBudgetMs(memoryMiB, diskMiB, cfg);
  const elapsed = last.elapsedMs;
  if (last.phase === "offline" || input.kind === "cold") {
    // Nothing to converge, but a hung shutdown, copy or start must not hold the daemon: the completion budget
    // bounds a cold move too (the driver starts a guest it shut down again where it was).
    return elapsed >= budget
      ? act({ kind: "abort", reason: "cold move over its completion budget" }, `cold move not finished after ${Math.round(elapsed / 1000)} s (budget ${Math.round(budget / 1000)} s): aborting`)
      : CONTINUE;
  }

  const currentDowntime = last.maxDowntimeMs ?? lastRaised(taken) ?? initialDowntimeMs(cfg);

  if (did("pause")) {
    // A paused guest dirties nothing, so the copy must end; if it does not, the link is broken.
    const pausedAt = taken.find((t) => t.action.kind === "pause")?.atSample ?? stats.length;
    const pausedFor = elapsed - (stats[pausedAt - 1]?.elapsedMs ?? elapsed);
    const grace = Math.max(30_000, (memoryMiB / Math.max(1, last.bandwidthMiBps ?? 1)) * 3000);
    return pausedFor > grace ? act({ kind: "abort", reason: "paused guest still not copied" }, `no completion ${Math.round(pausedFor / 1000)} s after pausing the guest`) : CONTINUE;
  }

  const lastActionAt = taken.at(-1)?.atSample ?? 0;
  const settled = stats.length - lastActionAt >= cfg.escalateAfterSamples;
  const outpaced = outpacedSamples(stats) >= cfg.escalateAfterSamples;
  const stalled = cfg.progressTimeoutSec > 0 && elapsed - lastProgressMs(stats) >= cfg.progressTimeoutSec * 1000;
  const overBudget = elapsed >= budget;

  if (overBudget || ((outpaced || stalled) && settled)) {
    const why = overBudget
      ? `completion budget spent (${Math.round(elapsed / 1000)} s of ${Math.round(budget / 1000)} s)`
      : outpaced
        ? `dirty rate ${last.dirtyRateMiBps?.toFixed(0)} MiB/s ≥ bandwidth ${last.bandwidthMiBps?.toFixed(0)} MiB/s for ${outpacedSamples(stats)} samples`
        : `no new low of remaining data across passes for ${cfg.progressTimeoutSec} s`;
    // Rung 1: allow the downtime the remaining data needs, if that is within the limit.
    // The switch-over check happens at a pass boundary, where the dirty set is largest: size it on this pass's peak.
    const bw = last.bandwidthMiBps ?? 0;
    const dirtySet = currentPassPeak(stats);
    const needed = bw > 0 ? Math.ceil((dirtySet / bw) * 1000 * DOWNTIME_MARGIN) : Infinity;
    if (cap.setDowntime && !overBudget && needed <= cfg.maxDowntimeMs && needed > currentDowntime) {
      return act({ kind: "raise-downtime", ms: needed }, `${why}: the ${dirtySet.toFixed(0)} MiB dirty set fits in ${needed} ms of downtime`);
    }
    if (cap.setDowntime && !overBudget && currentDowntime < cfg.maxDowntimeMs && !outpaced) {
      return act({ kind: "raise-downtime", ms: cfg.maxDowntimeMs }, `${why}: downtime to the limit`);
    }
    if (cfg.permitPostCopy && cap.postCopy) return act({ kind: "post-copy" }, `${why}: switching to post-copy`);
    if (cfg.timeoutAction === "force-complete" && cap.pauseGuest) return act({ kind: "pause" }, `${why}: pausing the guest to force completion`);
    // Below the budget an outpaced migration may still be aborted early only when nothing else can help.
    return act({ kind: "abort", reason: why }, `${why}: aborting`);
  }

  // Nova's schedule: raise downtime step by step as time passes.
  if (cap.setDowntime) {
    const scheduled = downtimeAt(elapsed, memoryMiB, diskMiB, cfg);
    if (scheduled > currentDowntime) return act({ kind: "raise-downtime", ms: scheduled }, `downtime schedule: ${scheduled} ms at ${Math.round(elapsed / 1000)} s`);
  }
  return CONTINUE;
};

/**
 * Nova's default behaviour, for comparison in bench/convergence: the downtime schedule and the completion
 * timeout with action abort; no dirty-rate or stall detection, no post-copy.
 */
export const novaDefaultGuard: ConvergenceGuard = (input) => {
  const { stats, config: cfg, capabilities: cap, taken, memoryMiB, diskMiB } = input;
  const last = stats.at(-1);
  if (!last || taken.some((t) => t.action.kind === "abort")) return CONTINUE;
  const budget = completionBudgetMs(memoryMiB, diskMiB, cfg);
  if (last.elapsedMs >= budget) return act({ kind: "abort", reason: "completion timeout" }, "completion timeout");
  const current = last.maxDowntimeMs ?? lastRaised(taken) ?? initialDowntimeMs(cfg);
  const scheduled = downtimeAt(last.elapsedMs, memoryMiB, diskMiB, cfg);
  return cap.setDowntime && scheduled > current ? act({ kind: "raise-downtime", ms: scheduled }, "downtime schedule") : CONTINUE;
};

/** No guard at all: the migration runs until the hypervisor ends it (the seed's warning: maybe never). */
export const noGuard: ConvergenceGuard = () => CONTINUE;
