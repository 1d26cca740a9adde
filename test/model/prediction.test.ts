import { describe, expect, it } from "vitest";
import { hostId, predictMigration, vmId, type LinkAssumptions, type Vm } from "../../src/model/index.js";

const link: LinkAssumptions = { bandwidthMiBps: 1000, maxDowntimeMs: 500, overheadMs: 1500, suspend: false };
const vm = (memoryMiB: number, dirtyRateMiBps: number | undefined, extra: Partial<Vm> = {}): Vm => ({
  id: vmId("v"),
  name: "v",
  host: hostId("h"),
  state: "running",
  vcpus: 2,
  memoryMiB,
  cpuLoad: 1,
  storage: { kind: "shared", id: "nfs" },
  volumes: 0,
  tags: [],
  ...(dirtyRateMiBps === undefined ? {} : { dirtyRateMiBps }),
  ...extra,
});

describe("predictMigration", () => {
  it.each([
    { name: "idle 4 GiB: one pass, then a tiny final copy", v: vm(4096, 0), converges: true, timeMs: 1500 + 4096, passes: 2 },
    // 4 GiB at 1000 MiB/s = 4.096 s; 100 MiB/s dirtied → 409.6 MiB = 409.6 ms ≤ 500 ms: done after 2 passes.
    { name: "light dirtier converges in pass 2", v: vm(4096, 100), converges: true, timeMs: 1500 + 4096 + 409.6, passes: 2 },
    { name: "heavy dirtier (2.5× the link) never converges", v: vm(4096, 2500), converges: false },
    { name: "unknown dirty rate is taken as idle (optimistic)", v: vm(4096, undefined), converges: true, passes: 2 },
  ])("$name", ({ v, converges, timeMs, passes }) => {
    const p = predictMigration(v, "live-shared", link);
    expect(p.converges).toBe(converges);
    if (timeMs !== undefined) expect(p.timeMs).toBeCloseTo(timeMs, 3);
    if (passes !== undefined) expect(p.passes).toBe(passes);
  });

  it("a slow geometric series converges after several passes; a bigger guest takes longer", () => {
    const a = predictMigration(vm(4096, 600), "live-shared", link);
    const b = predictMigration(vm(16384, 600), "live-shared", link);
    expect(a.converges && b.converges).toBe(true);
    expect(a.passes).toBeGreaterThan(2);
    expect(b.timeMs).toBeGreaterThan(a.timeMs);
    expect(a.downtimeMs).toBeLessThanOrEqual(500);
  });

  it("block migration copies the disk first", () => {
    const v = vm(2048, 0, { storage: { kind: "local" }, diskMiB: 20_480 });
    expect(predictMigration(v, "live-block", link).timeMs).toBeGreaterThan(predictMigration(v, "live-shared", link).timeMs + 20_000);
  });

  it("suspend mode: the guest is down for the whole memory copy", () => {
    const p = predictMigration(vm(4096, 2500), "live-shared", { ...link, suspend: true });
    expect(p.converges).toBe(true);
    expect(p.downtimeMs).toBeCloseTo(4096, 3);
  });

  it("a shut-off guest moves cold with no downtime", () => {
    const p = predictMigration(vm(4096, 0, { state: "shutoff" }), "cold", link);
    expect(p).toMatchObject({ converges: true, downtimeMs: 0, timeMs: 1500 });
  });
});
