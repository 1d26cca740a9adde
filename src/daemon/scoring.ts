import { fillsToHigh, type Goal, type Thresholds } from "../policies/types.js";

/** Relative weight of CPU and memory headroom when scoring feasible destinations (normalised to sum 1). */
export interface ScoreWeights {
  readonly cpu: number;
  readonly memory: number;
}

export const DEFAULT_WEIGHTS: ScoreWeights = { cpu: 0.5, memory: 0.5 };

export function normaliseWeights(w: ScoreWeights): ScoreWeights {
  const cpu = Math.max(0, w.cpu);
  const memory = Math.max(0, w.memory);
  const sum = cpu + memory;
  return sum > 0 ? { cpu: cpu / sum, memory: memory / sum } : DEFAULT_WEIGHTS;
}

/**
 * Normalised headroom the destination keeps after the move, against the limit the goal holds it to
 * (cpuHigh/memHigh to evacuate, cpuLow/memLow to relieve): 1 = empty, 0 = at the limit. Weighted sum.
 * Non-increasing in both loads, so a host's score with nothing added bounds any move's score onto it.
 */
export function score(cpuAfter: number, memAfter: number, goal: Goal, t: Thresholds, base: ScoreWeights = DEFAULT_WEIGHTS): number {
  const high = fillsToHigh(goal);
  const w = weightsFor(goal, base);
  const cpuLimit = Math.max(high ? t.cpuHigh : t.cpuLow, 1e-9);
  const memLimit = Math.max(high ? t.memHigh : t.memLow, 1e-9);
  return (w.cpu * (cpuLimit - cpuAfter)) / cpuLimit + (w.memory * (memLimit - memAfter)) / memLimit;
}

/**
 * A relief is judged by the headroom it leaves in the dimension that was hot: a CPU hotspot's VM goes where CPU
 * has most room (memory only has to stay under the band, as the capacity check holds it), or the next busy host
 * is the next hotspot. Other goals weigh both.
 */
export function weightsFor(goal: Goal, w: ScoreWeights): ScoreWeights {
  if (goal.kind !== "relieve" || goal.hot === "both") return w;
  return goal.hot === "cpu" ? { cpu: 1, memory: 0 } : { cpu: 0, memory: 1 };
}
