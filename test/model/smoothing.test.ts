import { describe, expect, it } from "vitest";
import { emaWeight, LOAD_TAU_MS, pendingRise } from "../../src/model/index.js";

describe("pendingRise", () => {
  // A demand step from 0.3 to 0.8 at t = 0, smoothed as every driver smooths load: after dt the reading is L1; after a
  // further horizon it is L2. pendingRise, seeing only 0.3 → L1, must tell L2 − L1.
  const cases = [
    { dt: 30_000, horizon: 60_000 },
    { dt: 60_000, horizon: 60_000 },
    { dt: 60_000, horizon: 120_000 },
    { dt: 180_000, horizon: 300_000 },
  ];
  it.each(cases)("a step seen after $dt ms: the rise within $horizon ms is what the smoothing will still add", ({ dt, horizon }) => {
    const before = 0.3;
    const demand = 0.8;
    const l1 = before + (demand - before) * emaWeight(dt);
    const l2 = l1 + (demand - l1) * emaWeight(horizon);
    expect(pendingRise(before, l1, dt, horizon)).toBeCloseTo(l2 - l1, 12);
  });

  it("no rise when the load fell or held, or no time passed", () => {
    expect(pendingRise(0.8, 0.7, 60_000, 60_000)).toBe(0);
    expect(pendingRise(0.8, 0.8, 60_000, 60_000)).toBe(0);
    expect(pendingRise(0.5, 0.8, 0, 60_000)).toBe(0);
  });

  it("uses the drivers' time constant", () => {
    expect(emaWeight(LOAD_TAU_MS)).toBeCloseTo(1 - 1 / Math.E, 12);
  });
});
