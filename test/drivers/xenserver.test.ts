/**
 * XenServer driver integration: the real xen-api client against the XAPI simulator over HTTP, for both
 * transports (JSON-RPC and XML-RPC), on simulated time. The driver contract suite, then ballast's daemon
 * draining, relieving a hotspot, refusing to block-migrate a VM with a volume, Storage XenMotion across
 * pools, the guard cancelling a hung task, and every injected fault.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { MigrationRequest } from "../../src/drivers/driver.js";
import { hostId, type ClusterSnapshot } from "../../src/model/index.js";
import { parseSnapshot } from "../../src/model/parse-snapshot.js";
import { driverContract } from "../contract/driver-contract.js";
import { startBallast } from "../helpers/cli.js";
import { startXapiSim, type PoolSpec, type VmSpec, type XapiSimSpec } from "../xapi-sim/index.js";
import { TRANSPORTS, xenDaemon, xenEnv, type XenDaemon, type XenEnv } from "./xen-env.js";

const GiB = 1024;

const idle = (name: string, host: string, extra: Partial<VmSpec> = {}): VmSpec => ({
  name,
  host,
  powerState: "Running",
  memoryMiB: 2 * GiB,
  vcpus: 2,
  cpuLoad: 0.05,
  disks: [{ sr: "nfs", sizeMiB: 8 * GiB }],
  ...extra,
});

/** One pool on NFS (the default SR) plus a local ext SR per host. */
function pool(name: string, hosts: readonly string[], vms: readonly VmSpec[], cpus = 8): PoolSpec {
  return {
    name,
    hosts: hosts.map((h) => ({ name: h, cpus, memoryMiB: 64 * GiB })),
    srs: [
      { name: `nfs${name === "p1" ? "" : `-${name}`}`, type: "nfs", shared: true, default: true },
      ...hosts.map((h) => ({ name: `local-${h}`, type: "ext" as const, shared: false, host: h })),
      { name: `iscsi-${name}`, type: "iscsi" as const, shared: true },
    ],
    vms,
  };
}

/** 2 GiB at 100 MiB/s: a pool_migrate takes about 20 s of simulated time. */
const SPEED = 100;

const contractSpec: Omit<XapiSimSpec, "clock"> = {
  migrationSpeedMiBps: SPEED,
  pools: [pool("p1", ["h1", "h2", "h3"], [idle("a", "h1"), idle("b", "h1"), idle("c", "h2"), { ...idle("off", "h3"), powerState: "Halted" }])],
};

function pickMovable(s: ClusterSnapshot): MigrationRequest {
  const vm = s.vms.find((v) => v.state === "running" && v.storage.kind === "shared");
  if (!vm) throw new Error("no running VM on shared storage");
  const to = s.hosts.find((h) => h.name !== vm.host && h.pool === s.hosts.find((x) => x.name === vm.host)?.pool && !h.disabled);
  if (!to) throw new Error("no destination");
  return { vm: vm.id, from: vm.host, to: to.name, kind: "live-shared", flags: ["LIVE"], maxDowntimeMs: 50 };
}

for (const transport of TRANSPORTS) {
  const envs: XenEnv[] = [];
  driverContract(`xenserver over ${transport}`, async () => {
    const env = await xenEnv(contractSpec, transport);
    envs.push(env);
    return {
      driver: await env.driver(),
      advance: (ms) => env.advance(ms, 500),
      pickMovableVm: pickMovable,
      pollMs: 1000,
      budgetMs: 300_000,
      dispose: () => env.dispose(),
    };
  });
}

describe.each(TRANSPORTS)("XenServer driver over %s", (transport) => {
  let env: XenEnv | undefined;
  let d: XenDaemon | undefined;
  afterEach(async () => {
    await d?.stop();
    await env?.dispose();
    d = undefined;
    env = undefined;
  });

  async function start(spec: Omit<XapiSimSpec, "clock">, overrides: Record<string, unknown> = {}, poolCells?: Record<string, string>): Promise<{ env: XenEnv; d: XenDaemon }> {
    env = await xenEnv(spec, transport, Object.fromEntries(Object.entries(poolCells ?? {}).map(([p, cell]) => [p, { cell }])));
    d = await xenDaemon(env, { guards: { vmCooldownMinutes: 30, failureCooldownMinutes: 60, maxMigrationsPerHour: 100 }, ...overrides });
    return { env, d };
  }

  it("maps the pool: hosts with cells, shared SRs and memory; guests only, with storage, volumes and tags", async () => {
    const e = (env = await xenEnv(
      {
        pools: [
          pool("p1", ["h1", "h2"], [
            idle("shared", "h1", { tags: ["web"] }),
            idle("local", "h2", { disks: [{ sr: "local-h2", sizeMiB: 4 * GiB }, { sr: "local-h2", sizeMiB: 1 * GiB }] }),
            idle("vol", "h2", { disks: [{ sr: "local-h2", sizeMiB: 4 * GiB }, { sr: "iscsi-p1", sizeMiB: 10 * GiB, volume: true }] }),
            { ...idle("halted", null as unknown as string), host: null, powerState: "Halted" },
          ]),
        ],
      },
      transport,
      { p1: { cell: "east" } },
    ));
    e.sim.setHostEnabled("h2", false);
    const driver = await e.driver();
    await e.advance(2000);
    const s = await driver.sample();
    expect(s.hosts.map((h) => [h.name, h.hypervisor, h.pool, h.cell, h.cpus, h.memoryMiB, h.reachable, h.disabled ?? false])).toEqual([
      ["h1", "xen", "p1", "east", 8, 64 * GiB, true, false],
      ["h2", "xen", "p1", "east", 8, 64 * GiB, true, true],
    ]);
    const nfs = s.hosts[0]?.sharedStorage;
    expect(nfs).toHaveLength(2); // nfs and the iSCSI SR
    for (const h of s.hosts) expect(h.memoryUsedMiB).toBeGreaterThan(0);
    const byName = new Map(s.vms.map((v) => [v.name, v]));
    expect([...byName.keys()].sort()).toEqual(["halted", "local", "shared", "vol"]);
    expect(byName.get("shared")).toMatchObject({ host: "h1", state: "running", vcpus: 2, memoryMiB: 2048, volumes: 0, tags: ["web"] });
    expect(byName.get("shared")?.storage.kind).toBe("shared");
    expect(byName.get("local")).toMatchObject({ host: "h2", storage: { kind: "local" }, diskMiB: 5 * GiB, volumes: 0 });
    expect(byName.get("vol")).toMatchObject({ storage: { kind: "local" }, volumes: 1, diskMiB: 4 * GiB });
    // A halted VM without affinity on shared storage belongs to the pool master.
    expect(byName.get("halted")).toMatchObject({ host: "h1", state: "shutoff", cpuLoad: 0 });
    // What `ballast snapshot --json` writes is what `plan --snapshot` reads back.
    expect(parseSnapshot(JSON.stringify(s), "xen snapshot")).toEqual(s);
  });

  it("drains a host one VM at a time with VM.pool_migrate, disabling it in XAPI, and re-enables it on undrain", async () => {
    const { env: e, d: x } = await start({ migrationSpeedMiBps: SPEED, pools: [pool("p1", ["h1", "h2"], [idle("a", "h1"), idle("b", "h1"), idle("c", "h1")])] });
    await x.round();
    expect(e.sim.callCount("VM.pool_migrate")).toBe(0);
    await x.flag("h1", true);
    await e.until(() => ["a", "b", "c"].every((n) => e.sim.vm(n).host === "h2") && !x.daemon.busy);
    expect(e.sim.host("h1").enabled).toBe(false);
    expect(e.sim.callCount("host.disable", "h1")).toBe(1);
    expect(e.sim.callCount("VM.pool_migrate")).toBe(3);
    expect(e.sim.callCount("VM.migrate_send")).toBe(0);
    const migrations = x.store.recentMigrations(10).sort((m, n) => m.startedAt - n.startedAt);
    expect(migrations.map((m) => [m.status, m.kind, m.policy, m.from, m.to])).toEqual(Array(3).fill(["succeeded", "live-shared", "maintenance-drain", "h1", "h2"]));
    // One at a time: each starts after the previous one finished.
    for (let i = 1; i < migrations.length; i++) expect(migrations[i]?.startedAt).toBeGreaterThanOrEqual(migrations[i - 1]?.finishedAt ?? Infinity);
    // Xen's own stop-and-copy is noted in the history.
    const events = x.store.migrationWithEvents(migrations[0]?.id as never)?.events ?? [];
    expect(JSON.stringify(events)).toContain("stop-and-copy");
    await x.flag("h1", false);
    await e.until(() => e.sim.host("h1").enabled && !x.daemon.busy);
    expect(e.sim.callCount("host.enable", "h1")).toBe(1);
    // Once the event feed has brought the change into the cache, h1 is a destination again.
    await e.until(async () => (await x.driver.sample()).hosts.find((h) => h.name === "h1")?.disabled === undefined, 120_000);
  });

  it("never disables, re-enables or targets a host someone else disabled", async () => {
    const { env: e, d: x } = await start({ migrationSpeedMiBps: SPEED, pools: [pool("p1", ["h1", "h2", "h3"], [idle("a", "h1")])] });
    e.sim.setHostEnabled("h2", false);
    // The driver's object cache follows XAPI's event feed (a fraction of a second behind).
    await e.until(async () => (await x.driver.sample()).hosts.find((h) => h.name === "h2")?.disabled === true);
    await x.flag("h1", true);
    await e.until(() => e.sim.vm("a").host !== "h1" && !x.daemon.busy);
    expect(e.sim.vm("a").host).toBe("h3");
    await x.flag("h2", true);
    await x.flag("h2", false);
    await e.advance(5000);
    expect(e.sim.host("h2").enabled).toBe(false);
    expect(e.sim.callCount("host.enable", "h2") + e.sim.callCount("host.disable", "h2")).toBe(0);
  });

  it("relieves a hotspot", async () => {
    const hot = (n: string): VmSpec => idle(n, "h1", { vcpus: 2, cpuLoad: 0.9 });
    const { env: e, d: x } = await start(
      { migrationSpeedMiBps: 1000, pools: [pool("p1", ["h1", "h2"], [hot("x1"), hot("x2"), idle("y", "h2")], 4)] },
      { policies: { "hotspot-relief": { sustainMinutes: 0 } } },
    );
    // Five minutes of RRD history so the smoothed loads have settled.
    await e.advance(300_000, 10_000);
    const before = await x.driver.sample();
    expect(before.hosts.find((h) => h.name === "h1")?.cpuLoad).toBeGreaterThan(0.85);
    await x.round();
    const moved = x.store.recentMigrations(10);
    expect(moved.length).toBeGreaterThanOrEqual(1);
    expect(moved.every((m) => m.policy === "hotspot-relief" && m.status === "succeeded" && m.from === "h1" && m.to === "h2")).toBe(true);
    await e.advance(300_000, 10_000);
    const after = await x.driver.sample();
    expect(after.hosts.find((h) => h.name === "h1")?.cpuLoad).toBeLessThan(0.85);
  });

  it("never block-migrates a VM with a volume attached: it shows as blocked with that reason", async () => {
    const { env: e, d: x } = await start(
      {
        migrationSpeedMiBps: SPEED,
        pools: [
          pool("p1", ["h1", "h2"], [idle("vol", "h1", { disks: [{ sr: "local-h1", sizeMiB: 4 * GiB }, { sr: "iscsi-p1", sizeMiB: 8 * GiB, volume: true }] })]),
        ],
      },
      { migration: { allowBlockMigration: true } },
    );
    await x.flag("h1", true);
    await e.until(() => x.daemon.lastPlan !== undefined && x.daemon.lastRound?.trigger === "flag" && !x.daemon.busy);
    const blocked = x.daemon.lastPlan?.blocked.find((b) => b.vm === e.sim.vm("vol").uuid);
    expect(blocked?.reason).toMatch(/block volumes attached/);
    expect(x.store.recentDecisions(10, { outcome: "blocked" })[0]?.reason).toMatch(/block volumes attached/);
    expect(e.sim.callCount("VM.migrate_send") + e.sim.callCount("host.migrate_receive")).toBe(0);
    expect(e.sim.vm("vol").host).toBe("h1");
    // The driver refuses it too, up front, if asked directly.
    const vm = (await x.driver.sample()).vms.find((v) => v.name === "vol");
    await expect(x.driver.migrate({ vm: vm!.id, from: hostId("h1"), to: hostId("h2"), kind: "live-block", flags: ["LIVE"], maxDowntimeMs: 50 })).rejects.toMatchObject({
      code: "VM_HAS_VOLUMES",
    });
  });

  it("moves a VM with local ext disks to another pool by Storage XenMotion, its VDIs on the destination's default SR", async () => {
    const { env: e, d: x } = await start(
      {
        migrationSpeedMiBps: 1000,
        pools: [pool("p1", ["h1"], [idle("loc", "h1", { disks: [{ sr: "local-h1", sizeMiB: 4 * GiB }, { sr: "local-h1", sizeMiB: 2 * GiB }] })]), pool("p2", ["h9"], [])],
      },
      { migration: { allowBlockMigration: true } },
      { p1: "c1", p2: "c1" },
    );
    await x.flag("h1", true);
    await e.until(() => e.sim.vm("loc").host === "h9" && !x.daemon.busy);
    const vm = e.sim.vm("loc");
    expect(vm.pool).toBe("p2");
    expect(vm.vdis.map((v) => v.sr)).toEqual(["nfs-p2", "nfs-p2"]);
    expect(e.sim.callCount("host.migrate_receive")).toBe(1);
    expect(e.sim.callCount("VM.assert_can_migrate")).toBe(1);
    expect(e.sim.callCount("VM.migrate_send")).toBe(1);
    const [m] = x.store.recentMigrations(1);
    expect(m).toMatchObject({ status: "succeeded", kind: "live-block", from: "h1", to: "h9" });
    const s = await x.driver.sample();
    expect(s.vms.find((v) => v.name === "loc")).toMatchObject({ host: "h9", storage: { kind: "shared" } });
  });

  it("a hung task is cancelled by the guard and the VM stays on its source", async () => {
    const { env: e, d: x } = await start(
      { migrationSpeedMiBps: SPEED, pools: [pool("p1", ["h1", "h2"], [idle("a", "h1")])] },
      { migration: { progressTimeoutSec: 10 } },
    );
    e.sim.faults.hangNextTask();
    await x.flag("h1", true);
    await e.until(() => x.store.recentMigrations(1)[0]?.status === "aborted" && !x.daemon.busy);
    const [m] = x.store.recentMigrations(1);
    expect(m?.error).toMatch(/no new low of remaining data/);
    expect(e.sim.callCount("task.cancel")).toBeGreaterThanOrEqual(1);
    expect(e.sim.vm("a").host).toBe("h1");
    expect((await x.driver.locate(m!.vm)).placements).toEqual([{ host: "h1", state: "running" }]);
  });

  // A cold move has nothing to converge, but its completion budget (here 2 s/GiB of RAM + disk = 8 s) bounds it.
  it.each([
    { task: "VM.clean_shutdown", calls: { "VM.clean_shutdown": 1, "VM.migrate_send": 0, "VM.start_on": 0 } },
    { task: "VM.migrate_send", calls: { "VM.clean_shutdown": 1, "VM.migrate_send": 1, "VM.start_on": 1 } },
    { task: "VM.start_on", calls: { "VM.clean_shutdown": 1, "VM.migrate_send": 1, "VM.start_on": 2 } },
  ])("a cold move hung in $task is cancelled by the guard at its budget and the VM runs on its source", async ({ task, calls }) => {
    const { env: e, d: x } = await start(
      { migrationSpeedMiBps: 1000, pools: [pool("p1", ["h1", "h2"], [idle("batch", "h1", { tags: ["batch"], disks: [{ sr: "local-h1", sizeMiB: 2 * GiB }] })])] },
      { migration: { allowBlockMigration: false, allowColdForTags: ["batch"], completionTimeoutSecPerGiB: 2 } },
    );
    e.sim.faults.hangNextTask(task);
    await x.flag("h1", true);
    await e.until(() => x.store.recentMigrations(1)[0]?.status === "aborted" && !x.daemon.busy);
    const [m] = x.store.recentMigrations(1);
    expect(m).toMatchObject({ kind: "cold", from: "h1", to: "h2" });
    expect(m?.error).toMatch(/cold move over its completion budget/);
    expect(e.sim.callCount("task.cancel")).toBeGreaterThanOrEqual(1);
    // Started again where it was (start_on h1 after a hung start_on h2); its disk moved only if migrate_send finished.
    await e.until(() => e.sim.vm("batch").powerState === "Running");
    expect(e.sim.vm("batch")).toMatchObject({ host: "h1", powerState: "Running" });
    expect(e.sim.vm("batch").vdis.map((v) => v.sr)).toEqual(task === "VM.start_on" ? ["nfs"] : ["local-h1"]);
    for (const [method, n] of Object.entries(calls)) expect(e.sim.callCount(method), method).toBe(n);
    expect((await x.driver.locate(m!.vm)).placements).toEqual([{ host: "h1", state: "running" }]);
  });

  it("drains a halted VM cold: within the pool it moves by affinity, no copy", async () => {
    const { env: e, d: x } = await start({ migrationSpeedMiBps: SPEED, pools: [pool("p1", ["h1", "h2"], [{ ...idle("off", "h1"), powerState: "Halted" }])] });
    expect(e.sim.vm("off")).toMatchObject({ host: null, affinity: "h1" });
    await x.flag("h1", true);
    await e.until(() => e.sim.vm("off").affinity === "h2" && !x.daemon.busy);
    expect(e.sim.vm("off").powerState).toBe("Halted");
    expect(x.store.recentMigrations(1)[0]).toMatchObject({ status: "succeeded", kind: "cold", from: "h1", to: "h2" });
    expect(e.sim.callCount("VM.pool_migrate") + e.sim.callCount("VM.migrate_send")).toBe(0);
  });

  it("moves a running VM with local disks cold when its tag allows: shut down, Storage XenMotion, started on the destination", async () => {
    const { env: e, d: x } = await start(
      { migrationSpeedMiBps: 1000, pools: [pool("p1", ["h1", "h2"], [idle("batch", "h1", { tags: ["batch"], disks: [{ sr: "local-h1", sizeMiB: 2 * GiB }] })])] },
      { migration: { allowBlockMigration: false, allowColdForTags: ["batch"] } },
    );
    await x.flag("h1", true);
    await e.until(() => x.store.recentMigrations(1)[0]?.finishedAt != null && !x.daemon.busy);
    expect(x.store.recentMigrations(1)[0]).toMatchObject({ status: "succeeded", kind: "cold", from: "h1", to: "h2" });
    expect(e.sim.vm("batch")).toMatchObject({ host: "h2", powerState: "Running", affinity: "h2" });
    expect(e.sim.vm("batch").vdis.map((v) => v.sr)).toEqual(["nfs"]);
    for (const m of ["VM.clean_shutdown", "VM.migrate_send", "VM.start_on"]) expect(e.sim.callCount(m), m).toBe(1);
  });

  it("configured with a pool member's URL, follows HOST_IS_SLAVE to the master", async () => {
    const e = (env = await xenEnv({ pools: [pool("p1", ["h1", "h2"], [idle("a", "h1")])] }, transport));
    e.xenConfig.pools[0]!.url = e.sim.hostUrl("h2");
    const s = await (await e.driver()).sample();
    expect(s.vms.map((v) => [v.name, v.host])).toEqual([["a", "h1"]]);
    const logins = e.sim.calls.filter((c) => c.method === "session.login_with_password");
    expect(logins.map((c) => [c.host, c.error ?? "ok"])).toEqual([
      ["h2", "HOST_IS_SLAVE"],
      ["h1", "ok"],
    ]);
  });

  it("a pool whose event feed fails is reported unreachable until it recovers", async () => {
    const e = (env = await xenEnv({ pools: [pool("p1", ["h1", "h2"], [idle("a", "h1")])] }, transport));
    const driver = await e.driver();
    expect((await driver.sample()).hosts.every((h) => h.reachable)).toBe(true);
    e.sim.faults.dropNextCall("event.from");
    // An event ends the long-poll in flight; the next one is dropped.
    e.sim.setHostEnabled("h2", false);
    const seen = async (reachable: boolean): Promise<ClusterSnapshot> => {
      for (let i = 0; i < 200; i++) {
        const s = await driver.sample();
        if (s.hosts.every((h) => h.reachable === reachable)) return s;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`hosts never all reachable=${reachable}`);
    };
    const down = await seen(false);
    expect(down.vms).toEqual([]);
    const up = await seen(true);
    expect(up.vms.map((v) => v.name)).toEqual(["a"]);
  });

  it("a new driver instance (after a daemon restart) cancels a migration it did not start, via VM.current_operations", async () => {
    env = await xenEnv({ migrationSpeedMiBps: SPEED, pools: [pool("p1", ["h1", "h2"], [idle("a", "h1")])] }, transport);
    const e = env;
    const first = await e.driver();
    const req = pickMovable(await first.sample());
    const handle = await first.migrate(req);
    await e.advance(3000);
    expect((await handle.stats())?.dataProcessedMiB).toBeGreaterThan(0);
    const second = await e.driver();
    await second.cancel(req.vm);
    let outcome: unknown;
    void handle.done.then((o) => (outcome = o));
    await e.until(async () => (await handle.stats(), outcome !== undefined));
    expect(outcome).toMatchObject({ status: "aborted" });
    expect(e.sim.vm("a").host).toBe("h1");
    expect((await second.locate(req.vm)).placements).toEqual([{ host: "h1", state: "running" }]);
  });

  const FAULTS: readonly {
    name: string;
    arm(e: XenEnv): void;
    error: RegExp;
  }[] = [
    { name: "a failed task", arm: (e) => e.sim.faults.failNextTask("VM_MIGRATE_FAILED", ["sim", "injected"]), error: /VM\.pool_migrate failed: VM_MIGRATE_FAILED/ },
    {
      name: "HOST_NOT_ENOUGH_FREE_MEMORY",
      arm: (e) => e.sim.faults.failNext("VM.pool_migrate", "HOST_NOT_ENOUGH_FREE_MEMORY", ["2147483648", "1024"]),
      error: /HOST_NOT_ENOUGH_FREE_MEMORY.*not enough free memory/,
    },
    { name: "VM_REQUIRES_SR", arm: (e) => e.sim.faults.failNext("VM.pool_migrate", "VM_REQUIRES_SR", ["OpaqueRef:vm", "OpaqueRef:sr"]), error: /VM_REQUIRES_SR.*storage repository/ },
    { name: "a dropped connection", arm: (e) => e.sim.faults.dropNextCall("VM.pool_migrate"), error: /migrate refused: VM\.pool_migrate failed: .*(closed|socket|reset)/i },
  ];

  for (const f of FAULTS) {
    it(`${f.name}: a clear error, the VM accounted for, the daemon still running`, async () => {
      const { env: e, d: x } = await start({ migrationSpeedMiBps: SPEED, pools: [pool("p1", ["h1", "h2"], [idle("a", "h1")])] });
      f.arm(e);
      await x.flag("h1", true);
      await e.until(() => x.store.recentMigrations(1)[0]?.finishedAt != null && !x.daemon.busy);
      const [m] = x.store.recentMigrations(1);
      expect(m?.status).toBe("failed");
      expect(m?.error).toMatch(f.error);
      expect(e.sim.vm("a").host).toBe("h1");
      expect((await x.driver.locate(m!.vm)).placements).toEqual([{ host: "h1", state: "running" }]);
      // Still running: the next round samples and plans (the VM waits out its failure cooldown).
      await x.round();
      expect(x.daemon.lastRound?.outcome).toBe("ok");
      expect(x.daemon.lastSnapshot?.vms.map((v) => v.name)).toEqual(["a"]);
    });
  }

  it("SESSION_INVALID mid-drain: the client logs in again and the drain completes", async () => {
    const { env: e, d: x } = await start({ migrationSpeedMiBps: SPEED, pools: [pool("p1", ["h1", "h2"], [idle("a", "h1"), idle("b", "h1")])] });
    await x.flag("h1", true);
    await e.until(() => x.daemon.inFlight !== undefined);
    await e.advance(3000);
    e.sim.faults.invalidateSessions();
    await e.until(() => ["a", "b"].every((n) => e.sim.vm(n).host === "h2") && !x.daemon.busy);
    expect(x.store.recentMigrations(5).map((m) => m.status)).toEqual(["succeeded", "succeeded"]);
    expect(e.sim.callCount("session.login_with_password")).toBeGreaterThanOrEqual(2);
  });

  it("wrong password: rounds fail naming the credentials file, then recover once the login works", async () => {
    env = await xenEnv({ migrationSpeedMiBps: SPEED, pools: [pool("p1", ["h1", "h2"], [idle("a", "h1")])] }, transport);
    const e = env;
    e.sim.faults.wrongPassword = true;
    d = await xenDaemon(e);
    const x = d;
    await x.round();
    expect(x.daemon.lastRound?.outcome).toBe("error");
    expect(x.daemon.lastRound?.error).toContain("SESSION_AUTHENTICATION_FAILED");
    expect(x.daemon.lastRound?.error).toContain(e.credentialsFile);
    expect(x.daemon.lastRound?.error).not.toContain(e.sim.password);
    e.sim.faults.wrongPassword = false;
    await x.round();
    expect(x.daemon.lastRound?.outcome).toBe("ok");
    expect(x.daemon.lastSnapshot?.vms.map((v) => [v.name, v.host])).toEqual([["a", "h1"]]);
  });
});

describe("ballast snapshot → plan --snapshot against the XAPI simulator", () => {
  /** The compiled CLI in a child process (the simulator runs here, so the call must not block this process). */
  async function cli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const run = startBallast(args);
    const code = await run.exited;
    return { code, stdout: run.lines.join("\n"), stderr: run.stderr() };
  }

  it("a snapshot sampled from XAPI is accepted by plan --snapshot", async () => {
    const sim = await startXapiSim({ pools: [pool("p1", ["h1", "h2"], [idle("a", "h1", { tags: ["web"] }), idle("b", "h2")])] });
    const dir = mkdtempSync(join(tmpdir(), "ballast-xen-cli-"));
    try {
      const credentialsFile = join(dir, "xapi.credentials");
      writeFileSync(credentialsFile, `${sim.user}:${sim.password}\n`, { mode: 0o600 });
      const config = join(dir, "ballast.yaml");
      writeFileSync(config, stringify({ stateDir: dir, http: { enabled: false }, logLevel: "fatal", xenserver: { pools: [{ name: "p1", url: sim.url("p1"), credentialsFile }] } }));
      const snap = await cli(["snapshot", "--config", config, "--json"]);
      expect(snap.code, snap.stderr).toBe(0);
      const parsed = JSON.parse(snap.stdout) as ClusterSnapshot;
      expect(parsed.hosts.map((h) => [h.name, h.hypervisor, h.pool])).toEqual([
        ["h1", "xen", "p1"],
        ["h2", "xen", "p1"],
      ]);
      expect(parsed.vms.map((v) => [v.name, v.host, v.tags])).toEqual([
        ["a", "h1", ["web"]],
        ["b", "h2", []],
      ]);
      expect(snap.stdout).not.toContain(sim.password);
      const snapFile = join(dir, "snapshot.json");
      writeFileSync(snapFile, snap.stdout);
      const plan = await cli(["plan", "--snapshot", snapFile, "--json"]);
      expect(plan.code, plan.stderr).toBe(0);
      expect(Object.keys(JSON.parse(plan.stdout) as object)).toEqual(["moves", "blocked"]);
    } finally {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
