import { describe, expect, it } from "vitest";
import { emaWeight, LOAD_TAU_MS, pendingChange } from "../../src/model/index.js";

describe("pendingChange", () => {
  // A demand step (0.3 → 0.8, or 0.9 → 0.6) at t = 0, smoothed as every driver smooths load: after dt the reading is L1; after a
  // further horizon it is L2. pendingChange, seeing only the start → L1, must tell L2 − L1.
  const cases = [
    { dt: 30_000, horizon: 60_000 },
    { dt: 60_000, horizon: 60_000 },
    { dt: 60_000, horizon: 120_000 },
    { dt: 180_000, horizon: 300_000 },
  ];
  it.each(cases)("a step seen after $dt ms: the change within $horizon ms is what the smoothing will still add", ({ dt, horizon }) => {
    for (const [before, demand] of [
      [0.3, 0.8],
      [0.9, 0.6],
    ] as const) {
      const l1 = before + (demand - before) * emaWeight(dt);
      const l2 = l1 + (demand - l1) * emaWeight(horizon);
      expect(pendingChange(before, l1, dt, horizon)).toBeCloseTo(l2 - l1, 12);
    }
  });

  it("no change when the load held or no time passed", () => {
    expect(pendingChange(0.8, 0.8, 60_000, 60_000)).toBe(0);
    expect(pendingChange(0.5, 0.8, 0, 60_000)).toBe(0);
  });

  it("uses the drivers' time constant", () => {
    expect(emaWeight(LOAD_TAU_MS)).toBeCloseTo(1 - 1 / Math.E, 12);
  });
});
