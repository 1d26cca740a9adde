import { describe, expect, it } from "vitest";
import { plan, type Plan } from "../../src/daemon/planner.js";
import { applyMove, memoryFraction, vmId, type ClusterSnapshot, type HostId } from "../../src/model/index.js";
import { enabledPolicies, policyConfigSchema } from "../../src/policies/registry.js";
import type { LoadPoint } from "../../src/policies/types.js";
import type { MigrationPolicy } from "../../src/daemon/migration-kind.js";
import { cluster, host, NOW, planOpts, T, vm } from "./fixtures.js";

const replay = (s: ClusterSnapshot, p: Plan): ClusterSnapshot => p.moves.reduce(applyMove, s);
const hostOf = (s: ClusterSnapshot, name: string) => s.hosts.find((h) => h.name === name);
const drainOnly = () => enabledPolicies(policyConfigSchema.parse({ "hotspot-relief": { enabled: false } }));
const hotOnly = () => enabledPolicies(policyConfigSchema.parse({ "maintenance-drain": { enabled: false } }));

describe("planner: maintenance drain", () => {
  it("evacuates every VM within the cell, largest first, and the replayed result leaves the host empty", () => {
    const s = cluster(
      [host("h1", { maintenance: true }), host("h2"), host("h3"), host("x1", { cell: "c2" })],
      [vm("big", "h1", { memoryMiB: 16000 }), vm("mid", "h1", { memoryMiB: 8000 }), vm("small", "h1", { memoryMiB: 2000 }), vm("stay", "h2")],
    );
    const p = plan(s, planOpts());
    expect(p.blocked).toEqual([]);
    expect(p.moves.map((m) => m.vm)).toEqual(["big", "mid", "small"]);
    for (const m of p.moves) {
      expect(m).toMatchObject({ from: "h1", policy: "maintenance-drain", reason: "host h1 in maintenance", kind: "live-shared" });
      expect(["h2", "h3"]).toContain(m.to);
    }
    const after = replay(s, p);
    expect(after.vms.filter((v) => v.host === "h1")).toEqual([]);
    expect(hostOf(after, "h1")?.memoryUsedMiB).toBe(20_000);
  });

  it("spreads by headroom: each accepted move is simulated before the next is chosen", () => {
    // h2 and h3 identical: the first VM goes to h2 (tie → name), the second to h3 (h2 now fuller).
    const s = cluster([host("h1", { maintenance: true }), host("h3"), host("h2")], [vm("a", "h1", { memoryMiB: 8000 }), vm("b", "h1", { memoryMiB: 8000 })]);
    expect(plan(s, planOpts()).moves.map((m) => m.to)).toEqual(["h2", "h3"]);
  });

  it("packs coherently: never overcommits a destination across several moves", () => {
    // h2 has 90,000 - 20,000 = 70,000 MiB below memHigh, minus 1 for strictness: room for two 30,000 VMs, not three.
    const s = cluster(
      [host("h1", { maintenance: true, memoryMiB: 200_000 }), host("h2")],
      [vm("a", "h1", { memoryMiB: 30_000, cpuLoad: 0.1 }), vm("b", "h1", { memoryMiB: 30_000, cpuLoad: 0.1 }), vm("c", "h1", { memoryMiB: 30_000, cpuLoad: 0.1 })],
    );
    const p = plan(s, planOpts());
    expect(p.moves.map((m) => m.vm)).toEqual(["a", "b"]);
    expect(p.blocked).toEqual([
      { vm: "c", policy: "maintenance-drain", reason: "no destination in cell c1: 1 host lacks memory (need 30000 MiB below memHigh 90%)" },
    ]);
    const h2 = hostOf(replay(s, p), "h2");
    expect(h2 && memoryFraction(h2)).toBeLessThan(T.memHigh);
  });

  it("drain comes before hotspot relief", () => {
    const s = cluster(
      [host("hot"), host("m", { maintenance: true }), host("h2"), host("h3")],
      [vm("burner", "hot", { cpuLoad: 6, vcpus: 8 }), vm("small", "hot", { cpuLoad: 1.5 }), vm("d1", "m"), vm("d2", "m")],
    );
    const p = plan(s, planOpts());
    expect(p.moves.map((m) => m.policy)).toEqual(["maintenance-drain", "maintenance-drain", "hotspot-relief"]);
  });

  it("a shut-off VM moves cold, a volume-backed one live-volume", () => {
    const s = cluster([host("h1", { maintenance: true }), host("h2")], [vm("off", "h1", { state: "shutoff", memoryMiB: 9000 }), vm("vol", "h1", { storage: { kind: "volume" }, volumes: 1 })]);
    expect(plan(s, planOpts()).moves.map((m) => [m.vm, m.kind])).toEqual([
      ["off", "cold"],
      ["vol", "live-volume"],
    ]);
  });

  it("plans the whole drain at once (preview), or stops at maxMoves", () => {
    const vms = Array.from({ length: 6 }, (_, i) => vm(`v${i}`, "h1", { memoryMiB: 1000 + i }));
    const s = cluster([host("h1", { maintenance: true }), host("h2"), host("h3")], vms);
    expect(plan(s, planOpts()).moves).toHaveLength(6);
    expect(plan(s, planOpts({ maxMoves: 1 })).moves.map((m) => m.vm)).toEqual(["v5"]);
    expect(plan(s, planOpts({ maxMoves: 0 })).moves).toEqual([]);
  });
});

describe("planner: blocked reasons", () => {
  const cases: { name: string; snapshot: ClusterSnapshot; migration?: MigrationPolicy; expected: string }[] = [
    {
      name: "cell full (the other cell has room but is never used)",
      snapshot: cluster(
        [host("h1", { maintenance: true }), host("h2", { memoryUsedMiB: 85_000 }), host("h3", { memoryUsedMiB: 88_000 }), host("x1", { cell: "c2" })],
        [vm("v", "h1", { memoryMiB: 8192 })],
      ),
      expected: "no destination in cell c1: 2 hosts lack memory (need 8192 MiB below memHigh 90%)",
    },
    {
      name: "every other host of the cell in maintenance",
      snapshot: cluster([host("h1", { maintenance: true }), host("h2", { maintenance: true }), host("h3", { maintenance: true }), host("x1", { cell: "c2" })], [vm("v", "h1")]),
      expected: "no destination in cell c1: 2 hosts in maintenance",
    },
    {
      name: "mixed: maintenance, unreachable, memory, CPU",
      snapshot: cluster(
        [
          host("h1", { maintenance: true }),
          host("m1", { maintenance: true }),
          host("u1", { reachable: false }),
          host("full", { memoryUsedMiB: 89_000 }),
          host("busy", { cpuLoad: 0.8 }),
          host("busy2", { cpuLoad: 0.84 }),
        ],
        [vm("v", "h1", { cpuLoad: 1, memoryMiB: 8000 })],
      ),
      expected: "no destination in cell c1: 1 host in maintenance, 1 host unreachable, 1 host lacks memory (need 8000 MiB below memHigh 90%), 2 hosts would reach cpuHigh 85%",
    },
    {
      name: "shared storage not mounted by any destination",
      snapshot: cluster([host("h1", { maintenance: true }), host("h2", { sharedStorage: ["ceph"] }), host("h3", { sharedStorage: [] })], [vm("v", "h1")]),
      expected: "no destination in cell c1: 2 hosts do not mount shared storage nfs",
    },
    {
      name: "local disk with block migration off",
      snapshot: cluster([host("h1", { maintenance: true }), host("h2")], [vm("v", "h1", { storage: { kind: "local" } })]),
      expected: "local disk and block migration is disabled (migration.allowBlockMigration)",
    },
    {
      name: "the only host of its cell",
      snapshot: cluster([host("h1", { maintenance: true }), host("x1", { cell: "c2" })], [vm("v", "h1")]),
      expected: "no destination in cell c1: no other host in the cell",
    },
    {
      name: "source unreachable",
      snapshot: cluster([host("h1", { maintenance: true, reachable: false }), host("h2")], [vm("v", "h1")]),
      expected: "source h1 is unreachable: its VMs cannot be migrated",
    },
  ];
  it.each(cases)("$name", ({ snapshot, migration, expected }) => {
    const p = plan(snapshot, planOpts(migration ? { migration } : {}));
    expect(p.moves).toEqual([]);
    expect(p.blocked).toEqual([{ vm: "v", policy: "maintenance-drain", reason: expected }]);
  });

  it("local disk moves with block migration on, or cold when its tag allows", () => {
    const s = cluster([host("h1", { maintenance: true }), host("h2")], [vm("v", "h1", { storage: { kind: "local" }, tags: ["batch"] })]);
    expect(plan(s, planOpts({ migration: { allowBlockMigration: true, allowColdForTags: [] } })).moves[0]?.kind).toBe("live-block");
    expect(plan(s, planOpts({ migration: { allowBlockMigration: false, allowColdForTags: ["batch"] } })).moves[0]?.kind).toBe("cold");
  });

  it("the guard hook excludes VMs with its reason, per policy", () => {
    const s = cluster([host("h1", { maintenance: true }), host("h2")], [vm("a", "h1"), vm("b", "h1", { memoryMiB: 100 })]);
    const seen: string[] = [];
    const p = plan(
      s,
      planOpts({
        exclude: (id, policy) => {
          seen.push(`${id}/${policy}`);
          return id === "a" ? { ok: false, code: "cooldown", reason: "moved 4 min ago (cooldown 30 min)" } : { ok: true };
        },
      }),
    );
    expect(p.moves.map((m) => m.vm)).toEqual(["b"]);
    expect(p.blocked).toEqual([{ vm: "a", policy: "maintenance-drain", reason: "moved 4 min ago (cooldown 30 min)" }]);
    expect(seen).toContain("a/maintenance-drain");
  });
});

describe("planner: hotspot relief", () => {
  // hot: 0.2 + 7.5/10 = 0.95
  const hotCluster = (extra: Parameters<typeof host>[1] = {}) =>
    cluster(
      [host("hot"), host("d1", extra), host("d2", { cpuLoad: 0.3, ...extra })],
      [vm("a", "hot", { cpuLoad: 3, vcpus: 4, memoryMiB: 16000 }), vm("b", "hot", { cpuLoad: 2.5, vcpus: 4, memoryMiB: 4000 }), vm("c", "hot", { cpuLoad: 2, vcpus: 4, memoryMiB: 2000 })],
    );

  it("moves the cheapest VM that takes the host out of the band to a destination that stays under cpuLow", () => {
    // c or b would leave hot at 0.75 or 0.70, in the band (cpuLow 0.70 – cpuHigh 0.85); a takes it to 0.65.
    const s = hotCluster();
    const p = plan(s, planOpts());
    expect(p.moves).toEqual([
      { vm: "a", from: "hot", to: "d1", policy: "hotspot-relief", reason: "host hot hot: cpu 95% ≥ cpuHigh 85% in the snapshot", kind: "live-shared" },
    ]);
    const after = replay(s, p);
    expect(hostOf(after, "hot")?.cpuLoad).toBeLessThan(T.cpuHigh);
    expect(hostOf(after, "d1")?.cpuLoad).toBeLessThan(T.cpuLow);
  });

  it("skips a destination the move would push to cpuLow (hysteresis), even if it is under cpuHigh", () => {
    // d1 at 0.55 + 0.2 = 0.75 ≥ cpuLow; d2 at 0.3 + 0.2 = 0.5: fine.
    const s = cluster(
      [host("hot"), host("d1", { cpuLoad: 0.55 }), host("d2", { cpuLoad: 0.3 })],
      [vm("a", "hot", { cpuLoad: 5.5, vcpus: 8 }), vm("c", "hot", { cpuLoad: 2, vcpus: 4 })],
    );
    expect(plan(s, planOpts()).moves.map((m) => m.to)).toEqual(["d2"]);
  });

  it("when no destination would stay under cpuLow, the relief goes to one that stays under cpuHigh (better than hot)", () => {
    // d1 at 0.6 + 0.2 = 0.8 and d2 at 0.65 + 0.2 = 0.85: only d1 stays under cpuHigh.
    const s = cluster(
      [host("hot"), host("d1", { cpuLoad: 0.6 }), host("d2", { cpuLoad: 0.65 })],
      [vm("a", "hot", { cpuLoad: 5.5, vcpus: 8 }), vm("c", "hot", { cpuLoad: 2, vcpus: 4 })],
    );
    const p = plan(s, planOpts());
    expect(p.moves.map((m) => [m.vm, m.to])).toEqual([["c", "d1"]]);
    expect(hostOf(replay(s, p), "d1")?.cpuLoad).toBeLessThan(T.cpuHigh);
  });

  it("a CPU hotspot's VM goes to the host with most CPU room, a memory hotspot's to the one with most memory room", () => {
    // c adds 0.2 CPU and 2,000 MiB. Weighing both dimensions equally, roomy-mem would win the CPU relief.
    const dests = [host("roomy-cpu", { cpuLoad: 0.1, memoryUsedMiB: 70_000 }), host("roomy-mem", { cpuLoad: 0.4, memoryUsedMiB: 10_000 })];
    const cpuHot = cluster([host("hot"), ...dests], [vm("a", "hot", { cpuLoad: 3, vcpus: 4, memoryMiB: 16000 }), vm("b", "hot", { cpuLoad: 2.5, vcpus: 4, memoryMiB: 4000 }), vm("c", "hot", { cpuLoad: 2, vcpus: 4, memoryMiB: 2000 })]);
    expect(plan(cpuHot, planOpts()).moves.map((m) => [m.vm, m.to])).toEqual([["c", "roomy-cpu"]]);
    // hot: 20,000 + 72,000 MiB = 92 % ≥ memHigh, CPU 0.2 + 0.3.
    const memHot = cluster([host("hot"), ...dests], [vm("m", "hot", { cpuLoad: 1, memoryMiB: 64_000 }), vm("n", "hot", { cpuLoad: 1, memoryMiB: 4_000 }), vm("o", "hot", { cpuLoad: 1, memoryMiB: 4_000 })]);
    expect(plan(memHot, planOpts()).moves.map((m) => [m.vm, m.to])).toEqual([["n", "roomy-mem"]]);
  });

  it("a hotspot only predicted is not relieved into the band: it waits for a host under cpuLow", () => {
    // hot: 0.11 + 0.5 + 0.2 = 0.81, its last step leaving 0.07 to come within a minute: projected 0.88 ≥ cpuHigh. c's move leaves 0.61, but d1 would reach
    // 0.75 and d2 0.8, both in the band (cpuLow 0.7 – cpuHigh 0.85).
    const s = cluster(
      [host("hot", { cpuLoad: 0.11 }), host("d1", { cpuLoad: 0.55 }), host("d2", { cpuLoad: 0.6 })],
      [vm("a", "hot", { cpuLoad: 5, vcpus: 8 }), vm("c", "hot", { cpuLoad: 2, vcpus: 4 })],
    );
    const rising = new Map<HostId, LoadPoint[]>([
      [s.hosts[0]!.name, [{ atMs: NOW - 60_000, cpuLoad: 0.81 - 0.07 * Math.E }, { atMs: NOW, cpuLoad: 0.81 }]],
    ]);
    const predictive = enabledPolicies(policyConfigSchema.parse({ "hotspot-relief": { predictMinutes: 1 } }));
    const p = plan(s, planOpts({ policies: predictive, history: rising }));
    expect(p.moves).toEqual([]);
    expect(p.blocked[0]?.reason).toMatch(/^host hot hot: cpu 81% rising, projected 88% ≥ cpuHigh 85% within 1 min; .*would reach cpuLow 70%/);
  });

  it("several moves when no single VM relieves the host; re-planned after each", () => {
    // hot: 0.2 + 8 × 0.95/10 = 0.96; each VM frees 0.095: two moves are needed.
    const vms = Array.from({ length: 8 }, (_, i) => vm(`v${i}`, "hot", { cpuLoad: 0.95, memoryMiB: 1000 + i }));
    const s = cluster([host("hot"), host("d1"), host("d2")], vms);
    const p = plan(s, planOpts());
    expect(p.moves.map((m) => m.vm)).toEqual(["v0", "v1"]);
    expect(hostOf(replay(s, p), "hot")?.cpuLoad).toBeLessThan(T.cpuHigh);
    expect(p.blocked).toEqual([]);
  });

  it("a hot host whose candidates are all blocked is reported once, not retried", () => {
    const s = hotCluster({ cpuLoad: 0.65 });
    const p = plan(s, planOpts({ explain: true }));
    expect(p.moves).toEqual([]);
    expect(p.blocked).toHaveLength(1);
    expect(p.blocked[0]?.vm).toBe("a");
    expect(p.blocked[0]?.reason).toMatch(/^host hot hot: cpu 95% ≥ cpuHigh 85% in the snapshot; none of 3 candidates can move — a: no destination in cell c1: 2 hosts would reach cpuHigh 85%/);
    expect(p.explain).toHaveLength(1);
    // Each candidate once: the explanation is of the last attempt (into the band), not of both.
    expect(p.explain?.[0]?.candidates.map((c) => c.vm)).toEqual(["a", "c", "b"]);
  });

  it("no history given: snapshot load counts; history given and not sustained: nothing moves", () => {
    const s = hotCluster();
    const dip: LoadPoint[] = [
      { atMs: NOW - 6 * 60_000, cpuLoad: 0.95 },
      { atMs: NOW - 60_000, cpuLoad: 0.5 },
      { atMs: NOW, cpuLoad: 0.95 },
    ];
    const steady: LoadPoint[] = [
      { atMs: NOW - 6 * 60_000, cpuLoad: 0.95 },
      { atMs: NOW, cpuLoad: 0.95 },
    ];
    expect(plan(s, planOpts()).moves).toHaveLength(1);
    expect(plan(s, planOpts({ history: new Map<HostId, LoadPoint[]>([[s.hosts[0]!.name, dip]]) })).moves).toHaveLength(0);
    const sustained = plan(s, planOpts({ history: new Map<HostId, LoadPoint[]>([[s.hosts[0]!.name, steady]]) }));
    expect(sustained.moves[0]?.reason).toBe("host hot hot: cpu 95% ≥ cpuHigh 85% for 5 min");
  });

  it("a VM already moved by the drain is not moved again", () => {
    // m drains onto d (the only destination), which then is hot-ish but never ≥ cpuHigh: evacuate keeps it below.
    const s = cluster([host("m", { maintenance: true }), host("d", { cpuLoad: 0.5 })], [vm("x", "m", { cpuLoad: 3, vcpus: 4 })]);
    const p = plan(s, planOpts());
    expect(p.moves.map((m) => m.vm)).toEqual(["x"]);
    expect(hostOf(replay(s, p), "d")?.cpuLoad).toBeLessThan(T.cpuHigh);
  });

  it("unreachable hosts are neither sources nor destinations", () => {
    const s = cluster(
      [host("hot", { reachable: false }), host("hot2"), host("down", { reachable: false, cpuLoad: 0 }), host("d", { cpuLoad: 0.4 })],
      [vm("a", "hot", { cpuLoad: 7.5, vcpus: 8 }), vm("b", "hot2", { cpuLoad: 7.5, vcpus: 8 }), vm("c", "hot2", { cpuLoad: 0.5 })],
    );
    const p = plan(s, planOpts({ policies: hotOnly() }));
    expect(p.moves.map((m) => [m.vm, m.from, m.to])).toEqual([["c", "hot2", "d"]]);
  });
});

describe("planner: determinism and explain", () => {
  const s = cluster(
    [host("m", { maintenance: true }), host("hot"), host("a"), host("b"), host("c", { cell: "c2" }), host("d", { cell: "c2", maintenance: true })],
    [
      vm("v1", "m"),
      vm("v2", "m", { memoryMiB: 4000 }),
      vm("v3", "m", { storage: { kind: "local" } }),
      vm("h1", "hot", { cpuLoad: 4, vcpus: 4 }),
      vm("h2", "hot", { cpuLoad: 3, vcpus: 4 }),
      vm("x", "d"),
    ],
  );

  it("same input → same plan; host and VM order in the snapshot do not matter", () => {
    const p1 = plan(s, planOpts());
    const p2 = plan(s, planOpts());
    const shuffled: ClusterSnapshot = { ...s, hosts: [...s.hosts].reverse(), vms: [...s.vms].reverse() };
    expect(p2).toEqual(p1);
    expect(plan(shuffled, planOpts())).toEqual(p1);
    expect(p1.moves.length).toBeGreaterThan(0);
    expect(p1.blocked.map((b) => b.vm)).toEqual(["v3"]);
  });

  it("does not modify the snapshot", () => {
    const before = JSON.stringify(s);
    plan(s, planOpts({ explain: true }));
    expect(JSON.stringify(s)).toBe(before);
  });

  it("explain: candidates tried, rejections with reasons, scores, the choice", () => {
    const p = plan(s, planOpts({ explain: true }));
    expect(p.explain?.length).toBe(p.moves.length + p.blocked.length);
    expect(p.explain?.[0]?.source).toBe("d"); // hosts in maintenance by name
    const first = p.explain?.find((e) => e.source === "m");
    expect(first?.policy).toBe("maintenance-drain");
    expect(first?.outcome.kind).toBe("moved");
    const cand = first?.candidates[0];
    expect(cand?.vm).toBe(vmId("v1"));
    expect(cand?.chosen).toBe(first?.outcome.kind === "moved" ? first.outcome.move.to : undefined);
    expect(cand?.feasible[0]?.host).toBe(cand?.chosen);
    const scores = cand?.feasible.map((f) => f.score) ?? [];
    expect(scores.length).toBeGreaterThan(1);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    for (const f of cand?.feasible ?? []) expect(f.score).toBeGreaterThan(0);
    expect(cand?.rejected.map((r) => [r.host, r.code])).toEqual([["hot", "cpu-high"]]);
    const blocked = p.explain?.find((e) => e.outcome.kind === "blocked");
    expect(blocked?.candidates[0]?.skipped).toBe("local disk and block migration is disabled (migration.allowBlockMigration)");
    const planWithout = plan(s, planOpts());
    expect(planWithout.explain).toBeUndefined();
    expect(planWithout.moves).toEqual(p.moves);
  });

  it("explain lists rejected destinations with their reasons", () => {
    const t = cluster([host("m", { maintenance: true }), host("full", { memoryUsedMiB: 89_000 }), host("ok")], [vm("v", "m")]);
    const e = plan(t, planOpts({ explain: true })).explain?.[0];
    expect(e?.candidates[0]?.rejected).toEqual([{ host: "full", code: "memory", reason: "full lacks memory: needs 8000 MiB, 1000 MiB free below memHigh 90%" }]);
    expect(e?.candidates[0]?.chosen).toBe("ok");
  });

  it("policies can be given in any order: priority decides", () => {
    const reversed = [...enabledPolicies(policyConfigSchema.parse({}))].reverse();
    expect(plan(s, planOpts({ policies: reversed }))).toEqual(plan(s, planOpts()));
    expect(plan(s, planOpts({ policies: drainOnly() })).moves.every((m) => m.policy === "maintenance-drain")).toBe(true);
  });
});
