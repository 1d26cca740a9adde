import { describe, expect, it } from "vitest";
import { generateSnapshot } from "../../bench/gen-snapshot.js";
import { memoryFraction } from "../../src/model/index.js";
import { plan } from "../../src/daemon/planner.js";
import { planOpts, T } from "./fixtures.js";

describe("bench snapshot generator", () => {
  const opts = { hosts: 80, vms: 3200, cells: 4, maintenance: 4, hotspots: 6, seed: 3 };
  const s = generateSnapshot(opts);

  it("has the requested shape and is deterministic", () => {
    expect(s.hosts).toHaveLength(80);
    expect(s.vms).toHaveLength(3200);
    expect(new Set(s.hosts.map((h) => h.cell)).size).toBe(4);
    expect(s.hosts.filter((h) => h.maintenance)).toHaveLength(4);
    expect(generateSnapshot(opts)).toEqual(s);
    expect(generateSnapshot({ ...opts, seed: 4 })).not.toEqual(s);
  });

  it("hotspots really are at or above cpuHigh, others well below; loads match the VMs", () => {
    const hot = s.hosts.filter((h) => !h.maintenance && h.cpuLoad >= T.cpuHigh);
    expect(hot).toHaveLength(6);
    for (const h of s.hosts) {
      const vms = s.vms.filter((v) => v.host === h.name);
      const cpu = vms.reduce((a, v) => a + (v.state === "shutoff" ? 0 : v.cpuLoad), 0) / h.cpus;
      expect(h.cpuLoad).toBeGreaterThanOrEqual(cpu);
      expect(h.cpuLoad - cpu).toBeLessThan(0.06);
      expect(memoryFraction(h)).toBeLessThan(T.memLow);
      for (const v of vms) expect(v.cpuLoad).toBeLessThanOrEqual(v.vcpus);
    }
  });

  it("has capacity elsewhere: every hotspot is relieved and drains only block on local disks", () => {
    const p = plan(s, planOpts());
    const after = p.moves.length;
    expect(after).toBeGreaterThan(0);
    expect(p.blocked.filter((b) => b.policy === "hotspot-relief")).toEqual([]);
    for (const b of p.blocked) expect(b.reason).toMatch(/local disk/);
  });
});
