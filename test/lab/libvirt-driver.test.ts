/**
 * The libvirt driver on the real lab (three libvirtd hosts on loopback, TCG guests; see lab.ts): the shared
 * driver contract, and the issue's done-when cases — a drain by the real daemon, a non-converging guest ended by
 * the convergence guard, block migration, a cold move, and cells. Real time throughout: these are real migrations.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configSchema, migrationSchema } from "../../src/config/schema.js";
import { ballastGuard } from "../../src/daemon/convergence.js";
import { Daemon } from "../../src/daemon/daemon.js";
import { Executor } from "../../src/daemon/executor.js";
import { Metrics } from "../../src/daemon/metrics.js";
import type { Driver, MigrationFlag, MigrationRequest } from "../../src/drivers/driver.js";
import { createLibvirtDriver, type LibvirtConfig } from "../../src/drivers/libvirt/index.js";
import { hostId, type ClusterSnapshot, type Vm } from "../../src/model/index.js";
import { openHistory, type HistoryStore } from "../../src/store/index.js";
import { realClock } from "../../src/util/clock.js";
import { driverContract, settle, type DriverFixture } from "../contract/driver-contract.js";
import { ROOT } from "../helpers/cli.js";
import { CountingDriver, testConfig } from "../helpers/daemon-fixture.js";
import { labPrerequisites, startLab, type Lab, type LabHostName } from "./lab.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const LIVE: readonly MigrationFlag[] = ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"];

let lab: Lab;

/** The driver's config for the lab: every host over qemu+tcp (allowed explicitly), load from domains. */
function libvirtSection(cells: Partial<Record<LabHostName, string>> = {}): Record<string, unknown> {
  return {
    allowInsecureTransport: true,
    hosts: lab.hosts.map((h) => ({
      name: h.name,
      uri: h.uri,
      loadSource: "domains",
      sharedStorage: [lab.sharedPath],
      ...(cells[h.name] !== undefined && { cell: cells[h.name] }),
    })),
  };
}

function libvirtConfig(cells: Partial<Record<LabHostName, string>> = {}): LibvirtConfig {
  return configSchema.shape.libvirt.unwrap().parse(libvirtSection(cells));
}

function vmNamed(s: ClusterSnapshot, name: string): Vm {
  const vm = s.vms.find((v) => v.name === name);
  if (!vm) throw new Error(`${name} is not in the snapshot: ${s.vms.map((v) => `${v.name}@${v.host}`).join(", ")}`);
  return vm;
}

/** The guest runs on `host` alone, persistently, and its counters still advance. */
async function expectRunningOn(host: LabHostName, guest: string): Promise<void> {
  expect(await lab.where(guest)).toEqual({ defined: [host], running: [host] });
  expect(await lab.virsh(host, "dominfo", guest)).toMatch(/Persistent:\s+yes/);
  const a = await lab.counters(host, guest);
  await sleep(300);
  const b = await lab.counters(host, guest);
  expect(b.magic).toBe(0xba11a570);
  expect(b.ticks).toBeGreaterThan(a.ticks);
}

/** The real daemon over a fresh driver for the lab; its log is kept so a failure shows what it decided. */
async function labDaemon(config: ReturnType<typeof testConfig>): Promise<{ daemon: Daemon; counting: CountingDriver; store: HistoryStore; logTail: () => string; stop: () => Promise<void> }> {
  const counting = new CountingDriver(await createLibvirtDriver(libvirtConfig(), { clock: realClock }));
  const store = openHistory(join(config.stateDir, "ballast.db"));
  const logLines: string[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void logLines.push(line) });
  const daemon = new Daemon({ config, driver: counting, store, clock: realClock, log, metrics: new Metrics(false) });
  return {
    daemon,
    counting,
    store,
    logTail: () => logLines.slice(-30).join(""),
    stop: async () => {
      await daemon.stop();
      await counting.close();
    },
  };
}

async function until(what: string, pred: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${what}: not reached within ${timeoutMs / 1000} s`);
    await sleep(250);
  }
}

beforeAll(async () => {
  expect(labPrerequisites(), "this machine lacks what the lab needs (run scripts/test-deps.sh as root)").toEqual([]);
  lab = await startLab({ hosts: 3, ssh: true });
  // The contract's guest: its memory is written (zero pages cost nothing to copy, so an idle guest would finish
  // under any throttle), and its 4 MiB/s dirtying converges on the unthrottled link.
  await lab.defineGuest("h1", { name: "ct-1", memoryMiB: 64, kind: { dirtyMiB: 24, rateMiBps: 4 } });
}, 180_000);

afterAll(async () => {
  await lab?.stop();
});

// Real migrations take seconds; the contract's tests carry no timeouts of their own.
describe("libvirt driver on the lab", { timeout: 120_000 }, () => {
  driverContract("libvirt (lab)", async (): Promise<DriverFixture> => {
    const driver = await createLibvirtDriver(libvirtConfig(), { clock: realClock });
    return {
      driver,
      advance: sleep,
      pollMs: 500,
      budgetMs: 60_000,
      pickMovableVm(s) {
        const vm = vmNamed(s, "ct-1");
        return { vm: vm.id, from: vm.host, to: hostId(vm.host === "h1" ? "h2" : "h1"), kind: "live-volume", flags: LIVE, maxDowntimeMs: 500 };
      },
    };
  });

  describe("done-when cases", () => {
    let driver: Driver;
    let dir: string;
    beforeAll(async () => {
      driver = await createLibvirtDriver(libvirtConfig(), { clock: realClock });
      dir = mkdtempSync(join(tmpdir(), "ballast-lab-test-"));
    });
    afterAll(async () => {
      await driver?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("the real daemon drains a host of three guests over qemu+tcp, one at a time", async () => {
      for (const name of ["dr-1", "dr-2", "dr-3"]) await lab.defineGuest("h3", { name, kind: "idle" });
      const stateDir = mkdtempSync(join(dir, "drain-"));
      const config = testConfig(stateDir, { sim: undefined, libvirt: libvirtSection(), migration: { pollIntervalMs: 500 } });
      const { daemon, counting, store, logTail, stop } = await labDaemon(config);
      try {
        await daemon.start();
        writeFileSync(join(config.maintenanceDir, "h3"), "lab drain\n");
        const gone = async (): Promise<boolean> => {
          for (const g of ["dr-1", "dr-2", "dr-3"]) if ((await lab.where(g)).defined.includes("h3")) return false;
          return !daemon.busy;
        };
        await until("h3 drained", gone, 180_000).catch((e: unknown) => {
          throw new Error(`${String(e)}\ndaemon log:\n${logTail()}`);
        });
      } finally {
        await stop();
        store.close();
      }
      expect(counting.maxActiveMigrations).toBe(1);
      const moves = counting.migrations.filter((m) => m.from === "h3");
      expect(moves).toHaveLength(3);
      for (const m of moves) expect(["h1", "h2"]).toContain(m.to);
      for (const g of ["dr-1", "dr-2", "dr-3"]) {
        const where = await lab.where(g);
        const dest = where.running[0] as LabHostName;
        expect(["h1", "h2"]).toContain(dest);
        await expectRunningOn(dest, g);
      }
    }, 240_000);

    it("never attempts a cross-cell move: a drain with no host left in the cell blocks, and the driver refuses", async () => {
      await lab.defineGuest("h3", { name: "cell-1", kind: "idle" });
      const cells = { h1: "a", h2: "a", h3: "b" } as const;
      const stateDir = mkdtempSync(join(dir, "cells-"));
      const config = testConfig(stateDir, { sim: undefined, libvirt: libvirtSection(cells) });
      const cellDriver = await createLibvirtDriver(libvirtConfig(cells), { clock: realClock });
      const counting = new CountingDriver(cellDriver);
      const store = openHistory(join(stateDir, "ballast.db"));
      const daemon = new Daemon({ config, driver: counting, store, clock: realClock, log: pino({ level: "silent" }), metrics: new Metrics(false) });
      try {
        mkdirSync(config.maintenanceDir, { recursive: true });
        writeFileSync(join(config.maintenanceDir, "h3"), "");
        await daemon.start();
        const rounds = daemon.roundsRun;
        await daemon.trigger("test");
        await until("a round ran", () => Promise.resolve(daemon.roundsRun > rounds && !daemon.busy), 30_000);
        expect(counting.migrations).toEqual([]);
        const s = await cellDriver.sample();
        const vm = vmNamed(s, "cell-1");
        const err: unknown = await cellDriver
          .migrate({ vm: vm.id, from: hostId("h3"), to: hostId("h1"), kind: "live-volume", flags: LIVE, maxDowntimeMs: 500 })
          .catch((e: unknown) => e);
        expect(err).toMatchObject({ code: "CROSS_CELL" });
      } finally {
        await daemon.stop();
        await counting.close();
        store.close();
      }
      await expectRunningOn("h3", "cell-1");
    }, 120_000);

    async function executeWithGuard(name: string, overrides: Record<string, unknown>): Promise<Awaited<ReturnType<Executor["execute"]>>> {
      const s = await driver.sample();
      const vm = vmNamed(s, name);
      // A stall of 20 s without a new low across passes also escalates (a loaded machine may slow the guest's dirtying).
      const config = migrationSchema.parse({ bandwidthMiBps: 10, pollIntervalMs: 500, escalateAfterSamples: 3, progressTimeoutSec: 20, ...overrides });
      const store = openHistory(join(mkdtempSync(join(dir, "exec-")), "ballast.db"));
      try {
        const executor = new Executor({ driver, journal: store, clock: realClock, guard: ballastGuard });
        return await executor.execute({ vm: vm.id, from: vm.host, to: hostId("h2"), policy: "test", reason: "lab", kind: "live-volume" }, vm, config, null);
      } finally {
        store.close();
      }
    }

    it("a guest dirtying faster than a 10 MiB/s link never converges: the guard aborts and it keeps running on its source", async () => {
      await lab.defineGuest("h1", { name: "nc-1", memoryMiB: 64, kind: { dirtyMiB: 48, rateMiBps: 50 } });
      await sleep(1500); // one sweep, so every dirtied page holds data
      const r = await executeWithGuard("nc-1", { timeoutAction: "abort" });
      expect(r.status).toBe("aborted");
      expect(r.error).toMatch(/dirty rate \d+ MiB\/s ≥ bandwidth|no new low|budget/);
      await expectRunningOn("h1", "nc-1");
    }, 240_000);

    it("the same guest completes when the guard may switch to post-copy", async () => {
      await lab.defineGuest("h1", { name: "nc-2", memoryMiB: 64, kind: { dirtyMiB: 48, rateMiBps: 50 } });
      await sleep(1500);
      const r = await executeWithGuard("nc-2", { permitPostCopy: true });
      expect(r.status).toBe("succeeded");
      expect(r.downtimeMs).toBeGreaterThanOrEqual(0);
      await expectRunningOn("h2", "nc-2");
    }, 240_000);

    it("block migration copies a local qcow2 disk, which arrives identical; without NON_SHARED_DISK libvirt refuses", async () => {
      await lab.defineGuest("h1", { name: "blk-1", kind: "idle", disk: "local-qcow2", diskMiB: 16 });
      const before = await lab.diskChecksum("h1", "blk-1");
      const s = await driver.sample();
      const vm = vmNamed(s, "blk-1");
      expect(vm.storage).toEqual({ kind: "local" });
      expect(vm.diskMiB).toBe(16);
      const req: MigrationRequest = { vm: vm.id, from: hostId("h1"), to: hostId("h2"), kind: "live-block", flags: [...LIVE, "NON_SHARED_DISK"], maxDowntimeMs: 500 };
      const unsafe: unknown = await driver.migrate({ ...req, kind: "live-volume", flags: LIVE }).catch((e: unknown) => e);
      expect(unsafe).toMatchObject({ code: "MIGRATE_UNSAFE" });
      const outcome = await settle({ driver, advance: sleep, pickMovableVm: () => req, pollMs: 250, budgetMs: 60_000 }, await driver.migrate(req));
      expect(outcome).toMatchObject({ status: "succeeded" });
      await expectRunningOn("h2", "blk-1");
      expect(await lab.diskChecksum("h2", "blk-1")).toBe(before);
    }, 120_000);

    it("a shut-off guest moves cold: defined on the destination only, still shut off", async () => {
      await lab.defineGuest("h1", { name: "cold-1", kind: "idle", start: false });
      const s = await driver.sample();
      const vm = vmNamed(s, "cold-1");
      expect(vm.state).toBe("shutoff");
      const req: MigrationRequest = { vm: vm.id, from: hostId("h1"), to: hostId("h2"), kind: "cold", flags: ["OFFLINE", "PERSIST_DEST", "UNDEFINE_SOURCE"], maxDowntimeMs: 500 };
      const outcome = await settle({ driver, advance: sleep, pickMovableVm: () => req, pollMs: 100, budgetMs: 30_000 }, await driver.migrate(req));
      expect(outcome).toMatchObject({ status: "succeeded", downtimeMs: 0 });
      expect(await lab.where("cold-1")).toEqual({ defined: ["h2"], running: [] });
      expect(await driver.locate(vm.id)).toEqual({ vm: vm.id, placements: [{ host: "h2", state: "shutoff" }] });
    }, 60_000);

    it("a busy host is relieved: the real daemon moves a busy guest off the hotspot while idle hosts have room", async () => {
      // Only this test's guests may burn CPU: the fake hosts share the machine's cores, and load is per host.
      for (const h of lab.hosts) {
        for (const g of (await lab.virsh(h.name, "list", "--name")).split("\n").filter(Boolean)) await lab.virsh(h.name, "destroy", g);
      }
      for (const name of ["hs-1", "hs-2"]) await lab.defineGuest("h2", { name, kind: "busy" });
      // Each fake host reports the machine's own CPUs, so one busy 1-vCPU guest is at most 1/cpus of a host.
      const stateDir = mkdtempSync(join(dir, "hotspot-"));
      const config = testConfig(stateDir, {
        sim: undefined,
        libvirt: libvirtSection(),
        thresholds: { cpuHigh: 0.4, cpuLow: 0.35 },
        policies: { "hotspot-relief": { sustainMinutes: 0 } },
        migration: { pollIntervalMs: 500 },
      });
      const { daemon, counting, store, logTail, stop } = await labDaemon(config);
      try {
        await daemon.start();
        // Rounds as the schedule would run them (the cron schedule lives in the service, not the Daemon).
        let lastRound = 0;
        const relieved = (): Promise<boolean> => {
          if (!daemon.busy && Date.now() - lastRound > 2000) {
            lastRound = Date.now();
            void daemon.trigger("test");
          }
          return Promise.resolve(counting.migrations.some((m) => m.from === "h2") && !daemon.busy);
        };
        await until("a migration off h2", relieved, 240_000).catch((e: unknown) => {
          const hosts = daemon.lastSnapshot?.hosts.map((h) => `${h.name} cpu ${h.cpuLoad} of ${h.cpus}`).join("; ");
          const vms = daemon.lastSnapshot?.vms.filter((v) => v.state === "running").map((v) => `${v.name}@${v.host} ${v.cpuLoad}`).join("; ");
          throw new Error(`${String(e)}\nhosts: ${hosts}\nvms: ${vms}\nplan: ${JSON.stringify(daemon.lastPlan)}\ndaemon log:\n${logTail()}`);
        });
      } finally {
        await stop();
      }
      const journal = store.recentMigrations(10);
      store.close();
      expect(journal.map((m) => [m.policy, m.status])).toEqual([["hotspot-relief", "succeeded"]]);
      const moved = counting.migrations.filter((m) => m.from === "h2");
      expect(moved).toHaveLength(1);
      const s = await driver.sample();
      const names = new Map(s.vms.map((v) => [v.id, v.name]));
      const guest = names.get(moved[0]!.vm) ?? "";
      expect(["hs-1", "hs-2"]).toContain(guest);
      expect(["h1", "h3"]).toContain(moved[0]!.to);
      await expectRunningOn(moved[0]!.to as LabHostName, guest);
      await expectRunningOn("h2", guest === "hs-1" ? "hs-2" : "hs-1");
    }, 300_000);

    it("loadSource proc: host load and memory come from /proc over one SSH connection, reused across samples", async () => {
      const ssh = lab.libvirtConfig().hosts.find((h) => h.name === "h1")?.ssh;
      expect(ssh).toBeDefined();
      const cfg = configSchema.shape.libvirt.unwrap().parse({
        ...libvirtSection(),
        hosts: (libvirtSection().hosts as Record<string, unknown>[]).map((h) => (h.name === "h1" ? { ...h, loadSource: "proc", ssh } : h)),
      });
      const sshLog = join(lab.dir, "h1", "sshd.log");
      const accepted = (): number => (readFileSync(sshLog, "utf8").match(/Accepted publickey/g) ?? []).length;
      const before = accepted();
      const d = await createLibvirtDriver(cfg, { clock: realClock });
      try {
        let h1 = (await d.sample()).hosts.find((h) => h.name === "h1");
        for (let i = 0; i < 4; i++) {
          await sleep(500);
          h1 = (await d.sample()).hosts.find((h) => h.name === "h1");
        }
        // The machine's own memory in use (every fake host is this machine), not the few MiB its lab guests hold.
        const meminfo = readFileSync("/proc/meminfo", "utf8");
        const kib = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(meminfo)?.[1]);
        const usedMiB = (kib("MemTotal") - kib("MemAvailable")) / 1024;
        expect(h1?.reachable).toBe(true);
        expect(h1?.memoryUsedMiB).toBeGreaterThan(usedMiB * 0.5);
        expect(h1?.memoryUsedMiB).toBeLessThan(usedMiB * 2);
        // Two busy guests of the previous test keep running: the machine is measurably busy.
        expect(h1?.cpuLoad).toBeGreaterThan(0.05);
        expect(h1?.cpuLoad).toBeLessThanOrEqual(1);
      } finally {
        await d.close();
      }
      expect(accepted() - before, readFileSync(sshLog, "utf8").slice(-3000)).toBe(1);
    }, 60_000);

    it("a process that used the driver exits by itself, cleanly, whether or not it closed the driver", () => {
      // Node finalizes the binding's event listeners at exit; releasing one again from a freed connection aborted.
      const child = (close: boolean): ReturnType<typeof spawnSync> =>
        spawnSync(
          process.execPath,
          [
            "--input-type=module",
            "-e",
            `import { createLibvirtDriver } from "${ROOT}dist/src/drivers/libvirt/index.js";
             import { configSchema } from "${ROOT}dist/src/config/index.js";
             import { realClock } from "${ROOT}dist/src/util/clock.js";
             const d = await createLibvirtDriver(configSchema.shape.libvirt.unwrap().parse(JSON.parse(process.argv[1])), { clock: realClock });
             await d.sample();
             if (process.argv[2] === "close") await d.close();`,
            JSON.stringify(lab.libvirtConfig()),
            close ? "close" : "keep",
          ],
          { encoding: "utf8", timeout: 30_000 },
        );
      for (const close of [true, false]) {
        const r = child(close);
        expect({ close, status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ close, status: 0, signal: null, stderr: "" });
      }
    }, 90_000);

    it("a host whose libvirtd stops answering is sampled unreachable within the sample timeout, and reachable once it answers", async () => {
      const d = await createLibvirtDriver(libvirtConfig(), { clock: realClock });
      const pid = lab.host("h3").libvirtdPid;
      try {
        process.kill(pid, "SIGSTOP");
        const t0 = Date.now();
        const s = await d.sample();
        expect(Date.now() - t0).toBeLessThan(15_000);
        expect(s.hosts.map((h) => [h.name, h.reachable])).toEqual([
          ["h1", true],
          ["h2", true],
          ["h3", false],
        ]);
      } finally {
        process.kill(pid, "SIGCONT");
      }
      await until("h3 reachable again", async () => (await d.sample()).hosts.find((h) => h.name === "h3")?.reachable === true, 60_000);
      await d.close();
    }, 120_000);
  });
});
