import { describe, expect, it } from "vitest";
import { DriverError } from "../../src/drivers/driver.js";
import type { MigrationRequest } from "../../src/drivers/driver.js";
import { createSimCluster, createSimDriver, pickMove, SimDriver } from "../../src/drivers/sim/index.js";
import type { SimConfigInput } from "../../src/drivers/sim/index.js";
import { hostId, vmId } from "../../src/model/index.js";
import { ManualClock, VirtualClock } from "../../src/util/clock.js";
import { driverContract } from "../contract/driver-contract.js";
import type { DriverFixture } from "../contract/driver-contract.js";

const small: SimConfigInput = {
  seed: 7,
  cells: [
    { name: "east", hosts: 4, vmsPerHost: 8 },
    { name: "west", hosts: 3, vmsPerHost: 6, sharedStorage: null },
  ],
  heavyDirtierFraction: 0.1,
};

function manualFixture(): DriverFixture {
  const clock = new ManualClock();
  const cluster = createSimCluster(small, clock);
  return {
    driver: new SimDriver(cluster),
    advance: (ms) => clock.advance(ms),
    pickMovableVm: (s) => pickMove(s, { maxDirtyRate: 50 }),
  };
}

function virtualFixture(): DriverFixture {
  const clock = new VirtualClock();
  const cluster = createSimCluster(small, clock);
  return {
    driver: new SimDriver(cluster),
    advance: (ms) => clock.sleep(ms),
    pickMovableVm: (s) => pickMove(s, { maxDirtyRate: 50 }),
  };
}

driverContract("sim (ManualClock, timers)", manualFixture);
driverContract("sim (VirtualClock, settles on query)", virtualFixture);

describe("SimDriver", () => {
  it("has every guard capability", () => {
    const d = new SimDriver(createSimCluster(small, new ManualClock()));
    expect(d.capabilities).toEqual({ setDowntime: true, postCopy: true, pauseGuest: true, dirtyRate: true });
    expect(d.name).toBe("sim");
  });

  it("refuses calls after close with DRIVER_CLOSED, and leaves the cluster alone", async () => {
    const cluster = createSimCluster(small, new ManualClock());
    const d = new SimDriver(cluster);
    await d.close();
    await expect(d.sample()).rejects.toMatchObject({ code: "DRIVER_CLOSED" });
    await expect(new SimDriver(cluster).sample()).resolves.toBeDefined();
  });

  it("a driver that owns its cluster disposes it on close (no clock timers left)", async () => {
    const clock = new ManualClock();
    const { cluster, driver } = createSimDriver(small, clock);
    await driver.migrate(pickMove(await driver.sample(), { maxDirtyRate: 50 }));
    expect(clock.pending).toBe(1);
    await driver.close();
    await driver.close();
    expect(clock.pending).toBe(0);
    expect(cluster.jobs()).toHaveLength(1);
  });

  it("a migration outlives the driver that started it; another driver sees and cancels it", async () => {
    const clock = new ManualClock();
    const cluster = createSimCluster(small, clock);
    const first = new SimDriver(cluster);
    const req = pickMove(await first.sample(), { maxDirtyRate: 50 });
    const handle = await first.migrate({ ...req, bandwidthMiBps: 100 });
    await clock.advance(5_000);
    // The daemon dies: the driver is dropped without clean-up. The job keeps running in the cluster.
    const second = new SimDriver(cluster);
    expect(cluster.jobs().map((j) => j.vm)).toEqual([req.vm]);
    await expect(second.migrate(req)).rejects.toMatchObject({ code: "MIGRATION_IN_PROGRESS" });
    expect((await second.locate(req.vm)).placements).toEqual([{ host: req.from, state: "running" }]);
    await second.cancel(req.vm);
    await expect(handle.done).resolves.toMatchObject({ status: "aborted" });
    expect(cluster.jobs()).toEqual([]);
  });

  it("a migration left running completes on its own under ManualClock, with no timer left behind", async () => {
    const clock = new ManualClock();
    const cluster = createSimCluster(small, clock);
    const d = new SimDriver(cluster);
    const req = pickMove(await d.sample(), { maxDirtyRate: 50 });
    const handle = await d.migrate(req);
    let settled = false;
    void handle.done.then(() => (settled = true));
    expect(clock.pending).toBe(1);
    await clock.advance(120_000);
    expect(settled).toBe(true);
    expect(clock.pending).toBe(0);
    expect(cluster.vmPlacements(req.vm)).toEqual([{ host: req.to, state: "running" }]);
  });

  it("a VirtualClock caller polling stats with clock.sleep sees the job finish", async () => {
    const clock = new VirtualClock();
    const d = new SimDriver(createSimCluster(small, clock));
    const req = pickMove(await d.sample(), { maxDirtyRate: 50 });
    const handle = await d.migrate(req);
    let polls = 0;
    while ((await handle.stats()) !== null) {
      await clock.sleep(1000);
      polls++;
      expect(polls).toBeLessThan(600);
    }
    await expect(handle.done).resolves.toMatchObject({ status: "succeeded" });
    expect(polls).toBeGreaterThan(1);
  });

  describe("refuses migrations the way a hypervisor would", () => {
    const clock = new ManualClock();
    const cluster = createSimCluster(
      {
        seed: 3,
        cells: [
          { name: "a", hosts: 3, vmsPerHost: 6 },
          { name: "b", hosts: 2, vmsPerHost: 6 },
          { name: "c", hosts: 2, vmsPerHost: 6, sharedStorage: "nfs-c" },
        ],
      },
      clock,
    );
    const d = new SimDriver(cluster);
    const snap = cluster.sample();
    const ok = pickMove(snap, { maxDirtyRate: 50 });
    const vmOn = (host: string) => snap.vms.find((v) => v.host === host && v.state === "running");
    const shutoff = snap.vms.find((v) => v.state === "shutoff");
    const cases: { name: string; req: () => MigrationRequest; code: string }[] = [
      { name: "unknown VM", req: () => ({ ...ok, vm: vmId("nope") }), code: "VM_NOT_FOUND" },
      { name: "unknown destination", req: () => ({ ...ok, to: hostId("zz-h9") }), code: "HOST_NOT_FOUND" },
      { name: "VM not on from", req: () => ({ ...ok, from: ok.to, to: ok.from }), code: "VM_NOT_ON_SOURCE" },
      { name: "same host", req: () => ({ ...ok, to: ok.from }), code: "SAME_HOST" },
      { name: "across cells", req: () => ({ ...ok, to: hostId("b-h1") }), code: "CROSS_CELL" },
      {
        name: "live-block without NON_SHARED_DISK",
        req: () => ({ ...pickMove(snap, { storage: "local" }), flags: ["LIVE", "PEER2PEER"] }),
        code: "FLAGS_INVALID",
      },
      {
        name: "local disks over live-shared",
        req: () => ({ ...pickMove(snap, { storage: "local" }), kind: "live-shared" }),
        code: "STORAGE_NOT_SHARED",
      },
      { name: "zero downtime", req: () => ({ ...ok, maxDowntimeMs: 0 }), code: "INVALID_ARGUMENT" },
    ];
    it.each(cases)("$name → $code", async ({ req, code }) => {
      const err: unknown = await d.migrate(req()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(DriverError);
      expect((err as DriverError).code).toBe(code);
    });

    it("a destination that does not mount the VM's shared storage → SHARED_STORAGE_MISMATCH (live and cold)", async () => {
      cluster.setSharedStorage(ok.to, []);
      try {
        await expect(d.migrate(ok)).rejects.toMatchObject({ code: "SHARED_STORAGE_MISMATCH", host: ok.to });
        await expect(d.migrate({ ...ok, kind: "cold", flags: ["OFFLINE"] })).rejects.toMatchObject({ code: "SHARED_STORAGE_MISMATCH" });
      } finally {
        cluster.setSharedStorage(ok.to, ["nfs-1"]);
      }
    });

    it("a VM that is already migrating → MIGRATION_IN_PROGRESS", async () => {
      const h = await d.migrate(ok);
      await expect(d.migrate(ok)).rejects.toMatchObject({ code: "MIGRATION_IN_PROGRESS" });
      await d.cancel(ok.vm);
      expect(await h.done).toMatchObject({ status: "aborted" });
    });

    it("a shut-off VM cannot move live", async () => {
      expect(shutoff).toBeDefined();
      if (!shutoff) return;
      const to = snap.hosts.find((h) => h.cell === snap.hosts.find((x) => x.name === shutoff.host)?.cell && h.name !== shutoff.host);
      await expect(
        d.migrate({ vm: shutoff.id, from: shutoff.host, to: to!.name, kind: "live-shared", flags: ["LIVE"], maxDowntimeMs: 500 }),
      ).rejects.toMatchObject({ code: "VM_NOT_RUNNING" });
    });

    it("an unreachable destination → HOST_UNREACHABLE; sample marks it and hides its VMs; locate refuses to guess", async () => {
      const victim = vmOn(ok.to);
      cluster.setHostReachable(ok.to, false);
      try {
        await expect(d.migrate(ok)).rejects.toMatchObject({ code: "HOST_UNREACHABLE" });
        const s = await d.sample();
        expect(s.hosts.find((h) => h.name === ok.to)?.reachable).toBe(false);
        expect(s.vms.some((v) => v.host === ok.to)).toBe(false);
        if (victim) await expect(d.locate(victim.id)).rejects.toMatchObject({ code: "HOST_UNREACHABLE" });
      } finally {
        cluster.setHostReachable(ok.to, true);
      }
    });
  });
});
