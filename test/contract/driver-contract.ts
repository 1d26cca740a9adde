/**
 * The contract every Driver passes (DESIGN rule 5): the simulator, libvirt (lab) and XenServer (XAPI simulator).
 *
 * A driver test file calls `driverContract("libvirt", makeFixture)`. The fixture is deliberately narrow so a real
 * lab can implement it: a driver, a way to let time pass, and a movable VM with a valid destination.
 */
import { describe, expect, it } from "vitest";
import { DriverError } from "../../src/drivers/driver.js";
import type { Driver, MigrationHandle, MigrationOutcome, MigrationRequest } from "../../src/drivers/driver.js";
import type { ClusterSnapshot, Vm } from "../../src/model/index.js";

export interface DriverFixture {
  readonly driver: Driver;
  /** Lets ms of time pass: ManualClock.advance, a VirtualClock sleep, or a real sleep on a lab. */
  advance(ms: number): Promise<void>;
  /**
   * A running, idle VM of the snapshot (one that converges without the guard's help) and a valid destination
   * for it, as a migration request (kind, flags and downtime the fixture knows to be right for its cluster).
   */
  pickMovableVm(snapshot: ClusterSnapshot): MigrationRequest;
  /** Interval between job statistics polls (default 1000 ms). */
  readonly pollMs?: number;
  /** Give up waiting for a migration after this long (default 10 min). */
  readonly budgetMs?: number;
  /** Releases fixture resources (the driver is closed by the suite). */
  dispose?(): Promise<void> | void;
}

export type FixtureFactory = () => DriverFixture | Promise<DriverFixture>;

const HYPERVISORS = new Set(["kvm", "xen", "sim"]);
const STATES = new Set(["running", "paused", "shutoff"]);
const STORAGE = new Set(["shared", "local", "volume"]);

/** Waits for the job to end, letting time pass and polling stats (which also drives lazily settled drivers). */
export async function settle(fx: DriverFixture, handle: MigrationHandle): Promise<MigrationOutcome> {
  let outcome: MigrationOutcome | undefined;
  void handle.done.then((o) => (outcome = o));
  const poll = fx.pollMs ?? 1000;
  const budget = fx.budgetMs ?? 600_000;
  for (let waited = 0; outcome === undefined && waited <= budget; waited += poll) {
    await fx.advance(poll);
    await handle.stats();
    await Promise.resolve();
  }
  if (outcome === undefined) throw new Error(`migration did not finish within ${budget} ms`);
  return outcome;
}

/** A request for the same move throttled so it lasts about `seconds` of copying. */
function slowed(req: MigrationRequest, vm: Vm, seconds: number): MigrationRequest {
  return { ...req, bandwidthMiBps: Math.max(1, Math.floor((vm.memoryMiB + (vm.diskMiB ?? 0)) / seconds)) };
}

function vmOf(snapshot: ClusterSnapshot, req: MigrationRequest): Vm {
  const vm = snapshot.vms.find((v) => v.id === req.vm);
  if (!vm) throw new Error(`fixture picked ${req.vm}, which is not in the snapshot`);
  return vm;
}

export function driverContract(name: string, makeFixture: FixtureFactory): void {
  async function withFixture(fn: (fx: DriverFixture) => Promise<void>): Promise<void> {
    const fx = await makeFixture();
    try {
      await fn(fx);
    } finally {
      await fx.driver.close();
      await fx.dispose?.();
    }
  }

  describe(`driver contract: ${name}`, () => {
    it("samples hosts and VMs with the snapshot fields and sane values", () =>
      withFixture(async ({ driver }) => {
        const s = await driver.sample();
        expect(Number.isNaN(Date.parse(s.takenAt))).toBe(false);
        expect(s.hosts.length).toBeGreaterThan(0);
        const hostNames = new Set(s.hosts.map((h) => h.name));
        expect(hostNames.size).toBe(s.hosts.length);
        for (const h of s.hosts) {
          expect(typeof h.name).toBe("string");
          expect(HYPERVISORS.has(h.hypervisor)).toBe(true);
          expect(typeof h.cell).toBe("string");
          expect(h.cell.length).toBeGreaterThan(0);
          expect(h.pool === null || typeof h.pool === "string").toBe(true);
          expect(h.cpus).toBeGreaterThan(0);
          expect(h.memoryMiB).toBeGreaterThan(0);
          expect(h.cpuLoad).toBeGreaterThanOrEqual(0);
          expect(h.cpuLoad).toBeLessThanOrEqual(1);
          expect(h.memoryUsedMiB).toBeGreaterThanOrEqual(0);
          expect(typeof h.maintenance).toBe("boolean");
          expect(typeof h.reachable).toBe("boolean");
          expect(Array.isArray(h.sharedStorage)).toBe(true);
          for (const id of h.sharedStorage) expect(typeof id).toBe("string");
        }
        expect(s.vms.length).toBeGreaterThan(0);
        expect(new Set(s.vms.map((v) => v.id)).size).toBe(s.vms.length);
        for (const v of s.vms) {
          expect(hostNames.has(v.host), `${v.id} is on unlisted host ${v.host}`).toBe(true);
          expect(typeof v.name).toBe("string");
          expect(STATES.has(v.state)).toBe(true);
          expect(v.vcpus).toBeGreaterThan(0);
          expect(Number.isInteger(v.vcpus)).toBe(true);
          expect(v.memoryMiB).toBeGreaterThan(0);
          expect(v.cpuLoad).toBeGreaterThanOrEqual(0);
          expect(v.cpuLoad).toBeLessThanOrEqual(v.vcpus);
          expect(STORAGE.has(v.storage.kind)).toBe(true);
          if (v.storage.kind === "shared") expect(typeof v.storage.id).toBe("string");
          expect(Number.isInteger(v.volumes) && v.volumes >= 0).toBe(true);
          if (v.dirtyRateMiBps !== undefined) expect(v.dirtyRateMiBps).toBeGreaterThanOrEqual(0);
          expect(Array.isArray(v.tags)).toBe(true);
        }
      }));

    it("locates every sampled VM exactly once, on its sampled host", () =>
      withFixture(async ({ driver }) => {
        const s = await driver.sample();
        // Bounded so a large lab stays quick: an even spread of at most 100 VMs.
        const step = Math.max(1, Math.ceil(s.vms.length / 100));
        for (let i = 0; i < s.vms.length; i += step) {
          const v = s.vms[i] as Vm;
          const loc = await driver.locate(v.id);
          expect(loc.vm).toBe(v.id);
          expect(loc.placements, `${v.id}`).toEqual([{ host: v.host, state: v.state }]);
        }
      }));

    it("migrates an idle VM: succeeded, then found only on the destination, and the next sample agrees", () =>
      withFixture(async (fx) => {
        const before = await fx.driver.sample();
        const req = fx.pickMovableVm(before);
        expect(vmOf(before, req).host).toBe(req.from);
        const handle = await fx.driver.migrate(req);
        const outcome = await settle(fx, handle);
        expect(outcome.status).toBe("succeeded");
        if (outcome.status === "succeeded") {
          expect(outcome.downtimeMs).toBeGreaterThanOrEqual(0);
          expect(outcome.dataMiB).toBeGreaterThan(0);
          expect(outcome.passes).toBeGreaterThanOrEqual(1);
        }
        expect(await handle.stats()).toBeNull();
        const loc = await fx.driver.locate(req.vm);
        expect(loc.placements).toEqual([{ host: req.to, state: "running" }]);
        const after = await fx.driver.sample();
        expect(after.vms.filter((v) => v.id === req.vm).map((v) => v.host)).toEqual([req.to]);
      }));

    it("rejects a migration of a VM that is not on `from` with a DriverError", () =>
      withFixture(async (fx) => {
        const req = fx.pickMovableVm(await fx.driver.sample());
        const wrong: MigrationRequest = { ...req, from: req.to, to: req.from };
        const err: unknown = await fx.driver.migrate(wrong).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(DriverError);
        expect((err as DriverError).code).toMatch(/\S/);
        const loc = await fx.driver.locate(req.vm);
        expect(loc.placements).toEqual([{ host: req.from, state: "running" }]);
      }));

    it("reports growing progress during a migration (dataProcessedMiB up, memoryIteration ≥ 1)", () =>
      withFixture(async (fx) => {
        const s = await fx.driver.sample();
        const base = fx.pickMovableVm(s);
        const handle = await fx.driver.migrate(slowed(base, vmOf(s, base), 20));
        const poll = fx.pollMs ?? 1000;
        const seen: number[] = [];
        for (let i = 0; i < 15; i++) {
          await fx.advance(poll);
          const st = await handle.stats();
          if (!st) break;
          expect(st.memoryIteration).toBeGreaterThanOrEqual(1);
          expect(st.dataProcessedMiB).toBeGreaterThanOrEqual(0);
          expect(st.dataRemainingMiB).toBeGreaterThanOrEqual(0);
          expect(st.elapsedMs).toBeGreaterThan(0);
          seen.push(st.dataProcessedMiB);
        }
        for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1] as number);
        const positive = seen.filter((x) => x > 0);
        expect(positive.length).toBeGreaterThanOrEqual(2);
        expect(positive[positive.length - 1]).toBeGreaterThan(positive[0] as number);
        await handle.act({ kind: "abort", reason: "contract test done" });
        await settle(fx, handle);
      }));

    it("abort leaves the VM running on its source", () =>
      withFixture(async (fx) => {
        const s = await fx.driver.sample();
        const base = fx.pickMovableVm(s);
        const handle = await fx.driver.migrate(slowed(base, vmOf(s, base), 30));
        await fx.advance((fx.pollMs ?? 1000) * 3);
        expect(await handle.stats()).not.toBeNull();
        await handle.act({ kind: "abort", reason: "contract test" });
        const outcome = await settle(fx, handle);
        expect(outcome.status).toBe("aborted");
        expect((await fx.driver.locate(base.vm)).placements).toEqual([{ host: base.from, state: "running" }]);
        expect(await handle.stats()).toBeNull();
      }));

    it("cancel(vm) aborts a running job, also through another call path than the handle", () =>
      withFixture(async (fx) => {
        const s = await fx.driver.sample();
        const base = fx.pickMovableVm(s);
        const handle = await fx.driver.migrate(slowed(base, vmOf(s, base), 30));
        await fx.advance(fx.pollMs ?? 1000);
        await fx.driver.cancel(base.vm);
        const outcome = await settle(fx, handle);
        expect(outcome.status).toBe("aborted");
        expect((await fx.driver.locate(base.vm)).placements).toEqual([{ host: base.from, state: "running" }]);
      }));

    it("cancel(vm) with no job is a no-op", () =>
      withFixture(async (fx) => {
        const req = fx.pickMovableVm(await fx.driver.sample());
        await expect(fx.driver.cancel(req.vm)).resolves.toBeUndefined();
        expect((await fx.driver.locate(req.vm)).placements).toEqual([{ host: req.from, state: "running" }]);
      }));

    it("close() is idempotent", () =>
      withFixture(async ({ driver }) => {
        await driver.close();
        await expect(driver.close()).resolves.toBeUndefined();
      }));
  });
}
