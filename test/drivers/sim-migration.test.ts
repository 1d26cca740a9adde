import { describe, expect, it } from "vitest";
import { DriverError } from "../../src/drivers/driver.js";
import type { MigrationFlag, MigrationHandle, MigrationOutcome, MigrationRequest } from "../../src/drivers/driver.js";
import {
  createSimCluster,
  flagsFor,
  hostOverheadMiB,
  LIVE_FLAGS,
  pickMove,
  POSTCOPY_SWITCH_MS,
  SimDriver,
  simConfig,
  SWITCHOVER_MS,
} from "../../src/drivers/sim/index.js";
import type { PickOptions, SimCluster, SimConfigInput } from "../../src/drivers/sim/index.js";
import type { ClusterSnapshot, HostId, VmId } from "../../src/model/index.js";
import { ManualClock, VirtualClock } from "../../src/util/clock.js";

const BASE: SimConfigInput = {
  seed: 11,
  cells: [
    { name: "c1", hosts: 6, vmsPerHost: 16 },
    { name: "c2", hosts: 3, vmsPerHost: 8, sharedStorage: null },
  ],
  heavyDirtierFraction: 0,
  bandwidthMiBps: 1000,
  migrationOverheadSec: 1.5,
};
const OVERHEAD_MS = 1500;
const BW = 1000;

function setup(over: Partial<SimConfigInput> = {}) {
  const clock = new ManualClock();
  const cluster = createSimCluster({ ...BASE, ...over }, clock);
  return { clock, cluster, driver: new SimDriver(cluster) };
}

interface Running {
  handle: MigrationHandle;
  req: MigrationRequest & { vmInfo: { memoryMiB: number; diskMiB?: number } };
  startedAt: number;
  /** Filled when done settles. */
  end: { outcome?: MigrationOutcome; at?: number };
}

async function start(
  ctx: ReturnType<typeof setup>,
  pick: PickOptions & { dirtyRate?: number; flags?: MigrationFlag[]; bandwidthMiBps?: number; maxDowntimeMs?: number } = {},
): Promise<Running> {
  const req = pickMove(ctx.cluster.sample(), pick);
  if (pick.dirtyRate !== undefined) ctx.cluster.setDirtyRate(req.vm, pick.dirtyRate);
  const full = {
    ...req,
    ...(pick.flags ? { flags: pick.flags } : {}),
    ...(pick.bandwidthMiBps ? { bandwidthMiBps: pick.bandwidthMiBps } : {}),
    ...(pick.maxDowntimeMs ? { maxDowntimeMs: pick.maxDowntimeMs } : {}),
  };
  const startedAt = ctx.clock.now();
  const handle = await ctx.driver.migrate(full);
  const end: Running["end"] = {};
  void handle.done.then((o) => {
    end.outcome = o;
    end.at = ctx.clock.now();
  });
  return { handle, req: full, startedAt, end };
}

const placements = (cluster: SimCluster, vm: VmId) => cluster.vmPlacements(vm);

describe("sim model: inventory and load", () => {
  it("is deterministic: the same seed gives identical samples over time; another seed differs", async () => {
    const a = setup({ seed: 5, wavePeriodMinutes: 30 });
    const b = setup({ seed: 5, wavePeriodMinutes: 30 });
    const c = setup({ seed: 6, wavePeriodMinutes: 30 });
    for (let i = 0; i < 5; i++) {
      const sa = a.cluster.sample();
      expect(b.cluster.sample()).toEqual(sa);
      expect(c.cluster.sample()).not.toEqual(sa);
      await Promise.all([a.clock.advance(137_000), b.clock.advance(137_000), c.clock.advance(137_000)]);
    }
  });

  it("names hosts and VMs by cell and builds hosts from the cell config", () => {
    const { cluster } = setup();
    const s = cluster.sample();
    expect(s.hosts.map((h) => h.name)).toEqual(["c1-h1", "c1-h2", "c1-h3", "c1-h4", "c1-h5", "c1-h6", "c2-h1", "c2-h2", "c2-h3"]);
    expect(s.vms.map((v) => v.id).slice(0, 2)).toEqual(["c1-vm0001", "c1-vm0002"]);
    for (const h of s.hosts) {
      expect(h).toMatchObject({ hypervisor: "sim", pool: null, cpus: 32, memoryMiB: 262144, maintenance: false, reachable: true });
      expect(h.sharedStorage).toEqual(h.cell === "c1" ? ["nfs-1"] : []);
    }
    expect(s.vms.filter((v) => v.host.startsWith("c2")).every((v) => v.storage.kind !== "shared")).toBe(true);
    expect(s.vms.filter((v) => v.storage.kind === "local").every((v) => (v.diskMiB ?? 0) > 0)).toBe(true);
  });

  it("fills hosts ~50–70 % with memory-sized VMs (1–32 GiB, 1–8 vCPUs); a few are shut off", () => {
    const { cluster } = setup({ cells: [{ name: "big", hosts: 200, vmsPerHost: 10 }] });
    const s = cluster.sample();
    const fractions = s.hosts.map((h) => h.memoryUsedMiB / h.memoryMiB);
    const mean = fractions.reduce((a, b) => a + b, 0) / fractions.length;
    expect(mean).toBeGreaterThan(0.5);
    expect(mean).toBeLessThan(0.7);
    for (const v of s.vms) {
      expect(v.memoryMiB).toBeGreaterThanOrEqual(1024);
      expect(v.memoryMiB).toBeLessThanOrEqual(32 * 1024);
      expect([1, 2, 4, 8]).toContain(v.vcpus);
    }
    const shutoff = s.vms.filter((v) => v.state === "shutoff").length / s.vms.length;
    expect(shutoff).toBeGreaterThan(0.005);
    expect(shutoff).toBeLessThan(0.08);
    const kinds = new Set(s.vms.map((v) => v.storage.kind));
    expect(kinds).toEqual(new Set(["shared", "local", "volume"]));
    // memoryUsed = hypervisor overhead + every guest that is not shut off.
    const h = s.hosts[0]!;
    const guests = s.vms.filter((v) => v.host === h.name && v.state !== "shutoff").reduce((a, v) => a + v.memoryMiB, 0);
    expect(h.memoryUsedMiB).toBe(hostOverheadMiB(h.memoryMiB) + guests);
  });

  it("makes heavyDirtierFraction of VMs dirty memory faster than the link", () => {
    const { cluster } = setup({ heavyDirtierFraction: 0.1, cells: [{ name: "x", hosts: 100, vmsPerHost: 10 }] });
    const s = cluster.sample();
    const heavy = s.vms.filter((v) => v.state === "running" && (v.dirtyRateMiBps ?? 0) >= BW).length / s.vms.length;
    expect(heavy).toBeGreaterThan(0.07);
    expect(heavy).toBeLessThan(0.13);
    expect(s.vms.filter((v) => v.state === "shutoff").every((v) => v.dirtyRateMiBps === 0)).toBe(true);
  });

  it("demand changes over time with the wave, stays within [0, vcpus], and is a pure function of time", () => {
    const { cluster, clock } = setup({ wavePeriodMinutes: 60 });
    const vm = cluster.sample().vms.find((v) => v.state === "running")!;
    const t0 = clock.now();
    const series = Array.from({ length: 60 }, (_, i) => cluster.demandOf(vm.id, t0 + i * 60_000));
    expect(Math.max(...series) - Math.min(...series)).toBeGreaterThan(0.1 * vm.vcpus * 0.3);
    for (const d of series) {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(vm.vcpus);
    }
    expect(series.map((_, i) => cluster.demandOf(vm.id, t0 + i * 60_000))).toEqual(series);
  });

  it("host loads wave across the day", async () => {
    const { cluster, clock } = setup({ wavePeriodMinutes: 120 });
    const loads: number[] = [];
    for (let i = 0; i < 24; i++) {
      loads.push(cluster.sample().hosts.find((h) => h.name === "c1-h1")!.cpuLoad);
      await clock.advance(5 * 60_000);
    }
    expect(Math.max(...loads) - Math.min(...loads)).toBeGreaterThan(0.05);
  });

  it("smooths CPU load with an EMA (τ ≈ 60 s): first sample raw, then ~63 % of a step after 60 s", async () => {
    const { cluster, clock } = setup();
    const vm = cluster.sample().vms.find((v) => v.state === "running" && v.vcpus >= 2)!;
    cluster.setDemand(vm.id, 0);
    await clock.advance(3_600_000);
    cluster.sample();
    expect(cluster.sample().vms.find((v) => v.id === vm.id)!.cpuLoad).toBe(0);
    cluster.setDemand(vm.id, 2);
    await clock.advance(60_000);
    const after = cluster.sample().vms.find((v) => v.id === vm.id)!.cpuLoad;
    expect(after).toBeCloseTo(2 * (1 - Math.exp(-1)), 2);
    // Shut-off and paused guests demand nothing.
    cluster.setVmState(vm.id, "shutoff");
    expect(cluster.demandOf(vm.id)).toBe(0);
  });

  it("hot hosts run at ≥ 0.95 all day, and their VMs stay hot where they go", async () => {
    const { cluster, clock, driver } = setup({ hotHosts: ["c1-h2"], wavePeriodMinutes: 60 });
    for (let i = 0; i < 30; i++) {
      const h = cluster.sample().hosts.find((x) => x.name === "c1-h2")!;
      expect(h.cpuLoad).toBeGreaterThanOrEqual(0.95);
      await clock.advance(4 * 60_000);
    }
    const s = cluster.sample();
    const others = s.hosts.filter((h) => h.name !== "c1-h2" && h.cell === "c1").map((h) => h.cpuLoad);
    expect(Math.max(...others)).toBeLessThan(0.9);
    const hotVm = s.vms.find((v) => v.host === "c1-h2" && v.storage.kind === "shared")!;
    const demandBefore = cluster.demandOf(hotVm.id);
    const to = s.hosts.find((h) => h.cell === "c1" && h.name !== "c1-h2" && h.memoryMiB - h.memoryUsedMiB > hotVm.memoryMiB)!;
    cluster.setDirtyRate(hotVm.id, 1);
    const handle = await driver.migrate({ vm: hotVm.id, from: hotVm.host, to: to.name, kind: "live-shared", flags: [...LIVE_FLAGS], maxDowntimeMs: 500 });
    await clock.advance(120_000);
    expect((await handle.done).status).toBe("succeeded");
    expect(cluster.demandOf(hotVm.id)).toBeCloseTo(demandBefore, 1);
    expect(cluster.demandOf(hotVm.id)).toBeGreaterThan(0.5 * hotVm.vcpus);
  });

  it("refuses unknown hot hosts", () => {
    expect(() => setup({ hotHosts: ["c9-h1"] })).toThrow(/unknown host 'c9-h1'/);
  });

  it("simConfig() fills the same defaults as the config schema", async () => {
    const { simSchema } = await import("../../src/config/schema.js");
    const input: SimConfigInput = { cells: [{ name: "a", hosts: 2 }, { name: "b", hosts: 1, sharedStorage: null }] };
    expect(simConfig(input)).toEqual(simSchema.parse(input));
  });
});

describe("sim model: migrations", () => {
  const converging = [
    { name: "small VM, quiet", minMemoryMiB: 1024, maxMemoryMiB: 4096, dirtyRate: 5 },
    { name: "large VM, quiet", minMemoryMiB: 12288, maxMemoryMiB: 32768, dirtyRate: 10 },
    { name: "medium VM, busy (30 % of link)", minMemoryMiB: 4096, maxMemoryMiB: 16384, dirtyRate: 300 },
  ];
  it.each(converging)("pre-copy converges in ≈ RAM/bandwidth + overhead with small downtime: $name", async (c) => {
    const ctx = setup();
    const r = await start(ctx, c);
    const ram = r.req.vmInfo.memoryMiB;
    await ctx.clock.advance(600_000);
    expect(r.end.outcome?.status).toBe("succeeded");
    const took = r.end.at! - r.startedAt;
    const ideal = OVERHEAD_MS + (ram * 1000) / BW;
    // Geometric series of passes: RAM/bw × 1/(1 − dirty/bw), plus the switch-over.
    expect(took).toBeGreaterThanOrEqual(ideal);
    expect(took).toBeLessThanOrEqual(ideal * (1 / (1 - c.dirtyRate / BW)) + 600);
    if (r.end.outcome?.status === "succeeded") {
      expect(r.end.outcome.downtimeMs).toBeLessThanOrEqual(500 + SWITCHOVER_MS);
      expect(r.end.outcome.downtimeMs).toBeGreaterThanOrEqual(SWITCHOVER_MS);
      expect(r.end.outcome.dataMiB).toBeGreaterThanOrEqual(ram);
      expect(r.end.outcome.passes).toBeGreaterThanOrEqual(c.dirtyRate > 100 ? 2 : 1);
    }
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.to, state: "running" }]);
  });

  it("during pre-copy the VM is on its source; remaining data saw-tooths between passes", async () => {
    const ctx = setup();
    const r = await start(ctx, { minMemoryMiB: 4096, maxMemoryMiB: 8192, dirtyRate: 800 });
    const seen: { it: number; rem: number }[] = [];
    for (let i = 0; i < 40; i++) {
      await ctx.clock.advance(500);
      const st = await r.handle.stats();
      if (!st) break;
      seen.push({ it: st.memoryIteration, rem: st.dataRemainingMiB });
      if (st.phase === "precopy") expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.from, state: "running" }]);
    }
    const iterations = [...new Set(seen.map((s) => s.it))];
    expect(iterations.length).toBeGreaterThanOrEqual(3);
    // Within a pass remaining only falls; at a new pass it jumps back up.
    let jumps = 0;
    for (let i = 1; i < seen.length; i++) {
      const [a, b] = [seen[i - 1]!, seen[i]!];
      if (a.it === b.it) expect(b.rem).toBeLessThanOrEqual(a.rem);
      else if (b.rem > a.rem) jumps++;
    }
    expect(jumps).toBeGreaterThanOrEqual(1);
  });

  it("a VM dirtying at 2.5× bandwidth never finishes within 10 minutes without actions", async () => {
    const ctx = setup();
    const r = await start(ctx, { minMemoryMiB: 2048, maxMemoryMiB: 8192, dirtyRate: 2.5 * BW });
    await ctx.clock.advance(600_000);
    expect(r.end.outcome).toBeUndefined();
    const st = await r.handle.stats();
    expect(st).not.toBeNull();
    expect(st!.memoryIteration).toBeGreaterThan(10);
    expect(st!.dirtyRateMiBps).toBe(2.5 * BW);
    expect(st!.bandwidthMiBps).toBe(BW);
    expect(st!.dataProcessedMiB).toBeGreaterThan(100 * r.req.vmInfo.memoryMiB * 0.5);
    expect(ctx.clock.pending).toBe(1);
    await r.handle.act({ kind: "abort", reason: "test over" });
    expect(ctx.clock.pending).toBe(0);
  });

  it("raising the allowed downtime enough makes it finish at the next pass end", async () => {
    const ctx = setup();
    const r = await start(ctx, { minMemoryMiB: 1024, maxMemoryMiB: 4096, dirtyRate: 2.5 * BW });
    const ram = r.req.vmInfo.memoryMiB;
    await ctx.clock.advance(60_000);
    await r.handle.act({ kind: "raise-downtime", ms: 1000 }); // not enough: a pass re-dirties all RAM (≥ 1.02 s)
    await ctx.clock.advance(30_000);
    expect(r.end.outcome).toBeUndefined();
    expect((await r.handle.stats())!.maxDowntimeMs).toBe(1000);
    const needed = Math.ceil((ram * 1000) / BW) + 10;
    await r.handle.act({ kind: "raise-downtime", ms: needed });
    await ctx.clock.advance(needed * 3);
    expect(r.end.outcome).toMatchObject({ status: "succeeded" });
    if (r.end.outcome?.status === "succeeded") {
      expect(r.end.outcome.downtimeMs).toBeGreaterThan(needed - 20);
      expect(r.end.outcome.downtimeMs).toBeLessThanOrEqual(needed + SWITCHOVER_MS);
    }
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.to, state: "running" }]);
  });

  it("post-copy finishes a non-converging VM with small downtime; the guest runs on the destination at once", async () => {
    const ctx = setup();
    const r = await start(ctx, { minMemoryMiB: 4096, dirtyRate: 2.5 * BW, flags: [...LIVE_FLAGS, "POSTCOPY"] });
    await ctx.clock.advance(30_000);
    await r.handle.act({ kind: "post-copy" });
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.to, state: "running" }]);
    expect((await r.handle.stats())!.phase).toBe("postcopy");
    // Post-copy cannot be aborted: the source no longer has a complete guest.
    await expect(r.handle.act({ kind: "abort", reason: "too late" })).rejects.toMatchObject({ code: "POSTCOPY_NO_ABORT" });
    await expect(ctx.driver.cancel(r.req.vm)).rejects.toMatchObject({ code: "POSTCOPY_NO_ABORT" });
    await ctx.clock.advance((r.req.vmInfo.memoryMiB * 1000) / BW + 1000);
    expect(r.end.outcome).toMatchObject({ status: "succeeded", downtimeMs: POSTCOPY_SWITCH_MS });
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.to, state: "running" }]);
  });

  it("post-copy needs the POSTCOPY flag at start, as in libvirt", async () => {
    const ctx = setup();
    const r = await start(ctx, { dirtyRate: 2.5 * BW });
    await ctx.clock.advance(5_000);
    const err: unknown = await r.handle.act({ kind: "post-copy" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect((err as DriverError).code).toBe("POSTCOPY_NOT_ENABLED");
    await r.handle.act({ kind: "abort", reason: "done" });
  });

  it("post-copy asked for before memory copying starts switches as soon as it does", async () => {
    const ctx = setup();
    const r = await start(ctx, { dirtyRate: 2.5 * BW, flags: [...LIVE_FLAGS, "POSTCOPY"] });
    await r.handle.act({ kind: "post-copy" });
    expect((await r.handle.stats())!.phase).toBe("precopy");
    await ctx.clock.advance(OVERHEAD_MS);
    expect((await r.handle.stats())!.phase).toBe("postcopy");
    await ctx.clock.advance(60_000);
    expect(r.end.outcome?.status).toBe("succeeded");
  });

  it("pause forces completion on the next pass; downtime = time paused; the guest stays paused until resumed", async () => {
    const ctx = setup();
    const r = await start(ctx, { minMemoryMiB: 2048, maxMemoryMiB: 8192, dirtyRate: 2.5 * BW });
    await ctx.clock.advance(20_000);
    const pausedAt = ctx.clock.now();
    await r.handle.act({ kind: "pause" });
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.from, state: "paused" }]);
    expect(await r.handle.stats()).toMatchObject({ phase: "paused", dirtyRateMiBps: 0 });
    const passMs = (r.req.vmInfo.memoryMiB * 1000) / BW;
    await ctx.clock.advance(3 * passMs + 1000);
    expect(r.end.outcome?.status).toBe("succeeded");
    if (r.end.outcome?.status === "succeeded") {
      expect(r.end.outcome.downtimeMs).toBe(r.end.at! - pausedAt);
      expect(r.end.outcome.downtimeMs).toBeLessThanOrEqual(2 * passMs + SWITCHOVER_MS + 2);
    }
    // Like libvirt, a guest paused during migration is still paused on the destination: the daemon resumes it.
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.to, state: "paused" }]);
    await expect(ctx.driver.resume(r.req.vm, r.req.from)).rejects.toMatchObject({ code: "VM_NOT_ON_HOST" });
    await ctx.driver.resume(r.req.vm, r.req.to);
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.to, state: "running" }]);
  });

  it("resume during a migration un-pauses the guest on the source and it dirties memory again", async () => {
    const ctx = setup();
    const r = await start(ctx, { minMemoryMiB: 2048, dirtyRate: 2.5 * BW });
    await ctx.clock.advance(5_000);
    await r.handle.act({ kind: "pause" });
    await ctx.clock.advance(100);
    await ctx.driver.resume(r.req.vm, r.req.from);
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.from, state: "running" }]);
    expect((await r.handle.stats())!.dirtyRateMiBps).toBe(2.5 * BW);
    await ctx.clock.advance(300_000);
    expect(r.end.outcome).toBeUndefined();
    await ctx.driver.cancel(r.req.vm);
  });

  const aborts = [
    { name: "during pre-copy", pause: false },
    { name: "after the guard paused the guest", pause: true },
  ];
  it.each(aborts)("abort $name leaves the VM running on its source", async ({ pause }) => {
    const ctx = setup();
    const r = await start(ctx, { minMemoryMiB: 2048, dirtyRate: 2.5 * BW });
    await ctx.clock.advance(10_000);
    if (pause) await r.handle.act({ kind: "pause" });
    await r.handle.act({ kind: "abort", reason: "guard gave up" });
    await ctx.clock.advance(0);
    expect(r.end.outcome).toEqual({ status: "aborted", reason: "guard gave up" });
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.from, state: "running" }]);
    expect(await r.handle.stats()).toBeNull();
    await expect(r.handle.act({ kind: "pause" })).rejects.toMatchObject({ code: "NO_ACTIVE_JOB" });
    expect(ctx.cluster.jobs()).toEqual([]);
  });

  it("suspend mode (no LIVE flag) pauses the guest for one pass over everything: downtime ≈ the whole copy", async () => {
    const ctx = setup();
    const r = await start(ctx, { minMemoryMiB: 8192, dirtyRate: 2.5 * BW, flags: ["PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"] });
    const copyMs = (r.req.vmInfo.memoryMiB * 1000) / BW;
    await ctx.clock.advance(OVERHEAD_MS + 1000);
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.from, state: "paused" }]);
    expect(await r.handle.stats()).toMatchObject({ phase: "paused", memoryIteration: 1 });
    await ctx.clock.advance(copyMs + 1000);
    expect(r.end.outcome?.status).toBe("succeeded");
    if (r.end.outcome?.status === "succeeded") {
      expect(r.end.outcome.downtimeMs).toBeGreaterThanOrEqual(copyMs);
      expect(r.end.outcome.downtimeMs).toBeLessThanOrEqual(copyMs + SWITCHOVER_MS + 1);
      expect(r.end.outcome.passes).toBe(1);
    }
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.to, state: "running" }]);
  });

  it("block migration copies the local disk, then RAM (data total = disk + RAM)", async () => {
    const ctx = setup();
    const r = await start(ctx, { storage: "local", dirtyRate: 5 });
    expect(r.req.kind).toBe("live-block");
    const disk = r.req.vmInfo.diskMiB!;
    const ram = r.req.vmInfo.memoryMiB;
    await ctx.clock.advance(OVERHEAD_MS + 1000);
    const st = (await r.handle.stats())!;
    expect(st.dataTotalMiB).toBe(disk + ram);
    expect(st.dataRemainingMiB).toBeGreaterThan(ram);
    await ctx.clock.advance(((disk + ram) * 1000) / BW + 5000);
    expect(r.end.outcome?.status).toBe("succeeded");
    const took = r.end.at! - r.startedAt;
    expect(took).toBeGreaterThanOrEqual(OVERHEAD_MS + ((disk + ram) * 1000) / BW);
    expect(took).toBeLessThanOrEqual(OVERHEAD_MS + ((disk + ram) * 1000) / BW + 1000);
    if (r.end.outcome?.status === "succeeded") expect(r.end.outcome.dataMiB).toBeGreaterThanOrEqual(disk + ram);
  });

  it("cold move of a running VM: shut off, moved, started; downtime = the whole move", async () => {
    const ctx = setup();
    const r = await start(ctx, { dirtyRate: 5, flags: flagsFor("cold") });
    const req = { ...r.req };
    expect(req.kind).toBe("live-shared"); // the request keeps its kind; the OFFLINE flag makes it cold
    await ctx.clock.advance(500);
    expect(placements(ctx.cluster, req.vm)).toEqual([{ host: req.from, state: "shutoff" }]);
    expect((await r.handle.stats())!.phase).toBe("offline");
    await ctx.clock.advance(OVERHEAD_MS);
    expect(r.end.outcome).toEqual({ status: "succeeded", downtimeMs: OVERHEAD_MS, dataMiB: 0, passes: 1 });
    expect(placements(ctx.cluster, req.vm)).toEqual([{ host: req.to, state: "running" }]);
  });

  it("cold move of a shut-off VM just moves it (no downtime) and it stays off", async () => {
    const ctx = setup();
    ctx.cluster.setVmState(pickMove(ctx.cluster.sample()).vm, "shutoff");
    const r = await start(ctx, { state: "shutoff" });
    expect(r.req.kind).toBe("cold");
    await ctx.clock.advance(1000);
    expect(r.end.outcome).toMatchObject({ status: "succeeded", downtimeMs: 0 });
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.to, state: "shutoff" }]);
  });

  it("migrationFailureRate makes some migrations fail part-way, deterministically; the VM stays running on its source", async () => {
    const run = async (): Promise<string[]> => {
      const ctx = setup({ migrationFailureRate: 0.4, cells: [{ name: "c1", hosts: 12, vmsPerHost: 6 }] });
      const results: string[] = [];
      for (let i = 0; i < 25; i++) {
        const s = ctx.cluster.sample();
        let req;
        try {
          req = pickMove(s, { maxDirtyRate: 60, skip: i });
        } catch {
          break;
        }
        const h = await ctx.driver.migrate(req);
        await ctx.clock.advance(120_000);
        const o = await h.done;
        results.push(o.status);
        const expected = o.status === "succeeded" ? req.to : req.from;
        expect(placements(ctx.cluster, req.vm)).toEqual([{ host: expected, state: "running" }]);
        if (o.status === "failed") expect(o.error).toMatch(/fail/);
      }
      return results;
    };
    const a = await run();
    expect(a.length).toBeGreaterThanOrEqual(20);
    expect(a.filter((x) => x === "failed").length).toBeGreaterThan(3);
    expect(a.filter((x) => x === "succeeded").length).toBeGreaterThan(3);
    expect(await run()).toEqual(a);
  });

  it("injectFailure fails the VM's next migration part-way", async () => {
    const ctx = setup();
    const req = pickMove(ctx.cluster.sample(), { maxDirtyRate: 60 });
    ctx.cluster.injectFailure(req.vm, "boom");
    const h = await ctx.driver.migrate(req);
    await ctx.clock.advance(OVERHEAD_MS + (req.vmInfo.memoryMiB * 1000) / BW / 2 + 10);
    expect(await h.done).toEqual({ status: "failed", error: "boom" });
    expect(placements(ctx.cluster, req.vm)).toEqual([{ host: req.from, state: "running" }]);
  });

  it("a host lost mid-migration fails the job; the VM stays on its source", async () => {
    const ctx = setup();
    const r = await start(ctx, { dirtyRate: 2.5 * BW });
    await ctx.clock.advance(5_000);
    ctx.cluster.setHostReachable(r.req.to, false);
    expect(await r.handle.done).toMatchObject({ status: "failed" });
    expect(placements(ctx.cluster, r.req.vm)).toEqual([{ host: r.req.from, state: "running" }]);
  });

  it("refuses a destination without enough free memory, counting migrations already headed there", async () => {
    const ctx = setup({ cells: [{ name: "c1", hosts: 3, vmsPerHost: 10 }] });
    const to = "c1-h3" as HostId;
    let refused: DriverError | undefined;
    const started: MigrationHandle[] = [];
    for (const vm of ctx.cluster.sample().vms.filter((v) => v.host !== to && v.state === "running" && v.storage.kind === "shared")) {
      const before: ClusterSnapshot = ctx.cluster.sample();
      const dest = before.hosts.find((h) => h.name === to)!;
      try {
        started.push(await ctx.driver.migrate({ vm: vm.id, from: vm.host, to, kind: "live-shared", flags: [...LIVE_FLAGS], maxDowntimeMs: 500 }));
      } catch (e) {
        refused = e as DriverError;
        // Free memory = capacity − used − memory promised to jobs still on their way.
        expect(dest.memoryMiB - dest.memoryUsedMiB).toBeGreaterThanOrEqual(0);
        break;
      }
    }
    expect(refused).toBeInstanceOf(DriverError);
    expect(refused?.code).toBe("HOST_NOT_ENOUGH_FREE_MEMORY");
    expect(refused?.host).toBe(to);
    expect(started.length).toBeGreaterThan(0);
    for (const j of ctx.cluster.jobs()) ctx.cluster.cancel(j.vm);
  });

  it("done settles under a VirtualClock when the caller polls stats, and nextEventAt() lets a fast-forward runner jump", async () => {
    const clock = new VirtualClock();
    const cluster = createSimCluster(BASE, clock);
    const driver = new SimDriver(cluster);
    const req = pickMove(cluster.sample(), { maxDirtyRate: 60 });
    const h = await driver.migrate(req);
    expect(cluster.nextEventAt()).toBe(clock.now() + OVERHEAD_MS);
    for (let at = cluster.nextEventAt(); at !== null; at = cluster.nextEventAt()) {
      await clock.sleep(at - clock.now());
      cluster.sync();
    }
    await expect(h.done).resolves.toMatchObject({ status: "succeeded" });
    expect(cluster.jobs()).toEqual([]);
  });

  it("dispose() stops the cluster's timers", async () => {
    const ctx = setup();
    await start(ctx, { dirtyRate: 5 });
    expect(ctx.clock.pending).toBe(1);
    ctx.cluster.dispose();
    expect(ctx.clock.pending).toBe(0);
  });
});
