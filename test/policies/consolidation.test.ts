import { describe, expect, it } from "vitest";
import { plan } from "../../src/daemon/planner.js";
import { consolidation, consolidationSchema } from "../../src/policies/consolidation.js";
import { balance, balanceSchema } from "../../src/policies/balance.js";
import { hotspotRelief, hotspotReliefSchema } from "../../src/policies/hotspot-relief.js";
import { maintenanceDrain } from "../../src/policies/maintenance-drain.js";
import { applyMove, memoryFraction, type ClusterSnapshot } from "../../src/model/index.js";
import { cluster, host, planOpts, vm } from "../planner/fixtures.js";

const opts = planOpts({ policies: [consolidation.create()] });

/** Three lightly loaded hosts whose VMs fit on two under the low band. */
const light = (): ClusterSnapshot =>
  cluster(
    [host("h1", { cpuLoad: 0.05, memoryUsedMiB: 5_000 }), host("h2", { cpuLoad: 0.05, memoryUsedMiB: 5_000 }), host("h3", { cpuLoad: 0.05, memoryUsedMiB: 5_000 })],
    [vm("a", "h1", { cpuLoad: 2 }), vm("b", "h1", { cpuLoad: 1 }), vm("c", "h2", { cpuLoad: 2 }), vm("d", "h3", { cpuLoad: 0.5 }), vm("e", "h3", { cpuLoad: 0.5, memoryMiB: 4_000 })],
  );

describe("consolidation", () => {
  it("off by default", () => {
    expect(consolidationSchema.parse({}).enabled).toBe(false);
  });

  it("empties the least-loaded host one VM at a time onto the fullest, then the next while the rest still fits, and reports them as can be powered off", () => {
    const s = light();
    const p = plan(s, opts);
    expect(p.moves.map((m) => `${m.vm}:${m.from}>${m.to}`)).toEqual(["d:h3>h1", "e:h3>h1", "c:h2>h1"]);
    expect(p.moves[0]?.reason).toBe("cell c1 fits on 2 hosts under cpuLow 70%/memLow 80%: emptying h3");
    expect(p.notes?.map((n) => [n.code, n.host, n.message])).toEqual([
      ["power-off-candidate", "h2", "h2 empty — can be powered off (ballast does not power hosts off)"],
      ["power-off-candidate", "h3", "h3 empty — can be powered off (ballast does not power hosts off)"],
    ]);
    let cur = s;
    for (const m of p.moves) {
      cur = applyMove(cur, m);
      const dest = cur.hosts.find((h) => h.name === m.to);
      expect(dest && dest.cpuLoad).toBeLessThan(0.7);
      expect(dest && memoryFraction(dest)).toBeLessThan(0.8);
    }
  });

  it("does nothing when the load does not fit on fewer hosts under the low band", () => {
    const s = cluster([host("h1", { cpuLoad: 0.4 }), host("h2", { cpuLoad: 0.4 })], [vm("a", "h1", { cpuLoad: 2 }), vm("b", "h2", { cpuLoad: 2 })]);
    expect(plan(s, opts)).toEqual({ moves: [], blocked: [] });
  });

  it("never picks a host holding a pinned or ignored VM", () => {
    const s = light();
    const tagged = { ...s, vms: s.vms.map((v) => (v.id === "d" ? { ...v, tags: ["ballast.pin"] } : v)) };
    expect(plan(tagged, opts).moves.every((m) => m.from !== "h3")).toBe(true);
  });

  it("with balance enabled too, balance does not refill the emptied host and planning again moves nothing", () => {
    const policies = [consolidation.create(), balance.create(balanceSchema.parse({ enabled: true, maxImbalance: 0 }))];
    const p = plan(light(), planOpts({ policies }));
    let cur = light();
    for (const m of p.moves) cur = applyMove(cur, m);
    expect(cur.vms.filter((v) => v.host === "h3")).toEqual([]);
    expect(plan(cur, planOpts({ policies })).moves).toEqual([]);
  });

  it("parks empty hosts: a drain or hotspot uses them only when no host in use can take the VM", () => {
    const parked = [maintenanceDrain.create(), hotspotRelief.create(hotspotReliefSchema.parse({})), consolidation.create()];
    const s = cluster(
      [host("h1", { maintenance: true }), host("h2", { cpuLoad: 0, memoryUsedMiB: 0 }), host("h3", { cpuLoad: 0.3 })],
      [vm("a", "h1"), vm("big", "h1", { cpuLoad: 5 }), vm("x", "h3")],
    );
    const p = plan(s, planOpts({ policies: parked }));
    // a fits on h3 (in use) although h2 has more headroom; big does not fit on h3, so h2 is un-parked for it.
    expect(p.moves.map((m) => `${m.vm}>${m.to}`).sort()).toEqual(["a>h3", "big>h2"]);
  });
});
