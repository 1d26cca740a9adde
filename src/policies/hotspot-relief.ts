import { z } from "zod";
import { footprint, loadWith, memoryFraction, pendingRise, type Host, type Prediction, type Vm, type VmId } from "../model/index.js";
import type { LoadPoint, PlanNote, Policy, PolicyDefinition, PolicyInput, Proposal, Thresholds } from "./types.js";
import { compareStrings, pct } from "./text.js";

export const HOTSPOT_RELIEF = "hotspot-relief";
export const HOTSPOT_RELIEF_PRIORITY = 50;

export const hotspotReliefSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** CPU load must stay at or above cpuHigh this long before a host counts as hot (memory counts at once). */
  sustainMinutes: z.number().min(0).max(1440).default(5),
  /**
   * Predictive trigger (0 = off): a host at or above cpuLow whose smoothed load, projected this many minutes ahead
   * from its last step (the rise still to come if the demand behind it holds), reaches cpuHigh counts as hot now,
   * and is relieved enough that the projection stays under.
   */
  predictMinutes: z.number().min(0).max(60).default(0),
});
export type HotspotReliefParams = z.output<typeof hotspotReliefSchema>;

/**
 * True when every load point within the last `windowMs` is at or above `high` and the history reaches
 * back to the window's start (a point at or before `nowMs - windowMs`). Points after `nowMs` are ignored.
 * No points at all (history given, host absent) is not sustained: there is no evidence yet.
 */
export function sustainedAtOrAbove(points: readonly LoadPoint[] | undefined, nowMs: number, windowMs: number, high: number): boolean {
  if (!points) return false;
  const start = nowMs - windowMs;
  let covered = false;
  for (const p of points) {
    if (p.atMs > nowMs) continue;
    if (p.atMs <= start) covered = true;
    if (p.atMs >= start && p.cpuLoad < high) return false;
  }
  return covered;
}

/** Two load points closer than this are no evidence of a rise: a step is not told from noise. */
const RISE_MIN_SPAN_MS = 30_000;

/**
 * How much a host's smoothed load will still rise within horizonMs, read from its last two load points up to nowMs
 * (pendingRise: the demand behind the last step, if it holds), or 0 when there are fewer than two or they are
 * closer than RISE_MIN_SPAN_MS. Points are oldest first; points after nowMs are ignored. A round run right after a
 * migration samples again within seconds: its step would be the move's own (a VM's load arriving or leaving), so
 * it reads no rise.
 */
export function projectedRise(points: readonly LoadPoint[] | undefined, nowMs: number, horizonMs: number): number {
  let prev: LoadPoint | undefined;
  let last: LoadPoint | undefined;
  for (const p of points ?? []) {
    if (p.atMs > nowMs) continue;
    prev = last;
    last = p;
  }
  if (!prev || !last || last.atMs - prev.atMs < RISE_MIN_SPAN_MS) return 0;
  return pendingRise(prev.cpuLoad, last.cpuLoad, last.atMs - prev.atMs, horizonMs);
}

/** The share of the host's CPUs by which a VM's own load is rising within predictMinutes (from its previous sample). */
function vmRiseOf(input: PolicyInput, host: Host, params: HotspotReliefParams): ((vm: Vm) => number) | undefined {
  const before = input.vmLoadBefore;
  if (!before || params.predictMinutes <= 0) return undefined;
  return (vm) => {
    const p = before.get(vm.id);
    if (!p || input.nowMs - p.atMs < RISE_MIN_SPAN_MS) return 0;
    return pendingRise(p.cpuLoad, vm.cpuLoad, input.nowMs - p.atMs, params.predictMinutes * 60_000) / host.cpus;
  };
}

/** Whether the planned load is below the host's latest sampled load (the plan has moved load off it). */
function lightenedByPlan(host: Host, points: readonly LoadPoint[] | undefined, nowMs: number): boolean {
  let sampled: number | undefined;
  for (const p of points ?? []) if (p.atMs <= nowMs) sampled = p.cpuLoad;
  return sampled !== undefined && host.cpuLoad < sampled - 1e-6;
}

export interface HotState {
  readonly cpuHot: boolean;
  readonly memHot: boolean;
  /** How far over the band, the larger of the hot dimensions (fraction). */
  readonly severity: number;
  /**
   * The CPU load the host must get under: cpuHigh, less the projected rise when the host is hot by prediction
   * (the planned moves take load away; the rise stays).
   */
  readonly cpuBar: number;
  /** Set when the host is hot by prediction only: the rise expected within predictMinutes. */
  readonly predictedRise?: number;
}

/**
 * Whether a host is a hotspot now. CPU: current (planned-so-far) load ≥ cpuHigh and, when history is
 * given, sustained for the window; with no history at all (planning on a snapshot file) the current
 * load counts as sustained. Memory: use fraction ≥ memHigh, at once. Hosts in maintenance (drained
 * anyway) and unreachable hosts are never hot.
 */
export function hotState(host: Host, input: PolicyInput, windowMs: number, predictMs = 0): HotState | undefined {
  if (host.maintenance || !host.reachable) return undefined;
  const { cpuHigh, cpuLow, memHigh } = input.thresholds;
  const mem = memoryFraction(host);
  const points = input.history?.get(host.name);
  const sustained = host.cpuLoad >= cpuHigh && (input.history === undefined || sustainedAtOrAbove(points, input.nowMs, windowMs, cpuHigh));
  // Under cpuLow a host is a fit destination, so it is never hot by prediction: noise at low load moves nothing.
  // The rise is judged on the sampled load: once the plan has taken load off the host, the next round judges again
  // (the moved VM may have taken the rise with it), so a predicted hotspot costs one move per round.
  const rise =
    !sustained && predictMs > 0 && host.cpuLoad >= cpuLow && !lightenedByPlan(host, points, input.nowMs)
      ? projectedRise(points, input.nowMs, predictMs)
      : 0;
  const predicted = rise > 0 && host.cpuLoad + rise >= cpuHigh;
  const cpuHot = sustained || predicted;
  const memHot = mem >= memHigh;
  if (!cpuHot && !memHot) return undefined;
  const cpuBar = predicted ? cpuHigh - rise : cpuHigh;
  return {
    cpuHot,
    memHot,
    severity: Math.max(cpuHot ? host.cpuLoad - cpuBar : 0, memHot ? mem - memHigh : 0),
    cpuBar,
    ...(predicted && { predictedRise: rise }),
  };
}

interface Ranked {
  readonly vm: Vm;
  readonly sufficient: boolean;
  /** Sufficient, and takes a CPU-hot host out of the band (under cpuLow); memory grows, it does not burst. */
  readonly deep: boolean;
  readonly relief: number;
  readonly converges: boolean;
  readonly cost: number;
}

/**
 * Candidate VMs of a hot host in preference order: first those whose move alone brings the host under
 * the band (cpu < the hot state's bar and memory < memHigh) — among them, those that take a CPU-hot host out of
 * the band altogether (under cpuLow: a host left just under cpuHigh is hot again at the next burst), then each
 * group cheapest to migrate (memory to copy) first; then the rest by how much of the excess they remove. VMs
 * whose move relieves no hot dimension are left out: by the model's footprint a shut-off VM frees neither CPU
 * nor memory, so it never qualifies.
 */
export function rankCandidates(
  host: Host,
  vms: readonly Vm[],
  hot: HotState,
  t: Thresholds,
  predict?: (vm: Vm) => Prediction,
  vmRise?: (vm: Vm) => number,
): VmId[] {
  const mem = memoryFraction(host);
  const cpuExcess = Math.max(host.cpuLoad - hot.cpuBar, 0) + 1e-9;
  const memExcess = Math.max(mem - t.memHigh, 0) + 1e-9;
  const ranked: Ranked[] = [];
  for (const vm of vms) {
    const fp = footprint(vm);
    if (fp.cpus <= 0 && fp.memoryMiB <= 0) continue;
    const after = loadWith(host, fp, -1);
    const afterMem = memoryFraction(after);
    const cpuGain = host.cpuLoad - after.cpuLoad;
    const memGain = mem - afterMem;
    const useful = (hot.cpuHot && cpuGain > 0) || (hot.memHot && memGain > 0);
    if (!useful) continue;
    // A VM that carries part of the predicted rise takes it along: the host must only stay under the rest.
    const bar = hot.predictedRise === undefined || !vmRise ? hot.cpuBar : t.cpuHigh - Math.max(0, hot.predictedRise - vmRise(vm));
    const sufficient = after.cpuLoad < bar && afterMem < t.memHigh;
    const deep = sufficient && (!hot.cpuHot || after.cpuLoad < t.cpuLow);
    let relief = 0;
    let dims = 0;
    if (hot.cpuHot) {
      relief += Math.min(1, cpuGain / cpuExcess);
      dims++;
    }
    if (hot.memHot) {
      relief += Math.min(1, memGain / memExcess);
      dims++;
    }
    // Cost: predicted time when a prediction is available, else memory to copy; a guest predicted not to
    // converge goes after every one that will, whatever its size.
    const p = predict?.(vm);
    ranked.push({ vm, sufficient, deep, relief: relief / dims, converges: p?.converges ?? true, cost: p?.timeMs ?? vm.memoryMiB });
  }
  ranked.sort((a, b) => {
    if (a.sufficient !== b.sufficient) return a.sufficient ? -1 : 1;
    if (a.converges !== b.converges) return a.converges ? -1 : 1;
    if (a.deep !== b.deep) return a.deep ? -1 : 1;
    if (!a.sufficient && a.relief !== b.relief) return b.relief - a.relief;
    return a.cost - b.cost || compareStrings(a.vm.id, b.vm.id);
  });
  return ranked.map((r) => r.vm.id);
}

function hotReason(host: Host, hot: HotState, input: PolicyInput, params: HotspotReliefParams): string {
  const { cpuHigh, memHigh } = input.thresholds;
  const { sustainMinutes, predictMinutes } = params;
  const parts: string[] = [];
  if (hot.predictedRise !== undefined) {
    parts.push(`cpu ${pct(host.cpuLoad)} rising, projected ${pct(host.cpuLoad + hot.predictedRise)} ≥ cpuHigh ${pct(cpuHigh)} within ${predictMinutes} min`);
  } else if (hot.cpuHot) {
    const how = input.history === undefined ? "in the snapshot" : `for ${sustainMinutes} min`;
    parts.push(`cpu ${pct(host.cpuLoad)} ≥ cpuHigh ${pct(cpuHigh)} ${how}`);
  }
  if (hot.memHot) parts.push(`memory ${pct(memoryFraction(host))} ≥ memHigh ${pct(memHigh)}`);
  return `host ${host.name} hot: ${parts.join(", ")}`;
}

/**
 * One proposal per hot host (hottest first, then by name), goal "relieve": the source must get under
 * cpuHigh/memHigh, the destination must stay under cpuLow/memLow after the move (hysteresis, enforced by
 * the capacity constraint). The planner re-runs this after every accepted move, so a host that one move
 * does not relieve gets another. Scans hosts; candidates are ranked lazily, only for the proposals read.
 */
export function* proposeHotspots(input: PolicyInput, params: HotspotReliefParams): Generator<Proposal, void, undefined> {
  const windowMs = params.sustainMinutes * 60_000;
  const hot: { host: Host; state: HotState }[] = [];
  for (const host of input.view.hosts()) {
    const state = hotState(host, input, windowMs, params.predictMinutes * 60_000);
    if (state) hot.push({ host, state });
  }
  hot.sort((a, b) => b.state.severity - a.state.severity || compareStrings(a.host.name, b.host.name));
  for (const { host, state } of hot) {
    const candidates = rankCandidates(host, input.view.vmsOn(host.name), state, input.thresholds, input.predict, vmRiseOf(input, host, params));
    if (candidates.length === 0) continue;
    yield {
      policy: HOTSPOT_RELIEF,
      priority: HOTSPOT_RELIEF_PRIORITY,
      source: host.name,
      candidates,
      goal: {
        kind: "relieve",
        cpuBelow: state.cpuBar,
        memBelow: input.thresholds.memHigh,
        hot: state.cpuHot && state.memHot ? "both" : state.cpuHot ? "cpu" : "memory",
        // A forecast is not worth filling another host into the band; a real memory hotspot is, forecast or not.
        ...(state.predictedRise !== undefined && !state.memHot && { intoBand: false }),
      },
      reason: hotReason(host, state, input, params),
      key: `${HOTSPOT_RELIEF}:${host.name}`,
    };
  }
}

/** Hosts at or above cpuHigh whose load has not stayed there for sustainMinutes: held back, not yet hot (counted in metrics). */
export function* reportNotSustained(input: PolicyInput, params: HotspotReliefParams): Generator<PlanNote, void, undefined> {
  if (input.history === undefined) return;
  const windowMs = params.sustainMinutes * 60_000;
  for (const host of input.view.hosts()) {
    if (host.cpuLoad < input.thresholds.cpuHigh || hotState(host, input, windowMs, params.predictMinutes * 60_000)?.cpuHot === true) continue;
    if (host.maintenance || !host.reachable) continue;
    yield {
      policy: HOTSPOT_RELIEF,
      code: "not-sustained",
      host: host.name,
      cell: host.cell,
      held: true,
      message: `${host.name} cpu ${pct(host.cpuLoad)} ≥ cpuHigh ${pct(input.thresholds.cpuHigh)}, not yet for ${params.sustainMinutes} min`,
    };
  }
}

export const hotspotRelief = {
  name: HOTSPOT_RELIEF,
  description:
    "Moves VMs off a host whose CPU load stays at or above cpuHigh for sustainMinutes (or, with predictMinutes, is rising to it from above cpuLow), or whose memory use reaches memHigh; destinations stay under cpuLow/memLow.",
  priority: HOTSPOT_RELIEF_PRIORITY,
  schema: hotspotReliefSchema,
  create: (params: HotspotReliefParams): Policy => ({
    name: HOTSPOT_RELIEF,
    priority: HOTSPOT_RELIEF_PRIORITY,
    propose: (input) => proposeHotspots(input, params),
    report: (input) => reportNotSustained(input, params),
  }),
} as const satisfies PolicyDefinition<typeof hotspotReliefSchema>;
