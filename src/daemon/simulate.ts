import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { ResolvedConfig } from "../config/index.js";
import { BurstApplier, createSimCluster, expandTimeline, SimDriver, type SimCluster } from "../drivers/sim/index.js";
import type { BlockedMove, ClusterSnapshot, HostId, VmId } from "../model/index.js";
import { openHistory } from "../store/index.js";
import { VirtualClock } from "../util/clock.js";
import { Daemon, withMaintenance } from "./daemon.js";
import { clearFlag, setFlag, type MaintenanceFlag } from "./flags.js";
import { Metrics } from "./metrics.js";
import { ReportCollector, type SimulationReport } from "./sim-report.js";

export { countPingPongs, PING_PONG_WINDOW_MS, type MigrationRecord, type SimulationReport } from "./sim-report.js";

/** What a balancer under test gets: the run's config (state in a temporary directory), the cluster and its clock. */
export interface SimWorld {
  readonly config: ResolvedConfig;
  readonly cluster: SimCluster;
  readonly driver: SimDriver;
  readonly clock: VirtualClock;
}

/**
 * An algorithm that places VMs on the simulated cluster: ballast's daemon or a baseline. Whatever it does goes
 * through the simulator's migrations, and the runner alone measures the outcome.
 */
export interface Balancer {
  readonly name: string;
  start(): Promise<void>;
  /** The operator drains or undrains a host (the scenario's timeline). */
  drain(host: HostId, reason: string): Promise<void>;
  undrain(host: HostId): Promise<void>;
  /**
   * One scheduled round at clock.now() on the cluster as just sampled (maintenance overlaid); it may move the
   * clock on (a migration it waits for). Returns a code per move it wanted but could not make.
   */
  round(snapshot: ClusterSnapshot): Promise<readonly string[]>;
  /** Who asked for a migration of this VM that the cluster has just ended (a policy, or the baseline's name). */
  policyOf(vm: VmId): string;
  stop(): Promise<void>;
}

export type BalancerFactory = (world: SimWorld) => Balancer;

export interface SimulationOptions {
  readonly durationMs: number;
  readonly roundIntervalMs: number;
}

/**
 * A bounded label for a blocked move (its reason is free text naming hosts, VMs and figures): the policy, then
 * "no-destination" when no host could take any candidate, else the reason's first clause without names or numbers.
 */
export function blockedCode(b: BlockedMove): string {
  if (/no destination/.test(b.reason)) return `${b.policy}/no-destination`;
  const clause = (b.reason.split(/[:;—(]/)[0] ?? "").replace(/\S*\d\S*/g, "").replace(/\s+/g, " ").trim();
  return `${b.policy}/${clause || "other"}`;
}

/** Metrics that also keep the guard refusal codes of the current round. */
class RefusalTap extends Metrics {
  readonly codes: string[] = [];
  override refused(reason: string): void {
    super.refused(reason);
    this.codes.push(reason);
  }
}

/** ballast itself: the real Daemon (planner, guards, executor, history) on the simulated cluster. */
export const ballastBalancer: BalancerFactory = ({ config, driver, clock }) => {
  const store = openHistory(join(config.stateDir, "history.db"));
  const metrics = new RefusalTap(false);
  const daemon = new Daemon({ config, driver, store, clock, log: pino({ level: "silent" }), metrics });
  return {
    name: "ballast",
    start: () => daemon.start(),
    drain: async (host, reason) => {
      await setFlag(config.maintenanceDir, host, reason);
      await daemon.rescanFlags();
    },
    undrain: async (host) => {
      await clearFlag(config.maintenanceDir, host);
      await daemon.rescanFlags();
    },
    round: async () => {
      metrics.codes.length = 0;
      await daemon.trigger("schedule");
      return [...(daemon.lastPlan?.blocked ?? []).map(blockedCode), ...metrics.codes];
    },
    // The daemon's migration is still in flight when the cluster reports the job's end.
    policyOf: (vm) => (daemon.inFlight?.move.vm === vm ? daemon.inFlight.move.policy : "unknown"),
    stop: async () => {
      try {
        await daemon.stop();
      } finally {
        store.close();
      }
    },
  };
};

/**
 * Fast-forwards a balancer over the simulator on a virtual clock: every `roundIntervalMs` the scenario's due
 * events are applied, the cluster is sampled (for the report) and the balancer runs a round. State lives in a
 * temporary directory that is removed afterwards.
 */
export async function runSimulation(config: ResolvedConfig, factory: BalancerFactory, options: SimulationOptions): Promise<SimulationReport> {
  if (!config.sim) throw new Error("simulate needs a config with a sim: section");
  const clock = new VirtualClock();
  const dir = mkdtempSync(join(tmpdir(), "ballast-sim-"));
  const cfg: ResolvedConfig = { ...config, stateDir: dir, maintenanceDir: join(dir, "maintenance"), http: { ...config.http, enabled: false } };
  const cluster = createSimCluster(config.sim, clock);
  const driver = new SimDriver(cluster, { ownsCluster: true });
  const collector = new ReportCollector(cfg.thresholds.cpuHigh);
  const drained = new Map<HostId, MaintenanceFlag>();
  const bursts = new BurstApplier(cluster);
  const timeline = config.scenario ? expandTimeline(config.scenario, options.durationMs) : [];
  try {
    const balancer = factory({ config: cfg, cluster, driver, clock });
    cluster.onJobEnded((job) => {
      const { plan, outcome } = job;
      if (!outcome) return;
      collector.migration({
        vm: plan.vm,
        from: plan.from,
        to: plan.to,
        status: outcome.status,
        startedAt: plan.startedAt,
        endedAt: job.endedAt ?? clock.now(),
        dataMiB: outcome.status === "succeeded" ? outcome.dataMiB : 0,
        policy: balancer.policyOf(plan.vm),
      });
    });
    const start = clock.now();
    const end = start + options.durationMs;
    let rounds = 0;
    let due = 0;
    await balancer.start();
    try {
      for (let next = start; next < end; next = Math.max(next + options.roundIntervalMs, clock.now())) {
        clock.set(next);
        for (let a = timeline[due]; a !== undefined && start + a.atMs <= clock.now(); a = timeline[++due]) {
          if (a.kind === "drain") {
            drained.set(a.host, { host: a.host, reason: a.reason });
            await balancer.drain(a.host, a.reason);
          } else if (a.kind === "undrain") {
            drained.delete(a.host);
            await balancer.undrain(a.host);
          } else {
            bursts.apply(a);
          }
        }
        const snapshot = withMaintenance(cluster.sample(), drained);
        collector.sample(snapshot, clock.now());
        for (const code of await balancer.round(snapshot)) collector.blocked(code);
        rounds++;
      }
    } finally {
      await balancer.stop();
    }
    const scenario = config.scenario && { name: config.scenario.name, description: config.scenario.description };
    // A migration still running at the end may take the clock past it: the report covers the requested span.
    return collector.report({ algorithm: balancer.name, ...(scenario && { scenario }), startMs: start, endMs: end, rounds });
  } finally {
    await driver.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `ballast simulate`: the daemon itself (same planner, guards and executor) over the config's simulated cluster and scenario. */
export function simulate(config: ResolvedConfig, durationMs: number, roundIntervalMs: number): Promise<SimulationReport> {
  return runSimulation(config, ballastBalancer, { durationMs, roundIntervalMs });
}
