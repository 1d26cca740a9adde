import { describe, expect, it } from "vitest";
import { plan } from "../../src/daemon/planner.js";
import { balance, balanceSchema, proposeBalance } from "../../src/policies/balance.js";
import { imbalance, LoadSpread, memoryFraction, applyMove, type ClusterSnapshot } from "../../src/model/index.js";
import { cluster, host, planOpts, policyInput, vm } from "../planner/fixtures.js";

const params = balanceSchema.parse({ enabled: true });
const opts = (over: Partial<typeof params> = {}) => planOpts({ policies: [balance.create({ ...params, ...over })] });
const spread = (s: ClusterSnapshot): number => new LoadSpread(s.hosts, { cpu: 0.5, memory: 0.5 }).value;

/** Two busy hosts and an idle one in c1. */
const lopsided = (): ClusterSnapshot =>
  cluster(
    [host("h1", { cpuLoad: 0, memoryUsedMiB: 0 }), host("h2", { cpuLoad: 0, memoryUsedMiB: 0 }), host("h3", { cpuLoad: 0, memoryUsedMiB: 0 })],
    [
      vm("a", "h1", { cpuLoad: 2, memoryMiB: 16_000 }),
      vm("b", "h1", { cpuLoad: 2, memoryMiB: 16_000 }),
      vm("c", "h1", { cpuLoad: 1, memoryMiB: 4_000 }),
      vm("d", "h2", { cpuLoad: 2, memoryMiB: 16_000 }),
      vm("e", "h2", { cpuLoad: 2, memoryMiB: 16_000 }),
    ],
  );

describe("LoadSpread", () => {
  it("agrees with cellImbalance, and `with` with a recomputation after a move", () => {
    const s = lopsided();
    const c = imbalance(s)[0];
    expect(spread(s)).toBeCloseTo(0.5 * (c?.cpu ?? 0) + 0.5 * (c?.memory ?? 0), 12);
    const after = applyMove(s, { vm: "a" as never, from: "h1" as never, to: "h3" as never, policy: "t", reason: "t", kind: "live-shared" });
    const at = (x: ClusterSnapshot, n: string) => x.hosts.find((h) => h.name === n) as ClusterSnapshot["hosts"][number];
    const sp = new LoadSpread(s.hosts, { cpu: 0.5, memory: 0.5 });
    expect(sp.with([{ before: at(s, "h1"), after: at(after, "h1") }, { before: at(s, "h3"), after: at(after, "h3") }])).toBeCloseTo(spread(after), 12);
  });
});

describe("balance", () => {
  it("off by default", () => {
    expect(balanceSchema.parse({}).enabled).toBe(false);
  });

  it("moves from the busiest hosts to the idle one until the cell is under maxImbalance, each move lowering the spread", () => {
    const s = lopsided();
    const p = plan(s, opts());
    expect(p.moves.length).toBeGreaterThan(0);
    let cur = s;
    for (const m of p.moves) {
      expect(m.to).toBe("h3");
      const next = applyMove(cur, m);
      expect(spread(cur) - spread(next)).toBeGreaterThanOrEqual(params.minImprovement);
      cur = next;
    }
    expect(plan(cur, opts()).moves).toEqual([]);
  });

  it("prefers the move with most reduction per unit of cost: the small VM when it does nearly as much", () => {
    const s = cluster(
      [host("h1", { cpuLoad: 0, memoryUsedMiB: 0 }), host("h2", { cpuLoad: 0, memoryUsedMiB: 0 })],
      [vm("big", "h1", { cpuLoad: 3, memoryMiB: 30_000 }), vm("small", "h1", { cpuLoad: 3, memoryMiB: 2_000 })],
    );
    const [first] = [...proposeBalance(policyInput(s), params)];
    expect(first?.candidates[0]).toBe("small");
    expect(first?.optional).toBe(true);
  });

  it("a balanced cell, or a move below minImprovement, gives nothing", () => {
    const even = cluster([host("h1"), host("h2")], [vm("a", "h1"), vm("b", "h2")]);
    expect(plan(even, opts()).moves).toEqual([]);
    expect(plan(lopsided(), opts({ minImprovement: 0.5 })).moves).toEqual([]);
    expect(plan(lopsided(), opts({ maxImbalance: 0.9 })).moves).toEqual([]);
  });

  it("never takes a destination over its cell's mean load nor over the low band", () => {
    // Moving the only VM would just swap which host is loaded.
    const s = cluster([host("h1", { cpuLoad: 0, memoryUsedMiB: 0 }), host("h2", { cpuLoad: 0, memoryUsedMiB: 0 })], [vm("a", "h1", { cpuLoad: 6, memoryMiB: 50_000 })]);
    expect(plan(s, opts()).moves).toEqual([]);
    // The idle host is already near cpuLow: nothing may push it over.
    const t = cluster([host("h1", { cpuLoad: 0.6 }), host("h2", { cpuLoad: 0.65 }), host("h3", { cpuLoad: 0.66 })], [vm("a", "h1", { cpuLoad: 1 })]);
    for (const m of plan(t, opts({ maxImbalance: 0 })).moves) {
      const dest = applyMove(t, m).hosts.find((h) => h.name === m.to);
      expect(dest && dest.cpuLoad).toBeLessThan(0.7);
      expect(dest && memoryFraction(dest)).toBeLessThan(0.8);
    }
  });

  it("leaves guests predicted not to converge, and pinned ones, where they are", () => {
    const s = cluster(
      [host("h1", { cpuLoad: 0, memoryUsedMiB: 0 }), host("h2", { cpuLoad: 0, memoryUsedMiB: 0 })],
      [vm("dirty", "h1", { cpuLoad: 3, memoryMiB: 8_000, dirtyRateMiBps: 5_000 }), vm("pinned", "h1", { cpuLoad: 3, tags: ["ballast.pin"] }), vm("x", "h1", { cpuLoad: 0, memoryMiB: 500 })],
    );
    expect(plan(s, opts()).moves.map((m) => m.vm)).not.toContain("dirty");
    expect(plan(s, opts()).moves.map((m) => m.vm)).not.toContain("pinned");
  });

  it("reports a cell it cannot bring under maxImbalance as held back by minImprovement", () => {
    const s = cluster([host("h1", { cpuLoad: 0, memoryUsedMiB: 0 }), host("h2", { cpuLoad: 0, memoryUsedMiB: 0 })], [vm("a", "h1", { cpuLoad: 6, memoryMiB: 50_000 })]);
    expect(plan(s, opts()).notes).toEqual([expect.objectContaining({ policy: "balance", code: "min-improvement", cell: "c1", held: true })]);
  });
});
