import { describe, expect, it } from "vitest";
import { LoadHistory } from "../../src/daemon/load-history.js";
import { hostId, vmId } from "../../src/model/index.js";
import { cluster, host, NOW, vm } from "../planner/fixtures.js";

const MIN = 60_000;

describe("LoadHistory", () => {
  it("keeps each host's points within the window and drops hosts that left the snapshot", () => {
    const h = new LoadHistory(2 * MIN);
    const both = cluster([host("h1"), host("h2")], []);
    for (let m = 0; m <= 3; m++) h.record(both, NOW + m * MIN);
    expect(h.view.get(hostId("h1"))?.map((p) => (p.atMs - NOW) / MIN)).toEqual([1, 2, 3]);
    h.record(cluster([host("h1")], []), NOW + 4 * MIN);
    expect([...h.view.keys()]).toEqual([hostId("h1")]);
  });

  it("keeps each VM's load at the sample before the latest, and forgets VMs that are gone", () => {
    const h = new LoadHistory(5 * MIN);
    h.record(cluster([host("h1")], [vm("a", "h1", { cpuLoad: 1 }), vm("b", "h1", { cpuLoad: 2 })]), NOW);
    expect(h.vmLoadBefore.size).toBe(0);
    h.record(cluster([host("h1")], [vm("a", "h1", { cpuLoad: 3 })]), NOW + MIN);
    expect(h.vmLoadBefore.get(vmId("a"))).toEqual({ atMs: NOW, cpuLoad: 1 });
    h.record(cluster([host("h1")], [vm("a", "h1", { cpuLoad: 4 })]), NOW + 2 * MIN);
    expect(h.vmLoadBefore.get(vmId("a"))).toEqual({ atMs: NOW + MIN, cpuLoad: 3 });
    expect(h.vmLoadBefore.has(vmId("b"))).toBe(false);
  });
});
