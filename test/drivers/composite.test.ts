import { describe, expect, it } from "vitest";
import { CompositeDriver } from "../../src/drivers/composite.js";
import type { Driver } from "../../src/drivers/driver.js";
import { createSimCluster, pickMove, SimDriver } from "../../src/drivers/sim/index.js";
import { ManualClock } from "../../src/util/clock.js";
import { driverContract } from "../contract/driver-contract.js";

function parts(clock: ManualClock): [SimDriver, SimDriver] {
  const kvm = new SimDriver(createSimCluster({ seed: 3, cells: [{ name: "kvm", hosts: 3, vmsPerHost: 4 }] }, clock));
  const xen = new SimDriver(createSimCluster({ seed: 4, cells: [{ name: "xen", hosts: 2, vmsPerHost: 3 }] }, clock));
  return [kvm, xen];
}

driverContract("composite of two sim clusters", () => {
  const clock = new ManualClock();
  return {
    driver: new CompositeDriver(parts(clock)),
    advance: (ms) => clock.advance(ms),
    pickMovableVm: (s) => pickMove(s, { maxDirtyRate: 50 }),
  };
});

describe("CompositeDriver", () => {
  it("merges the parts' snapshots and routes each call to the part that owns the host", async () => {
    const clock = new ManualClock();
    const [kvm, xen] = parts(clock);
    const d = new CompositeDriver([kvm, xen]);
    const snap = await d.sample();
    expect(snap.hosts.map((h) => h.name).sort()).toEqual(["kvm-h1", "kvm-h2", "kvm-h3", "xen-h1", "xen-h2"]);
    expect(snap.vms).toHaveLength(3 * 4 + 2 * 3);
    const vm = snap.vms.find((v) => v.host === "xen-h1" && v.state === "running");
    if (!vm) throw new Error("no running VM on xen-h1");
    const handle = await d.migrate({ ...pickMove(snap, { maxDirtyRate: 1e9 }), vm: vm.id, from: vm.host, to: snap.hosts.find((h) => h.name === "xen-h2")!.name });
    expect(handle.capabilities).toEqual(xen.capabilities);
    await d.cancel(vm.id);
    await clock.advance(10_000);
    expect((await xen.locate(vm.id)).placements.map((p) => p.host)).toEqual(["xen-h1"]);
  });

  it("refuses a migration between hosts of different parts, and hosts no part reports", async () => {
    const d = new CompositeDriver(parts(new ManualClock()));
    const snap = await d.sample();
    const vm = snap.vms.find((v) => v.host === "kvm-h1")!;
    const req = { ...pickMove(snap, { maxDirtyRate: 1e9 }), vm: vm.id, from: vm.host, to: snap.hosts.find((h) => h.name === "xen-h1")!.name };
    await expect(d.migrate(req)).rejects.toMatchObject({ code: "cross-driver" });
    await expect(d.resume(vm.id, "nowhere" as typeof vm.host)).rejects.toMatchObject({ code: "unknown-host" });
  });

  it("offers only the capabilities every part has, and forwards maintenance to the owner only", async () => {
    const calls: string[] = [];
    const clock = new ManualClock();
    const [kvm, xen] = parts(clock);
    const xenWithMaintenance: Driver = Object.assign(Object.create(xen) as SimDriver, {
      capabilities: { ...xen.capabilities, setDowntime: false, postCopy: false },
      setMaintenance: (host: string, on: boolean) => {
        calls.push(`${host}:${on}`);
        return Promise.resolve();
      },
    });
    const d = new CompositeDriver([kvm, xenWithMaintenance]);
    expect(d.capabilities).toMatchObject({ setDowntime: false, postCopy: false, dirtyRate: true });
    await d.sample();
    await d.setMaintenance("xen-h2" as never, true);
    await d.setMaintenance("kvm-h1" as never, true);
    expect(calls).toEqual(["xen-h2:true"]);
  });

  it("a call before any sample (start-up reconciliation) samples first to find the host's part", async () => {
    const clock = new ManualClock();
    const [kvm, xen] = parts(clock);
    const d = new CompositeDriver([kvm, xen]);
    const vm = (await xen.sample()).vms.find((v) => v.host === "xen-h1" && v.state === "running")!;
    await expect(d.resume(vm.id, vm.host)).resolves.toBeUndefined();
  });
});
