/**
 * Test environment for the XenServer driver: the XAPI simulator and the driver (real xen-api client over
 * HTTP) on one ManualClock, plus a daemon over that driver. Simulated time moves only on advance(); each
 * step also lets a little real time pass so HTTP round trips and xen-api's event feed keep up.
 */
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { ResolvedConfig } from "../../src/config/index.js";
import { Daemon } from "../../src/daemon/daemon.js";
import { Metrics } from "../../src/daemon/metrics.js";
import { createXenServerDriver, type XenServerDriver, type XenTransport } from "../../src/drivers/xenserver/index.js";
import { openHistory, type HistoryStore } from "../../src/store/index.js";
import { ManualClock } from "../../src/util/clock.js";
import { testConfig } from "../helpers/daemon-fixture.js";
import { startXapiSim, type PoolSpec, type XapiSim, type XapiSimSpec } from "../xapi-sim/index.js";

export const TRANSPORTS: readonly XenTransport[] = ["json-rpc", "xml-rpc"];

const realSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface PoolOptions {
  /** Default: the pool master's URL. */
  readonly url?: string;
  readonly cell?: string;
  readonly disableOnDrain?: boolean;
}

export interface XenEnv {
  readonly sim: XapiSim;
  readonly clock: ManualClock;
  readonly dir: string;
  readonly credentialsFile: string;
  readonly transport: XenTransport;
  /** The xenserver config section pointing at the simulator. */
  readonly xenConfig: { pools: Record<string, unknown>[] };
  driver(): Promise<XenServerDriver>;
  /** Moves simulated time on by ms in steps of stepMs, with a few real ms per step for I/O. */
  advance(ms: number, stepMs?: number): Promise<void>;
  /** Advances until pred holds (fails after maxMs of simulated time). */
  until(pred: () => boolean | Promise<boolean>, maxMs?: number, stepMs?: number): Promise<void>;
  dispose(): Promise<void>;
}

export async function xenEnv(
  spec: Omit<XapiSimSpec, "clock">,
  transport: XenTransport,
  poolOptions: Readonly<Record<string, PoolOptions>> = {},
): Promise<XenEnv> {
  const clock = new ManualClock();
  const sim = await startXapiSim({ ...spec, clock });
  const dir = mkdtempSync(join(tmpdir(), "ballast-xen-"));
  const credentialsFile = join(dir, "xapi.credentials");
  writeFileSync(credentialsFile, `${sim.user}:${sim.password}\n`, { mode: 0o600 });
  const drivers: XenServerDriver[] = [];
  const xenConfig = {
    pools: spec.pools.map((p: PoolSpec) => ({
      name: p.name,
      url: poolOptions[p.name]?.url ?? sim.url(p.name),
      credentialsFile,
      ...(poolOptions[p.name]?.cell !== undefined && { cell: poolOptions[p.name]?.cell }),
      ...(poolOptions[p.name]?.disableOnDrain !== undefined && { disableOnDrain: poolOptions[p.name]?.disableOnDrain }),
    })),
  };
  const env: XenEnv = {
    sim,
    clock,
    dir,
    credentialsFile,
    transport,
    xenConfig,
    async driver() {
      const cfg = testConfig(dir, { sim: undefined, xenserver: xenConfig });
      if (!cfg.xenserver) throw new Error("no xenserver section");
      const d = await createXenServerDriver(cfg.xenserver, { clock, transport, connectTimeoutMs: 5_000 });
      drivers.push(d);
      return d;
    },
    async advance(ms, stepMs = 1000) {
      for (let t = 0; t < ms; t += stepMs) {
        await clock.advance(Math.min(stepMs, ms - t));
        await realSleep(5);
      }
    },
    async until(pred, maxMs = 600_000, stepMs = 1000) {
      for (let t = 0; t <= maxMs; t += stepMs) {
        if (await pred()) return;
        await clock.advance(stepMs);
        await realSleep(10);
      }
      if (!(await pred())) throw new Error(`condition not reached within ${maxMs} ms of simulated time`);
    },
    async dispose() {
      await Promise.all(drivers.map((d) => d.close()));
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

export interface XenDaemon {
  readonly daemon: Daemon;
  readonly driver: XenServerDriver;
  readonly store: HistoryStore;
  readonly config: ResolvedConfig;
  /** Creates or removes the maintenance flag of host and lets the daemon notice (without waiting for the round). */
  flag(host: string, on: boolean): Promise<void>;
  /** Runs a round; resolves when no round is left (advancing simulated time meanwhile). */
  round(): Promise<void>;
  stop(): Promise<void>;
}

/** A daemon over the XenServer driver, config validated by the real loader. */
export async function xenDaemon(env: XenEnv, overrides: Record<string, unknown> = {}): Promise<XenDaemon> {
  const config = testConfig(env.dir, { sim: undefined, xenserver: env.xenConfig, ...overrides });
  const driver = await env.driver();
  const store = openHistory(join(env.dir, "ballast.db"));
  const daemon = new Daemon({ config, driver, store, clock: env.clock, log: pino({ level: "silent" }), metrics: new Metrics(false) });
  await daemon.start();
  const dir = config.maintenanceDir;
  mkdirSync(dir, { recursive: true });
  const settle = async (p: Promise<void>): Promise<void> => {
    let done = false;
    void p.finally(() => (done = true));
    await env.until(() => done);
    await p;
  };
  return {
    daemon,
    driver,
    store,
    config,
    async flag(host, on) {
      if (on) writeFileSync(join(dir, host), "test drain\n");
      else unlinkSync(join(dir, host));
      void daemon.rescanFlags();
      await realSleep(20);
    },
    round: () => settle(daemon.trigger("test")),
    async stop() {
      await settle(daemon.stop());
      store.close();
    },
  };
}
