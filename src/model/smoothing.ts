/**
 * Every driver reports CPU load as an exponential moving average of demand with this time constant (the
 * simulator's samples, libvirt's counters and XenServer's RRD rows alike), so policies can tell where a smoothed
 * load is heading.
 */
export const LOAD_TAU_MS = 60_000;

/** Exponential moving average weight of a reading dtMs after the previous one. */
export function emaWeight(dtMs: number, tauMs: number = LOAD_TAU_MS): number {
  return dtMs <= 0 ? 0 : 1 - Math.exp(-dtMs / tauMs);
}

/**
 * The rise still to come within horizonMs of a smoothed load that went from `before` to `now` over dtMs, if the
 * demand behind it has held since `before`: the last step closed a share emaWeight(dtMs) of the gap to that
 * demand, so the gap left is step × (1 − w) / w, and the horizon closes emaWeight(horizonMs) of it. 0 when not
 * rising. A rise seen on a linear trend instead overshoots: a step's increments shrink, a line's do not.
 */
export function pendingRise(before: number, now: number, dtMs: number, horizonMs: number, tauMs: number = LOAD_TAU_MS): number {
  if (dtMs <= 0 || now <= before) return 0;
  const w = emaWeight(dtMs, tauMs);
  return ((now - before) * (1 - w) * emaWeight(horizonMs, tauMs)) / w;
}
