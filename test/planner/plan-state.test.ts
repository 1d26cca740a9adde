import { describe, expect, it } from "vitest";
import { PlanState } from "../../src/daemon/plan-state.js";
import { applyMove, cellId, hostId, vmId, type Move } from "../../src/model/index.js";
import { cluster, host, vm } from "./fixtures.js";

const s = cluster(
  [host("a", { maintenanceReason: "x", maintenance: true }), host("b"), host("c", { cell: "c2" })],
  [vm("v1", "a"), vm("v2", "a", { state: "shutoff" }), vm("v3", "b"), vm("v4", "c")],
);
const move = (v: string, from: string, to: string): Move => ({ vm: vmId(v), from: hostId(from), to: hostId(to), policy: "t", reason: "t", kind: "live-shared" });

describe("PlanState", () => {
  it("indexes hosts, cells, VMs per host", () => {
    const st = new PlanState(s);
    expect(st.cells()).toEqual(["c1", "c2"]);
    expect(st.hostsInCell(cellId("c1")).map((h) => h.name)).toEqual(["a", "b"]);
    expect(st.vmsOn(hostId("a")).map((v) => v.id)).toEqual(["v1", "v2"]);
    expect(st.maintenanceHosts().map((h) => h.name)).toEqual(["a"]);
    expect(st.vm(vmId("v4"))?.host).toBe("c");
    expect(st.vmOn(hostId("b"), vmId("v4"))).toBeUndefined();
    expect(st.toSnapshot()).toEqual(s);
  });

  it("apply() gives exactly what applyMove gives, and keeps every index in step", () => {
    const st = new PlanState(s);
    const moves = [move("v1", "a", "b"), move("v2", "a", "b"), move("v3", "b", "a")];
    let expected = s;
    for (const m of moves) {
      st.apply(m);
      expected = applyMove(expected, m);
    }
    expect(st.toSnapshot()).toEqual(expected);
    expect(st.vmsOn(hostId("a")).map((v) => v.id)).toEqual(["v3"]);
    expect(st.vmsOn(hostId("b")).map((v) => v.id)).toEqual(["v1", "v2"]);
    expect(st.hostsInCell(cellId("c1"))).toEqual(expected.hosts.slice(0, 2));
    expect(st.host(hostId("b"))).toEqual(expected.hosts[1]);
    expect(st.vm(vmId("v1"))?.host).toBe("b");
  });

  it.each([
    { name: "VM not on the source", m: move("v3", "a", "b"), error: /not on a/ },
    { name: "unknown destination", m: move("v1", "a", "zz"), error: /unknown host/ },
  ])("apply rejects $name", ({ m, error }) => {
    expect(() => new PlanState(s).apply(m)).toThrow(error);
  });

  it.each([
    { name: "VM on an unknown host", snap: cluster([host("a")], [vm("v", "nowhere")]), error: /unknown host nowhere/ },
    { name: "duplicate host", snap: cluster([host("a"), host("a")], []), error: /appears twice/ },
  ])("construction rejects $name", ({ snap, error }) => {
    expect(() => new PlanState(snap)).toThrow(error);
  });
});
