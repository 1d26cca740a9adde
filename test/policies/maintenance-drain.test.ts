import { describe, expect, it } from "vitest";
import { maintenanceDrain, proposeDrain, MAINTENANCE_DRAIN_PRIORITY } from "../../src/policies/maintenance-drain.js";
import { HOTSPOT_RELIEF_PRIORITY } from "../../src/policies/hotspot-relief.js";
import type { ClusterSnapshot } from "../../src/model/index.js";
import { cluster, host, policyInput, vm } from "../planner/fixtures.js";

const propose = (s: ClusterSnapshot) => [...proposeDrain(policyInput(s))];

describe("maintenance-drain", () => {
  const cases: { name: string; snapshot: ClusterSnapshot; expected: { source: string; vm: string; reason: string }[] }[] = [
    {
      name: "no host in maintenance: nothing to do",
      snapshot: cluster([host("h1"), host("h2")], [vm("a", "h1"), vm("b", "h2")]),
      expected: [],
    },
    {
      name: "every VM of the host, largest memory first, ties by id",
      snapshot: cluster(
        [host("h1", { maintenance: true }), host("h2")],
        [vm("small", "h1", { memoryMiB: 1024 }), vm("big", "h1", { memoryMiB: 16384 }), vm("mid-b", "h1"), vm("mid-a", "h1"), vm("other", "h2")],
      ),
      expected: ["big", "mid-a", "mid-b", "small"].map((v) => ({ source: "h1", vm: v, reason: "host h1 in maintenance" })),
    },
    {
      name: "shut-off and paused VMs are evacuated too",
      snapshot: cluster([host("h1", { maintenance: true }), host("h2")], [vm("off", "h1", { state: "shutoff" }), vm("p", "h1", { state: "paused", memoryMiB: 9000 })]),
      expected: [
        { source: "h1", vm: "p", reason: "host h1 in maintenance" },
        { source: "h1", vm: "off", reason: "host h1 in maintenance" },
      ],
    },
    {
      name: "the flag file's reason is carried",
      snapshot: cluster([host("h1", { maintenance: true, maintenanceReason: "kernel 6.1 upgrade" }), host("h2")], [vm("a", "h1")]),
      expected: [{ source: "h1", vm: "a", reason: "host h1 in maintenance: kernel 6.1 upgrade" }],
    },
    {
      name: "garbage in the flag file is flattened and capped",
      snapshot: cluster([host("h1", { maintenance: true, maintenanceReason: `\u0000\u001b[31mdisk\n\n  swap\t${"x".repeat(5000)}` }), host("h2")], [vm("a", "h1")]),
      expected: [{ source: "h1", vm: "a", reason: `host h1 in maintenance: ${`[31mdisk swap ${"x".repeat(500)}`.slice(0, 199)}…` }],
    },
    {
      name: "an empty or blank reason is left out",
      snapshot: cluster([host("h1", { maintenance: true, maintenanceReason: " \n " }), host("h2")], [vm("a", "h1")]),
      expected: [{ source: "h1", vm: "a", reason: "host h1 in maintenance" }],
    },
    {
      name: "several hosts in maintenance: by host name",
      snapshot: cluster([host("h3", { maintenance: true }), host("h1", { maintenance: true }), host("h2")], [vm("x", "h3"), vm("y", "h1")]),
      expected: [
        { source: "h1", vm: "y", reason: "host h1 in maintenance" },
        { source: "h3", vm: "x", reason: "host h3 in maintenance" },
      ],
    },
    {
      name: "an unreachable host in maintenance is still proposed (the planner reports it blocked)",
      snapshot: cluster([host("h1", { maintenance: true, reachable: false }), host("h2")], [vm("a", "h1")]),
      expected: [{ source: "h1", vm: "a", reason: "host h1 in maintenance" }],
    },
  ];

  it.each(cases)("$name", ({ snapshot, expected }) => {
    const got = propose(snapshot);
    expect(got.map((p) => ({ source: p.source, vm: p.candidates[0], reason: p.reason }))).toEqual(expected);
    for (const p of got) {
      expect(p.candidates).toHaveLength(1);
      expect(p.goal).toEqual({ kind: "evacuate" });
      expect(p.priority).toBe(MAINTENANCE_DRAIN_PRIORITY);
      expect(p.policy).toBe("maintenance-drain");
    }
    expect(new Set(got.map((p) => p.key)).size).toBe(got.length);
  });

  it("outranks hotspot relief", () => {
    expect(MAINTENANCE_DRAIN_PRIORITY).toBeGreaterThan(HOTSPOT_RELIEF_PRIORITY);
    expect(maintenanceDrain.create().priority).toBe(MAINTENANCE_DRAIN_PRIORITY);
  });

  it("reason text never exceeds a bounded length", () => {
    const s = cluster([host("h1", { maintenance: true, maintenanceReason: "y".repeat(10_000_000) }), host("h2")], [vm("a", "h1")]);
    expect(propose(s)[0]?.reason.length).toBeLessThanOrEqual(250);
  });
});
