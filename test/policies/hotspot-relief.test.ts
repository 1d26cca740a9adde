import { describe, expect, it } from "vitest";
import {
  hotState,
  hotspotRelief,
  hotspotReliefSchema,
  projectedRise,
  proposeHotspots,
  rankCandidates,
  reportNotSustained,
  sustainedAtOrAbove,
} from "../../src/policies/hotspot-relief.js";
import { hostId, predictMigration, vmId, type ClusterSnapshot, type HostId } from "../../src/model/index.js";
import type { LoadPoint, PolicyInput } from "../../src/policies/types.js";
import { cluster, host, NOW, policyInput, T, viewOf, vm } from "../planner/fixtures.js";

const MIN = 60_000;
const params = hotspotReliefSchema.parse({});
const pts = (...xs: [minutesAgo: number, load: number][]): LoadPoint[] => xs.map(([m, l]) => ({ atMs: NOW - m * MIN, cpuLoad: l }));
const input = (s: ClusterSnapshot, history?: ReadonlyMap<HostId, readonly LoadPoint[]>): PolicyInput => policyInput(s, history ? { history } : {});

describe("sustainedAtOrAbove", () => {
  const cases: { name: string; points: LoadPoint[] | undefined; expected: boolean }[] = [
    { name: "every point in the window high, history reaches its start", points: pts([6, 0.9], [5, 0.9], [3, 0.95], [0, 0.88]), expected: true },
    { name: "a point exactly at the window start counts as covering it", points: pts([5, 0.86], [2, 0.9], [0, 0.9]), expected: true },
    { name: "one dip inside the window", points: pts([6, 0.9], [4, 0.84], [0, 0.9]), expected: false },
    { name: "history shorter than the window", points: pts([4, 0.95], [2, 0.95], [0, 0.95]), expected: false },
    { name: "a dip before the window does not matter", points: pts([7, 0.1], [5, 0.9], [0, 0.9]), expected: true },
    { name: "points after now are ignored", points: [...pts([6, 0.9], [0, 0.9]), { atMs: NOW + MIN, cpuLoad: 0.1 }], expected: true },
    { name: "exactly at cpuHigh counts as high", points: pts([5, 0.85], [0, 0.85]), expected: true },
    { name: "no points for the host", points: undefined, expected: false },
    { name: "empty history", points: [], expected: false },
  ];
  it.each(cases)("$name", ({ points, expected }) => {
    expect(sustainedAtOrAbove(points, NOW, 5 * MIN, T.cpuHigh)).toBe(expected);
  });
});

describe("hotState", () => {
  // h1: 10 CPUs at 0.2 baseline + 7 CPUs of VMs = 0.9
  const hot = cluster([host("h1"), host("h2")], [vm("a", "h1", { cpuLoad: 4, vcpus: 4 }), vm("b", "h1", { cpuLoad: 3, vcpus: 4 })]);
  const memHot = cluster([host("h1", { memoryUsedMiB: 85_000 }), host("h2")], [vm("a", "h1", { cpuLoad: 0.1 })]);
  const h1 = hostId("h1");
  const cases: { name: string; snapshot: ClusterSnapshot; history?: Map<HostId, LoadPoint[]>; expected: { cpuHot: boolean; memHot: boolean } | undefined }[] = [
    { name: "no history (snapshot file): current load counts as sustained", snapshot: hot, expected: { cpuHot: true, memHot: false } },
    { name: "history sustained for the window", snapshot: hot, history: new Map([[h1, pts([6, 0.9], [3, 0.9], [0, 0.9])]]), expected: { cpuHot: true, memHot: false } },
    { name: "history with a recent dip: not hot yet", snapshot: hot, history: new Map([[h1, pts([6, 0.9], [2, 0.5], [0, 0.9])]]), expected: undefined },
    { name: "history given but none for this host: not hot", snapshot: hot, history: new Map(), expected: undefined },
    {
      name: "history high but the current (planned) load is below cpuHigh: not hot",
      snapshot: cluster([host("h1")], [vm("a", "h1", { cpuLoad: 1 })]),
      history: new Map([[h1, pts([6, 0.95], [0, 0.95])]]),
      expected: undefined,
    },
    { name: "memory at/above memHigh is hot at once, whatever the history", snapshot: memHot, history: new Map(), expected: { cpuHot: false, memHot: true } },
    { name: "a host in maintenance is never a hotspot", snapshot: cluster([host("h1", { maintenance: true })], [vm("a", "h1", { cpuLoad: 8, vcpus: 8 })]), expected: undefined },
    { name: "an unreachable host is never a hotspot", snapshot: cluster([host("h1", { reachable: false })], [vm("a", "h1", { cpuLoad: 8, vcpus: 8 })]), expected: undefined },
  ];
  it.each(cases)("$name", ({ snapshot, history, expected }) => {
    const inp = input(snapshot, history);
    const h = inp.view.host(h1);
    if (!h) throw new Error("fixture");
    const got = hotState(h, inp, params.sustainMinutes * MIN);
    expect(got && { cpuHot: got.cpuHot, memHot: got.memHot }).toEqual(expected);
  });
});

describe("rankCandidates / proposals", () => {
  it("prefers a VM whose move takes the host out of the band, then the smallest that relieves it, then those that relieve most", () => {
    // h1 at 0.2 + 7.5/10 = 0.95: a move must take ≥ 1.0 CPU to get below cpuHigh 0.85, > 2.5 to get below cpuLow 0.70.
    const s = cluster(
      [host("h1"), host("h2")],
      [
        vm("tiny-cpu", "h1", { cpuLoad: 0.5, memoryMiB: 1000 }),
        vm("big-enough", "h1", { cpuLoad: 3, vcpus: 4, memoryMiB: 32000 }),
        vm("small-enough", "h1", { cpuLoad: 1.5, memoryMiB: 4000 }),
        vm("mid-enough", "h1", { cpuLoad: 2.5, vcpus: 4, memoryMiB: 8000 }),
        vm("off", "h1", { state: "shutoff", cpuLoad: 0, memoryMiB: 500 }),
        vm("paused", "h1", { state: "paused", cpuLoad: 0, memoryMiB: 600 }),
        vm("elsewhere", "h2"),
      ],
    );
    const [p, ...rest] = [...proposeHotspots(input(s), params)];
    expect(rest).toEqual([]);
    expect(p?.source).toBe("h1");
    expect(p?.candidates).toEqual(["big-enough", "small-enough", "mid-enough", "tiny-cpu"]);
    expect(p?.goal).toEqual({ kind: "relieve", cpuBelow: T.cpuHigh, memBelow: T.memHigh, hot: "cpu" });
    expect(p?.reason).toBe("host h1 hot: cpu 95% ≥ cpuHigh 85% in the snapshot");
    expect(p?.policy).toBe("hotspot-relief");
  });

  it("when no VM suffices alone, orders by relief", () => {
    // h1 at 0.2 + 7.6/10 = 0.96; each VM alone frees at most 0.1.
    const s = cluster([host("h1"), host("h2")], [0.4, 1.0, 0.8, 1.0].map((c, i) => vm(`v${i}`, "h1", { cpuLoad: c, memoryMiB: 1000 * (4 - i) })).concat(vm("pad", "h1", { cpuLoad: 4.4, vcpus: 8, memoryMiB: 8000 })));
    const [p] = [...proposeHotspots(input(s), params)];
    // pad (4.4 CPUs) suffices alone; then the rest by relief (v3 and v1 free 1.0 — v3 cheaper — then v2, v0).
    expect(p?.candidates).toEqual(["pad", "v3", "v1", "v2", "v0"]);
  });

  it("memory hotspot: paused VMs qualify (they hold memory), shut-off ones never do", () => {
    const s = cluster(
      [host("h1", { memoryUsedMiB: 82_000, cpuLoad: 0.1 }), host("h2")],
      [vm("paused", "h1", { state: "paused", cpuLoad: 0, memoryMiB: 6000 }), vm("off", "h1", { state: "shutoff", cpuLoad: 0, memoryMiB: 20000 }), vm("run", "h1", { cpuLoad: 0.2, memoryMiB: 3000 })],
    );
    const [p] = [...proposeHotspots(input(s, new Map()), params)];
    expect(p?.reason).toBe("host h1 hot: memory 91% ≥ memHigh 90%");
    expect(p?.candidates).toEqual(["run", "paused"]);
  });

  it("CPU hotspot: VMs with no CPU load (paused, shut off) are skipped", () => {
    const s = cluster([host("h1"), host("h2")], [vm("busy", "h1", { cpuLoad: 7, vcpus: 8 }), vm("paused", "h1", { state: "paused", cpuLoad: 0 }), vm("off", "h1", { state: "shutoff", cpuLoad: 0 })]);
    const [p] = [...proposeHotspots(input(s), params)];
    expect(p?.candidates).toEqual(["busy"]);
  });

  it("hottest host first, then by name; cool hosts get nothing", () => {
    const s = cluster(
      [host("b"), host("a"), host("c"), host("cool")],
      [vm("vb", "b", { cpuLoad: 7, vcpus: 8 }), vm("va", "a", { cpuLoad: 7, vcpus: 8 }), vm("vc", "c", { cpuLoad: 7.5, vcpus: 8 }), vm("x", "cool")],
    );
    expect([...proposeHotspots(input(s), params)].map((p) => p.source)).toEqual(["c", "a", "b"]);
  });

  it("a hot host with nothing that could relieve it gets no proposal", () => {
    const s = cluster([host("h1", { cpuLoad: 0.95 }), host("h2")], [vm("off", "h1", { state: "shutoff", cpuLoad: 0 })]);
    expect([...proposeHotspots(input(s), params)]).toEqual([]);
  });

  it("rankCandidates ignores VMs that do not relieve a hot dimension", () => {
    const s = cluster([host("h1")], [vm("a", "h1", { cpuLoad: 7, vcpus: 8 }), vm("zero", "h1", { cpuLoad: 0 })]);
    const view = viewOf(s);
    const h = view.host(hostId("h1"));
    if (!h) throw new Error("fixture");
    expect(rankCandidates(h, view.vmsOn(h.name), { cpuHot: true, memHot: false, severity: 0.05, cpuBar: T.cpuHigh }, T)).toEqual(["a"]);
  });

  it("among VMs that would each relieve the host, one predicted to converge goes before a smaller one that would not", () => {
    const s = cluster(
      [host("h1", { cpuLoad: 0.95 })],
      [vm("small-dirty", "h1", { cpuLoad: 2, memoryMiB: 2_000, dirtyRateMiBps: 5_000 }), vm("big-quiet", "h1", { cpuLoad: 2, memoryMiB: 16_000, dirtyRateMiBps: 10 }), vm("mid-quiet", "h1", { cpuLoad: 2, memoryMiB: 8_000, dirtyRateMiBps: 10 })],
    );
    const view = viewOf(s);
    const h = view.host(hostId("h1"));
    if (!h) throw new Error("fixture");
    const link = { bandwidthMiBps: 1000, maxDowntimeMs: 500, overheadMs: 1500, suspend: false };
    const predict = (v: Parameters<typeof predictMigration>[0]) => predictMigration(v, "live-shared", link);
    const hot = { cpuHot: true, memHot: false, severity: 0.1, cpuBar: T.cpuHigh };
    expect(rankCandidates(h, view.vmsOn(h.name), hot, T, predict)).toEqual(["mid-quiet", "big-quiet", "small-dirty"]);
    // Without predictions the cheapest copy goes first.
    expect(rankCandidates(h, view.vmsOn(h.name), hot, T)[0]).toBe("small-dirty");
  });

  it("a host over cpuHigh not yet for sustainMinutes is reported as held back (counted in metrics), not moved", () => {
    const s = cluster([host("h1", { cpuLoad: 0.9 }), host("h2")], [vm("a", "h1")]);
    const history = new Map([[hostId("h1"), pts([3, 0.9], [0, 0.9])]]);
    expect([...proposeHotspots(input(s, history), params)]).toEqual([]);
    expect([...reportNotSustained(input(s, history), params)]).toEqual([
      { policy: "hotspot-relief", code: "not-sustained", host: "h1", cell: "c1", held: true, message: "h1 cpu 100% ≥ cpuHigh 85%, not yet for 5 min" },
    ]);
    // Sustained: hot, nothing held back. Planning on a snapshot file (no history): nothing to report.
    expect([...reportNotSustained(input(s, new Map([[hostId("h1"), pts([6, 0.95], [0, 0.95])]])), params)]).toEqual([]);
    expect([...reportNotSustained(input(s), params)]).toEqual([]);
  });

  it("registry entry: defaults and the factory", () => {
    expect(params).toEqual({ enabled: true, sustainMinutes: 5, predictMinutes: 0 });
    const p = hotspotRelief.create(params);
    expect(p.name).toBe("hotspot-relief");
    expect(() => hotspotReliefSchema.parse({ sustainMinutes: -1 })).toThrow();
    expect(() => hotspotReliefSchema.parse({ bogus: 1 })).toThrow();
  });
});

describe("projectedRise", () => {
  // A step of the demand seen one minute later (τ = 60 s) has closed 1 − e⁻¹ of its gap: e⁻¹ × the step is still to come
  // within a minute, (1 − e⁻²) / (e − 1) × the step within two.
  const cases: { name: string; points: LoadPoint[] | undefined; minutes: number; rise: number }[] = [
    { name: "a step of 0.1 in the last minute: 0.1/e more within a minute", points: pts([1, 0.5], [0, 0.6]), minutes: 1, rise: 0.1 / Math.E },
    { name: "… and (1 − e⁻²) / (e − 1) of it within two", points: pts([1, 0.5], [0, 0.6]), minutes: 2, rise: (0.1 * (1 - Math.exp(-2))) / (Math.E - 1) },
    { name: "only the last two points count", points: pts([3, 0.1], [2, 0.9], [1, 0.5], [0, 0.6]), minutes: 1, rise: 0.1 / Math.E },
    { name: "the same step seen over two minutes has less to come", points: pts([2, 0.5], [0, 0.6]), minutes: 1, rise: (0.1 * (1 - 1 / Math.E)) / (Math.exp(2) - 1) },
    { name: "a falling load rises no more", points: pts([1, 0.9], [0, 0.8]), minutes: 1, rise: 0 },
    { name: "points after now are ignored", points: [...pts([1, 0.5], [0, 0.6]), { atMs: NOW + MIN, cpuLoad: 0 }], minutes: 1, rise: 0.1 / Math.E },
    { name: "one point is no evidence", points: pts([0, 0.9]), minutes: 1, rise: 0 },
    {
      name: "a round within half a minute of the one before (right after a move) reads no rise: the step would be the move's own",
      points: [...pts([1, 0.5]), { atMs: NOW - 10_000, cpuLoad: 0.58 }, { atMs: NOW, cpuLoad: 0.66 }],
      minutes: 1,
      rise: 0,
    },
    { name: "two points less than half a minute apart are no evidence", points: [{ atMs: NOW - 20_000, cpuLoad: 0.1 }, { atMs: NOW, cpuLoad: 0.9 }], minutes: 1, rise: 0 },
    { name: "no history for the host", points: undefined, minutes: 1, rise: 0 },
  ];
  it.each(cases)("$name", ({ points, minutes, rise }) => {
    expect(projectedRise(points, NOW, minutes * MIN)).toBeCloseTo(rise, 12);
  });
});

describe("predictive trigger (predictMinutes)", () => {
  const predictive = hotspotReliefSchema.parse({ predictMinutes: 1 });
  const h1 = hostId("h1");
  // h1: 0.2 + 0.4 + 0.2 + 0.01 = 0.81, between cpuLow (0.70) and cpuHigh (0.85).
  const rising = cluster(
    [host("h1"), host("h2")],
    [vm("big", "h1", { cpuLoad: 4, vcpus: 4, memoryMiB: 2_000 }), vm("small", "h1", { cpuLoad: 2, memoryMiB: 8_000 }), vm("tiny", "h1", { cpuLoad: 0.1, memoryMiB: 500 })],
  );
  const trend = (...xs: [number, number][]): Map<HostId, LoadPoint[]> => new Map([[h1, pts(...xs)]]);
  // A last step of 0.07e leaves 0.07 still to come within a minute (see projectedRise).
  const risingBy7 = trend([1, 0.81 - 0.07 * Math.E], [0, 0.81]);
  const state = (s: ClusterSnapshot, history: Map<HostId, LoadPoint[]>, minutes: number) => {
    const inp = input(s, history);
    const h = inp.view.host(h1);
    if (!h) throw new Error("fixture");
    return hotState(h, inp, predictive.sustainMinutes * MIN, minutes * MIN);
  };

  it("a host above cpuLow rising to cpuHigh within predictMinutes is hot now, with the bar lowered by the rise", () => {
    const got = state(rising, risingBy7, 1);
    expect(got?.cpuHot).toBe(true);
    expect(got?.predictedRise).toBeCloseTo(0.07, 9);
    expect(got?.cpuBar).toBeCloseTo(0.78, 9);
  });

  const cold: { name: string; history: Map<HostId, LoadPoint[]>; minutes: number; snapshot?: ClusterSnapshot }[] = [
    { name: "off (predictMinutes 0)", history: risingBy7, minutes: 0 },
    { name: "rising, but not to cpuHigh within the horizon", history: trend([2, 0.6], [1, 0.78], [0, 0.81]), minutes: 1 },
    { name: "falling", history: trend([2, 0.95], [1, 0.9], [0, 0.81]), minutes: 1 },
    { name: "no trend yet (one sample)", history: trend([0, 0.81]), minutes: 1 },
    {
      name: "steeply rising but under cpuLow: a fit destination is never hot by prediction",
      snapshot: cluster([host("h1")], [vm("a", "h1", { cpuLoad: 4.5, vcpus: 8 })]),
      history: trend([2, 0.2], [1, 0.4], [0, 0.65]),
      minutes: 5,
    },
    { name: "the plan already took load off it (planned load below the sampled one)", history: trend([2, 0.7], [1, 0.8], [0, 0.9]), minutes: 1 },
  ];
  it.each(cold)("not hot: $name", ({ snapshot, history, minutes }) => {
    expect(state(snapshot ?? rising, history, minutes)).toBeUndefined();
  });

  it("the proposal prefers VMs whose move keeps the projection under cpuHigh, and says why", () => {
    const [p, ...rest] = [...proposeHotspots(input(rising, risingBy7), predictive)];
    expect(rest).toEqual([]);
    // tiny alone would bring 0.81 to 0.80, under cpuHigh now but not under the projected 0.78 bar.
    expect(p?.candidates).toEqual(["big", "small", "tiny"]);
    expect(p?.goal).toMatchObject({ kind: "relieve" });
    expect(p?.goal.kind === "relieve" && p.goal.cpuBelow).toBeCloseTo(0.78, 9);
    expect(p?.reason).toBe("host h1 hot: cpu 81% rising, projected 88% ≥ cpuHigh 85% within 1 min");
  });

  it("a forecast hotspot is not relieved into the band, unless its memory is really hot", () => {
    const goal = (s: ClusterSnapshot) => [...proposeHotspots(input(s, risingBy7), predictive)][0]?.goal;
    expect(goal(rising)).toMatchObject({ kind: "relieve", hot: "cpu", intoBand: false });
    // Same VMs on a host already using 85,000 MiB: 95.5 % ≥ memHigh.
    const memHot = cluster([host("h1", { memoryUsedMiB: 85_000 }), host("h2")], rising.vms);
    const g = goal(memHot);
    expect(g).toMatchObject({ kind: "relieve", hot: "both" });
    expect(g).not.toHaveProperty("intoBand");
  });

  it("a VM whose own load carries the rise takes it along: it relieves the host with less load moved now", () => {
    // Five minutes ahead, a step closes f = (1 − e⁻⁵) / (e − 1) of itself again. h1: 0.61 + 0.14 + 0.09 = 0.84, rising
    // 0.12 within 5 min, so the bar is 0.73. riser's own last step carries 0.05 of h1 of that rise: without it, h1 must
    // only stay under 0.85 − (0.12 − 0.05) = 0.78 — which riser's move (to 0.75) does, and steady's too (to 0.70; neither
    // takes h1 under cpuLow).
    const f = (1 - Math.exp(-5)) / (Math.E - 1);
    const s = cluster([host("h1", { cpuLoad: 0.61 }), host("h2")], [vm("steady", "h1", { cpuLoad: 1.4, memoryMiB: 16_000 }), vm("riser", "h1", { cpuLoad: 0.9, memoryMiB: 1_000 })]);
    const history = trend([1, 0.84 - 0.12 / f], [0, 0.84]);
    const five = hotspotReliefSchema.parse({ predictMinutes: 5 });
    const before = new Map([
      [vmId("steady"), { atMs: NOW - MIN, cpuLoad: 1.4 }],
      [vmId("riser"), { atMs: NOW - MIN, cpuLoad: 0.9 - 0.5 / f }],
    ]);
    const order = (inp: PolicyInput) => [...proposeHotspots(inp, five)][0]?.candidates;
    expect(order(policyInput(s, { history, vmLoadBefore: before }))).toEqual(["riser", "steady"]);
    expect(order(policyInput(s, { history }))).toEqual(["steady", "riser"]);
  });

  it("a host just over cpuHigh and still rising is relieved at once instead of held back for sustainMinutes", () => {
    const s = cluster([host("h1", { cpuLoad: 0.7 }), host("h2")], [vm("a", "h1", { cpuLoad: 1.8, vcpus: 2 })]);
    const history = trend([2, 0.75], [1, 0.8], [0, 0.88]);
    expect([...proposeHotspots(input(s, history), predictive)].map((p) => p.source)).toEqual([h1]);
    expect([...reportNotSustained(input(s, history), predictive)]).toEqual([]);
    // Without prediction it is held back, as before.
    expect([...proposeHotspots(input(s, history), params)]).toEqual([]);
  });
});
