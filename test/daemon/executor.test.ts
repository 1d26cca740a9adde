import { describe, expect, it } from "vitest";
import { migrationSchema } from "../../src/config/schema.js";
import { ballastGuard } from "../../src/daemon/convergence.js";
import { Executor } from "../../src/daemon/executor.js";
import { createSimCluster, pickMove, SimDriver } from "../../src/drivers/sim/index.js";
import type { Move } from "../../src/model/index.js";
import { IN_MEMORY, openHistory } from "../../src/store/index.js";
import { VirtualClock } from "../../src/util/clock.js";

const BW = 200;

async function setup(migration: Record<string, unknown>, dirtyFactor: number) {
  const clock = new VirtualClock();
  const cluster = createSimCluster(
    { seed: 11, cells: [{ name: "a", hosts: 2, cpus: 32, memoryMiB: 262144, vmsPerHost: 8, sharedStorage: "nfs" }], heavyDirtierFraction: 0, bandwidthMiBps: BW },
    clock,
  );
  const driver = new SimDriver(cluster);
  const store = openHistory(IN_MEMORY);
  const executor = new Executor({ driver, journal: store, clock, guard: ballastGuard });
  const req = pickMove(await driver.sample(), { maxMemoryMiB: 16384 });
  cluster.setDirtyRate(req.vm, BW * dirtyFactor);
  const move: Move = { vm: req.vm, from: req.from, to: req.to, kind: req.kind, policy: "test", reason: "test" };
  const config = migrationSchema.parse(migration);
  const run = () => executor.execute(move, req.vmInfo, config, null);
  return { cluster, store, move, run, clock, vm: req.vmInfo };
}

describe("executor on the simulator: a VM dirtying memory at 2.5× the link bandwidth", () => {
  it.each([
    { name: "post-copy permitted: completes by switching to post-copy", migration: { permitPostCopy: true }, step: "post-copy" },
    { name: "force-complete: completes by pausing the guest, which is resumed on the destination", migration: { timeoutAction: "force-complete" }, step: "pause" },
  ])("$name", async ({ migration, step }) => {
    const { cluster, store, move, run, vm } = await setup(migration, 2.5);
    const result = await run();
    expect(result.status).toBe("succeeded");
    // Escalation comes from the dirty-rate check within seconds, not from the 800 s/GiB budget.
    const budgetMs = Math.max(1, vm.memoryMiB / 1024) * 800_000;
    expect(result.durationMs).toBeLessThan(budgetMs / 10);
    expect(cluster.vmPlacements(move.vm)).toEqual([{ host: move.to, state: "running" }]);
    const rec = store.migrationWithEvents(result.migrationId);
    expect(rec?.status).toBe("succeeded");
    const guardSteps = rec?.events.filter((e) => e.kind === "guard").map((e) => (e.data as { action: { kind: string } }).action.kind);
    expect(guardSteps).toContain(step);
    expect(rec?.downtimeMs).toBeGreaterThan(0);
  });

  it("escalation not permitted: aborts cleanly, the VM running on its source", async () => {
    const { cluster, store, move, run } = await setup({}, 2.5);
    const result = await run();
    expect(result.status).toBe("aborted");
    expect(result.error).toMatch(/dirty rate .* ≥ bandwidth/);
    expect(cluster.vmPlacements(move.vm)).toEqual([{ host: move.from, state: "running" }]);
    expect(store.migration(result.migrationId)).toMatchObject({ status: "aborted" });
    expect(store.openIntents()).toEqual([]);
  });

  it("a converging VM completes with only the downtime schedule", async () => {
    const { cluster, store, move, run } = await setup({}, 0.1);
    const result = await run();
    expect(result.status).toBe("succeeded");
    expect(cluster.vmPlacements(move.vm)).toEqual([{ host: move.to, state: "running" }]);
    const steps = store.migrationWithEvents(result.migrationId)?.events.filter((e) => e.kind === "guard") ?? [];
    for (const e of steps) expect((e.data as { action: { kind: string } }).action.kind).toBe("raise-downtime");
  });

  it("suspend mode: no LIVE flag, the guest is paused for the whole copy", async () => {
    const { store, run, vm } = await setup({ mode: "suspend" }, 0.1);
    const result = await run();
    expect(result.status).toBe("succeeded");
    const rec = store.migration(result.migrationId);
    expect(rec?.flags).not.toContain("LIVE");
    // Downtime is the whole memory copy, not milliseconds.
    expect(rec?.downtimeMs ?? 0).toBeGreaterThanOrEqual((vm.memoryMiB / BW) * 1000 * 0.9);
  });

  it("re-checks live state first: a VM no longer on its source is not migrated", async () => {
    const { store, run, move, cluster } = await setup({}, 0.1);
    cluster.setHostReachable(move.from, false);
    const result = await run();
    expect(result.status).toBe("failed");
    expect(result.error).toMatch(/re-check/);
    expect(store.migration(result.migrationId)?.status).toBe("failed");
  });

  it("refuses to run two migrations at once", async () => {
    const { run } = await setup({}, 0.1);
    const first = run();
    await expect(run()).rejects.toThrow(/already in flight/);
    await first;
  });
});
