import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkConfigText, loadConfig, type ResolvedConfig } from "../../src/config/index.js";
import { countPingPongs, PING_PONG_WINDOW_MS, simulate, type MigrationRecord } from "../../src/daemon/simulate.js";
import { createSimCluster, expandTimeline, BurstApplier } from "../../src/drivers/sim/index.js";
import { hostId, vmId } from "../../src/model/index.js";
import { VirtualClock } from "../../src/util/clock.js";

const HOUR = 3_600_000;
const SHIPPED = "config/scenarios";

function config(yaml: string): ResolvedConfig {
  const r = checkConfigText(yaml, "test.yaml", "/tmp");
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

describe("countPingPongs", () => {
  const m = (vm: string, from: string, to: string, endedAt: number, status: MigrationRecord["status"] = "succeeded"): MigrationRecord => ({
    vm: vmId(vm),
    from: hostId(from),
    to: hostId(to),
    status,
    startedAt: endedAt - 10_000,
    endedAt,
    dataMiB: 1024,
    policy: "test",
  });

  it.each<[string, MigrationRecord[], number]>([
    ["no history", [], 0],
    ["a chain that never returns", [m("v1", "a", "b", 0), m("v1", "b", "c", HOUR)], 0],
    ["back within the window", [m("v1", "a", "b", 0), m("v1", "b", "a", 2 * HOUR)], 1],
    ["back exactly at the window's end", [m("v1", "a", "b", 0), m("v1", "b", "a", PING_PONG_WINDOW_MS)], 1],
    ["back after the window", [m("v1", "a", "b", 0), m("v1", "b", "a", PING_PONG_WINDOW_MS + 1)], 0],
    ["back via a third host", [m("v1", "a", "b", 0), m("v1", "b", "c", HOUR), m("v1", "c", "a", 2 * HOUR)], 1],
    ["a failed return does not count", [m("v1", "a", "b", 0), m("v1", "b", "a", HOUR, "failed")], 0],
    ["another VM arriving is no return", [m("v1", "a", "b", 0), m("v2", "b", "a", HOUR)], 0],
    ["back and forth twice", [m("v1", "a", "b", 0), m("v1", "b", "a", HOUR), m("v1", "a", "b", 2 * HOUR)], 2],
    ["order of records does not matter", [m("v1", "b", "a", 2 * HOUR), m("v1", "a", "b", 0)], 1],
  ])("%s", (_name, history, expected) => {
    expect(countPingPongs(history)).toBe(expected);
  });
});

describe("scenario timeline", () => {
  it("expands repeats up to `until` and the run's end, ends of bursts first at equal times, then file order", () => {
    const c = config(`
sim: { cells: [{ name: a, hosts: 2 }], tenants: [{ name: t, share: 0.5 }] }
scenario:
  name: x
  events:
    - { at: 5h, undrain: a-h1 }
    - { at: 1h, every: 2h, until: 5h, burst: { tenant: t, cpu: 0.5, for: 2h } }
    - { at: 3h, drain: a-h1, reason: kernel }
`);
    const actions = expandTimeline(c.scenario ?? { name: "x", description: "", events: [] }, 6 * HOUR).map((a) => `${a.atMs / HOUR}h ${a.kind}`);
    expect(actions).toEqual(["1h burst-start", "3h burst-end", "3h burst-start", "3h drain", "5h burst-end", "5h undrain", "5h burst-start"]);
  });

  it("a burst raises its VMs' demand by a share of their vCPUs and gives it back when it ends", () => {
    const c = config(`
sim: { seed: 3, cells: [{ name: a, hosts: 2, vmsPerHost: 20 }], tenants: [{ name: t, share: 0.3 }], heavyDirtierFraction: 0 }
scenario: { name: x, events: [{ at: 0s, burst: { tenant: t, cpu: 0.25, for: 1h } }] }
`);
    if (!c.sim || !c.scenario) throw new Error("no sim");
    const cluster = createSimCluster(c.sim, new VirtualClock());
    const tenant = cluster.vmsTagged("tenant=t");
    expect(tenant.length).toBeGreaterThan(3);
    expect(tenant.length).toBeLessThan(cluster.vmIds().length);
    const before = new Map(tenant.map((v) => [v, cluster.demandOf(v)]));
    const [start, end] = expandTimeline(c.scenario, 2 * HOUR);
    if (start?.kind !== "burst-start" || end?.kind !== "burst-end") throw new Error("expected a burst");
    const bursts = new BurstApplier(cluster);
    bursts.apply(start);
    const vcpus = new Map(cluster.sample().vms.map((v) => [v.id, v.vcpus]));
    for (const v of tenant) expect(cluster.demandOf(v)).toBeCloseTo(Math.min(vcpus.get(v) ?? 0, (before.get(v) ?? 0) + 0.25 * (vcpus.get(v) ?? 0)), 9);
    bursts.apply(end);
    for (const v of tenant) expect(cluster.demandOf(v)).toBe(before.get(v));
  });

  it("memoryFill packs hosts denser; wavePeakMinute puts the cell's crest there", () => {
    const sim = (fill: number): number => {
      const c = config(`sim: { seed: 5, cells: [{ name: a, hosts: 12, memoryFill: ${fill} }] }`);
      if (!c.sim) throw new Error("no sim");
      const s = createSimCluster(c.sim, new VirtualClock()).sample();
      // Flavour sizes are rounded, but never past what the host holds.
      for (const h of s.hosts) expect(h.memoryUsedMiB).toBeLessThanOrEqual(h.memoryMiB);
      return s.hosts.reduce((a, h) => a + h.memoryUsedMiB / h.memoryMiB, 0) / s.hosts.length;
    };
    expect(sim(0.9)).toBeGreaterThan(0.8);
    expect(sim(0.6)).toBeGreaterThan(0.5);
    expect(sim(0.6)).toBeLessThan(0.7);
    expect(sim(0.3)).toBeLessThan(0.4);
    const c = config(`sim: { seed: 5, meanUtilisation: 0.4, cells: [{ name: a, hosts: 6, wavePeakMinute: 780 }] }`);
    if (!c.sim) throw new Error("no sim");
    const cluster = createSimCluster(c.sim, new VirtualClock());
    const day = Date.UTC(2026, 0, 1);
    const demand = (minute: number): number => cluster.vmIds().reduce((a, v) => a + cluster.demandOf(v, day + minute * 60_000), 0);
    expect(demand(780)).toBeGreaterThan(demand(780 - 360));
    expect(demand(780)).toBeGreaterThan(demand(780 + 720));
  });
});

describe("ballast simulate --scenario", () => {
  it.each(readdirSync(SHIPPED).filter((f) => f.endsWith(".yaml")))("%s loads and runs", async (file) => {
    const r = await simulate(loadConfig(join(SHIPPED, file)), 2 * HOUR, 60_000);
    expect(r.scenario?.name).toBe(file.replace(/\.yaml$/, ""));
    expect(r.algorithm).toBe("ballast");
    expect(r.rounds).toBe(120);
    expect(r.hotspotHostMinutes).toBeGreaterThanOrEqual(0);
    expect(r.imbalance.maxCpu).toBeGreaterThanOrEqual(r.imbalance.meanCpu);
    expect(r.migrations.total).toBe(Object.values(r.migrations.byOutcome).reduce((a, n) => a + n, 0));
  });

  it("a drain empties the host through maintenance-drain, and the report is the same on every run", async () => {
    const c = config(`
sim: { seed: 9, cells: [{ name: a, hosts: 4, cpus: 32, memoryMiB: 131072, vmsPerHost: 5 }], heavyDirtierFraction: 0, meanUtilisation: 0.2 }
migration: { allowBlockMigration: true }
scenario:
  name: drain
  events: [{ at: 10m, drain: a-h2 }]
`);
    const r = await simulate(c, HOUR, 60_000);
    expect(r.migrations.byPolicy["maintenance-drain"]).toBeGreaterThanOrEqual(4);
    expect(r.migrations.byOutcome.succeeded).toBe(r.migrations.total);
    expect(await simulate(c, HOUR, 60_000)).toEqual(r);
  });

  it("is deterministic: the same seed gives the same report", async () => {
    const c = loadConfig(join(SHIPPED, "bursty-tenant.yaml"));
    const a = await simulate(c, 3 * HOUR, 60_000);
    expect(a.migrations.total).toBeGreaterThan(0);
    expect(await simulate(c, 3 * HOUR, 60_000)).toEqual(a);
  });
});
