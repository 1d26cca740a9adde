import { memoryFraction, type Host, type HostLoad } from "../../model/index.js";
import { fillsToHigh, type Goal, type Thresholds, type Verdict } from "../types.js";
import { pct } from "../text.js";

const OK: Verdict = Object.freeze({ ok: true });

/**
 * Capacity of a destination, judged on `after` — the destination with the VM's footprint added (the
 * planner computes it once with the model's `loadWith`):
 *
 * - always: memory stays below memHigh of the host (so below its physical memory: never overcommitted);
 * - evacuate (and a relief into the band, when no host under it can help): CPU stays below cpuHigh (never
 *   pushed to or over the band, so it does not become a hotspot);
 * - relieve: CPU below cpuLow and memory below memLow (hysteresis: the destination is never the next
 *   hotspot, so nothing ping-pongs).
 *
 * "Below" is strict: a host left exactly at memHigh or cpuHigh would itself count as hot.
 */
export function capacity(dest: Host, after: HostLoad, addedMemoryMiB: number, goal: Goal, t: Thresholds): Verdict {
  const mem = memoryFraction(after);
  if (mem >= t.memHigh) {
    const free = Math.max(0, Math.floor(dest.memoryMiB * t.memHigh - dest.memoryUsedMiB));
    return {
      ok: false,
      code: "memory",
      reason: `${dest.name} lacks memory: needs ${addedMemoryMiB} MiB, ${free} MiB free below memHigh ${pct(t.memHigh)}`,
    };
  }
  if (fillsToHigh(goal)) {
    if (after.cpuLoad >= t.cpuHigh) {
      return { ok: false, code: "cpu-high", reason: `${dest.name} would reach cpu ${pct(after.cpuLoad)} ≥ cpuHigh ${pct(t.cpuHigh)}` };
    }
    return OK;
  }
  if (after.cpuLoad >= t.cpuLow) {
    return { ok: false, code: "cpu-low", reason: `${dest.name} would reach cpu ${pct(after.cpuLoad)} ≥ cpuLow ${pct(t.cpuLow)}` };
  }
  if (mem >= t.memLow) {
    return { ok: false, code: "mem-low", reason: `${dest.name} would reach memory ${pct(mem)} ≥ memLow ${pct(t.memLow)}` };
  }
  return OK;
}
