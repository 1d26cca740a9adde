import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { Daemon } from "../../src/daemon/daemon.js";
import { Metrics } from "../../src/daemon/metrics.js";
import { createSimCluster, SimDriver, type SimCluster } from "../../src/drivers/sim/index.js";
import { hostId, vmId, type VmId } from "../../src/model/index.js";
import { openHistory, type HistoryStore } from "../../src/store/index.js";
import { ManualClock, type Clock } from "../../src/util/clock.js";
import { seededRng } from "../../src/util/rng.js";
import { Crash, crashableClock, crashableDriver, crashableStore } from "../helpers/crash.js";
import { testConfig } from "../helpers/daemon-fixture.js";
import type { Driver } from "../../src/drivers/driver.js";

const DRAINED = hostId("a-h1");

interface World {
  dir: string;
  clock: ManualClock;
  cluster: SimCluster;
  config: ReturnType<typeof testConfig>;
  initial: Map<VmId, string>;
  stuck: VmId[];
}

function world(variant: number): World {
  const dir = mkdtempSync(join(tmpdir(), "ballast-crash-"));
  const migration = { allowBlockMigration: true, ...[{ permitPostCopy: true }, { timeoutAction: "force-complete" }, {}][variant % 3] };
  const config = testConfig(dir, {
    migration,
    guards: { vmCooldownMinutes: 30, failureCooldownMinutes: 20, maxMigrationsPerHour: 100 },
    sim: {
      seed: 20 + variant,
      cells: [{ name: "a", hosts: 3, cpus: 32, memoryMiB: 262144, vmsPerHost: 4, sharedStorage: "nfs" }],
      heavyDirtierFraction: 0,
      bandwidthMiBps: 400,
    },
  });
  const clock = new ManualClock();
  const cluster = createSimCluster(config.sim!, clock);
  // One guest on the drained host outpaces the link, so the guard's ladder runs (and may pause it).
  const onDrained = cluster.vmIds().filter((v) => cluster.vmPlacements(v)[0]?.host === DRAINED && cluster.vmPlacements(v)[0]?.state === "running");
  cluster.setDirtyRate(onDrained[0]!, 1000);
  const initial = new Map(cluster.vmIds().map((v) => [v, cluster.vmPlacements(v)[0]?.state ?? "missing"] as const));
  // Without post-copy or force-complete the guard aborts that guest every time: it must stay, running, on its source.
  const stuck = variant % 3 === 2 ? [onDrained[0]!] : [];
  return { dir, clock, cluster, config, initial, stuck };
}

function daemon(w: World, driver: Driver, store: HistoryStore, clock: Clock): Daemon {
  return new Daemon({ config: w.config, driver, store, clock, log: pino({ level: "silent" }), metrics: new Metrics(false) });
}

async function advanceUntil(w: World, pred: () => boolean, maxMs: number): Promise<void> {
  for (let t = 0; t < maxMs && !pred(); t += 1000) await w.clock.advance(1000);
}

/** Runs a drain; the first instance dies at its Nth outside call (never, if n is 0). Returns that instance's call count. */
async function drainWithCrash(w: World, n: number): Promise<{ calls: number; crashed: boolean; store: HistoryStore; second: Daemon }> {
  const dbFile = join(w.dir, "ballast.db");
  const crash = new Crash(n > 0 ? n : Number.POSITIVE_INFINITY);
  const first = daemon(w, crashableDriver(new SimDriver(w.cluster), crash), crashableStore(openHistory(dbFile), crash), crashableClock(w.clock, crash));
  try {
    await first.start();
    writeFileSync(join(w.config.maintenanceDir, DRAINED), "crash test");
    await first.trigger("flag");
    await advanceUntil(w, () => crash.crashed || (!first.busy && drainedOut(w)), 3_600_000);
  } catch (e) {
    if (!crash.crashed) throw e; // a dead process's last breath is not our concern; anything else is
  }
  mkdirSync(w.config.maintenanceDir, { recursive: true });
  writeFileSync(join(w.config.maintenanceDir, DRAINED), "crash test");

  // Restart: a new instance over the same cluster and database file, no clean-up of the old one.
  const store = openHistory(dbFile);
  const second = daemon(w, new SimDriver(w.cluster), store, w.clock);
  await second.start();
  // Rounds until the drain is done; back-offs after aborted migrations take simulated time to expire.
  for (let i = 0; i < 12 && !drainedOut(w); i++) {
    void second.trigger("schedule");
    await advanceUntil(w, () => !second.busy, 3_600_000);
    if (!drainedOut(w)) await w.clock.advance(10 * 60_000);
  }
  return { calls: crash.calls, crashed: crash.crashed, store, second };
}

/** Everything left the drained host, except the guests the guard can never move in this variant. */
function drainedOut(w: World): boolean {
  return w.cluster.vmIds().every((v) => w.stuck.includes(v) || w.cluster.vmPlacements(v).every((p) => p.host !== DRAINED));
}

function assertNothingLost(w: World, store: HistoryStore): void {
  for (const [vm, state] of w.initial) {
    const placements = w.cluster.vmPlacements(vm);
    expect(placements, `${vm} exactly once`).toHaveLength(1);
    expect(placements[0]?.state, `${vm} in its original state (never left paused)`).toBe(state);
  }
  expect(w.cluster.jobs()).toEqual([]);
  expect(store.openIntents()).toEqual([]);
  for (const m of store.recentMigrations(1000)) expect(m.finishedAt).not.toBeNull();
}

describe("crash safety on the simulator", () => {
  const tally: Record<string, number> = {};
  afterAll(() => console.log(`[crash] stop points by what restart found: ${JSON.stringify(tally)}`));
  it("an uninterrupted drain moves every VM and closes every record", async () => {
    const w = world(0);
    const r = await drainWithCrash(w, 0);
    expect(r.crashed).toBe(false);
    expect(drainedOut(w)).toBe(true);
    assertNothingLost(w, r.store);
    await r.second.stop();
    r.store.close();
    rmSync(w.dir, { recursive: true, force: true });
  });

  // The first instance makes a few hundred outside calls during a drain; stop it at random ones.
  const rng = seededRng(2026);
  const points = Array.from({ length: 24 }, (_, i) => ({ i, n: 1 + Math.floor(rng.next() * 400) }));
  it.each(points)("killed at outside call $n (variant $i): restart reconciles, nothing lost, duplicated or left paused", async ({ i, n }) => {
    const w = world(i);
    const r = await drainWithCrash(w, n);
    assertNothingLost(w, r.store);
    expect(drainedOut(w)).toBe(true);
    for (const vm of w.stuck) expect(w.cluster.vmPlacements(vm)).toEqual([{ host: DRAINED, state: "running" }]);
    const reconciled = r.store.recentEvents(100, { kind: "reconciled" });
    // Every record the dead instance left open was closed by reconciliation with where the VM really was.
    for (const e of reconciled) expect(e.message).toMatch(/closed as (succeeded|interrupted|failed)/);
    const key = reconciled.length === 0 ? "nothing open" : reconciled.map((e) => /closed as (\w+)/.exec(e.message)?.[1]).join("+");
    tally[key] = (tally[key] ?? 0) + 1;
    await r.second.stop();
    r.store.close();
    rmSync(w.dir, { recursive: true, force: true });
  });

  it("a VM's record left open blocks its next migration until reconciled", () => {
    const w = world(1);
    const store = openHistory(join(w.dir, "ballast.db"));
    const vm = vmId(w.cluster.vmIds()[0]!);
    store.recordIntent({ roundId: null, vm, from: DRAINED, to: hostId("a-h2"), kind: "live-shared", policy: "x", reason: "x", flags: [], startedAt: w.clock.now() });
    expect(() => store.recordIntent({ roundId: null, vm, from: DRAINED, to: hostId("a-h3"), kind: "live-shared", policy: "x", reason: "x", flags: [], startedAt: w.clock.now() })).toThrow();
    store.close();
    rmSync(w.dir, { recursive: true, force: true });
  });
});
