import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { stringify } from "yaml";
import { checkConfigText, formatIssue, type ResolvedConfig } from "../../src/config/index.js";
import { Daemon } from "../../src/daemon/daemon.js";
import { Metrics } from "../../src/daemon/metrics.js";
import type { Driver, MigrationHandle, MigrationRequest } from "../../src/drivers/driver.js";
import { createSimCluster, SimDriver, type SimCluster } from "../../src/drivers/sim/index.js";
import { openHistory, type HistoryStore } from "../../src/store/index.js";
import { ManualClock } from "../../src/util/clock.js";
import type { ConvergenceGuard } from "../../src/daemon/convergence.js";

/** A config as YAML-shaped data, validated by the real loader. */
export function testConfig(dir: string, overrides: Record<string, unknown> = {}): ResolvedConfig {
  const data = {
    stateDir: dir,
    schedule: "0 * * * * *",
    flagRescanSeconds: 2,
    http: { enabled: false },
    logLevel: "fatal",
    policies: { "hotspot-relief": { sustainMinutes: 1 } },
    guards: { vmCooldownMinutes: 30, failureCooldownMinutes: 60, maxMigrationsPerHour: 100 },
    sim: {
      seed: 3,
      cells: [{ name: "a", hosts: 3, cpus: 32, memoryMiB: 262144, vmsPerHost: 3, sharedStorage: "nfs" }],
      heavyDirtierFraction: 0,
      bandwidthMiBps: 1000,
    },
    ...overrides,
  };
  const r = checkConfigText(stringify(data), join(dir, "test.yaml"), dir);
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join("\n"));
  return r.config;
}

/** Wraps a driver to record how many migrations and samples run at once. */
export class CountingDriver implements Driver {
  activeMigrations = 0;
  maxActiveMigrations = 0;
  activeSamples = 0;
  maxActiveSamples = 0;
  samples = 0;
  readonly migrations: MigrationRequest[] = [];

  constructor(readonly inner: Driver) {}
  get name(): string {
    return this.inner.name;
  }
  get capabilities(): Driver["capabilities"] {
    return this.inner.capabilities;
  }
  async sample(): ReturnType<Driver["sample"]> {
    this.samples++;
    this.maxActiveSamples = Math.max(this.maxActiveSamples, ++this.activeSamples);
    try {
      return await this.inner.sample();
    } finally {
      this.activeSamples--;
    }
  }
  async migrate(req: MigrationRequest): Promise<MigrationHandle> {
    const handle = await this.inner.migrate(req);
    this.migrations.push(req);
    this.maxActiveMigrations = Math.max(this.maxActiveMigrations, ++this.activeMigrations);
    void handle.done.finally(() => this.activeMigrations--);
    return handle;
  }
  locate: Driver["locate"] = (vm) => this.inner.locate(vm);
  cancel: Driver["cancel"] = (vm) => this.inner.cancel(vm);
  resume: Driver["resume"] = (vm, host) => this.inner.resume(vm, host);
  close: Driver["close"] = () => this.inner.close();
}

export interface DaemonFixture {
  readonly dir: string;
  readonly clock: ManualClock;
  readonly cluster: SimCluster;
  readonly driver: CountingDriver;
  readonly store: HistoryStore;
  readonly config: ResolvedConfig;
  daemon: Daemon;
  /** A new daemon instance over the same cluster and state directory (as after a crash and restart). */
  restart(): Daemon;
  /** Advances the clock in steps until pred holds; fails after maxMs of simulated time. */
  until(pred: () => boolean, maxMs?: number, stepMs?: number): Promise<void>;
  dispose(): Promise<void>;
}

export function daemonFixture(overrides: Record<string, unknown> = {}, guard?: ConvergenceGuard): DaemonFixture {
  const dir = mkdtempSync(join(tmpdir(), "ballast-daemon-"));
  const config = testConfig(dir, overrides);
  const clock = new ManualClock();
  if (!config.sim) throw new Error("fixture needs sim");
  const cluster = createSimCluster(config.sim, clock);
  const driver = new CountingDriver(new SimDriver(cluster));
  let store = openHistory(join(dir, "ballast.db"));
  const make = (): Daemon =>
    new Daemon({ config, driver, store, clock, log: pino({ level: "silent" }), metrics: new Metrics(false), ...(guard && { guard }) });
  const fx: DaemonFixture = {
    dir,
    clock,
    cluster,
    driver,
    get store() {
      return store;
    },
    config,
    daemon: make(),
    restart() {
      store.close();
      store = openHistory(join(dir, "ballast.db"));
      fx.daemon = make();
      return fx.daemon;
    },
    async until(pred, maxMs = 3_600_000, stepMs = 1000) {
      for (let t = 0; t <= maxMs; t += stepMs) {
        if (pred()) return;
        await clock.advance(stepMs);
      }
      if (!pred()) throw new Error(`condition not reached within ${maxMs} ms of simulated time`);
    },
    async dispose() {
      let stopped = false;
      const stopping = fx.daemon.stop().finally(() => (stopped = true));
      for (let i = 0; i < 10_000 && !stopped; i++) await clock.advance(1000);
      await stopping;
      cluster.dispose();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fx;
}
