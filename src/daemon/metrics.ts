import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { GuardAction, JobStats } from "../drivers/driver.js";
import { imbalance, type BlockedMove, type ClusterSnapshot, type Move } from "../model/index.js";
import { packageVersion } from "../util/version.js";
import type { ExecutionResult, MigrationObserver } from "./executor.js";
import type { GuardDecision } from "./convergence.js";

const MIB = 1024 * 1024;

/** The values of the guard `step`, migration `outcome` and round `outcome` labels: exported at 0 up front, so increase() sees the first event. */
const GUARD_STEPS: Record<GuardAction["kind"], null> = { "raise-downtime": null, "post-copy": null, pause: null, abort: null };
const MIGRATION_OUTCOMES: Record<ExecutionResult["status"], null> = { succeeded: null, failed: null, aborted: null };
const ROUND_OUTCOMES = ["ok", "error"] as const;

/**
 * Default Node.js metrics that break Prometheus naming (gauges ending in `_total`); their per-type
 * siblings (`nodejs_active_handles{type}`, …) carry the same numbers, summed.
 */
const NONCONFORMING_DEFAULTS = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

/**
 * Every metric ballast exports, on its own registry. Names follow Prometheus conventions (base units, _total
 * on counters only, 0–1 fractions as _ratio); labels are bounded: host, cell, policy, kind, outcome, step,
 * resource, driver and reason (a refusal code, never free text). `promtool check metrics` is clean on the output
 * (test/ops/prometheus.test.ts).
 */
export class Metrics implements MigrationObserver {
  readonly registry = new Registry();

  private readonly hostCpu = this.gauge("ballast_host_cpu_load_ratio", "Smoothed host CPU load, fraction of capacity", ["host", "cell"]);
  private readonly hostMemUsed = this.gauge("ballast_host_memory_used_bytes", "Host memory in use", ["host", "cell"]);
  private readonly hostMem = this.gauge("ballast_host_memory_bytes", "Host memory capacity", ["host", "cell"]);
  private readonly hostMaint = this.gauge("ballast_host_maintenance", "1 while the host's maintenance flag exists", ["host", "cell"]);
  private readonly hostUp = this.gauge("ballast_host_reachable", "1 when the host answered the last sample", ["host", "cell"]);
  private readonly hostVms = this.gauge("ballast_host_vms", "VMs placed on the host in the last sample", ["host", "cell"]);
  private readonly hostsInMaint = this.gauge("ballast_hosts_in_maintenance", "Hosts with a maintenance flag");
  private readonly drainLeft = this.gauge("ballast_drain_vms_remaining", "VMs still on a host in maintenance", ["host"]);
  private readonly drainBlocked = this.gauge("ballast_drain_vms_blocked", "VMs on a host in maintenance that no destination can take", ["host"]);
  private readonly cellImbalance = this.gauge("ballast_cell_imbalance_ratio", "Standard deviation of host load across a cell", ["cell", "resource"]);
  private readonly plannedMoves = this.gauge("ballast_plan_moves", "Moves in the last plan");
  private readonly blockedMoves = this.gauge("ballast_plan_blocked", "Blocked moves in the last plan", ["policy"]);
  private readonly rounds = this.counter("ballast_rounds_total", "Planning rounds by outcome", ["outcome"]);
  private readonly roundDuration = new Histogram({
    name: "ballast_round_duration_seconds",
    help: "Time to sample and plan one round (migration excluded)",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly lastRound = this.gauge("ballast_last_round_timestamp_seconds", "When the last round finished (either outcome), Unix time");
  private readonly migrations = this.counter("ballast_migrations_total", "Finished migrations", ["policy", "kind", "outcome"]);
  private readonly migrationDuration = new Histogram({
    name: "ballast_migration_duration_seconds",
    help: "Wall time of migrations, intent to verification",
    labelNames: ["kind", "outcome"],
    buckets: [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [this.registry],
  });
  private readonly migrationDowntime = new Histogram({
    name: "ballast_migration_downtime_seconds",
    help: "Guest downtime of successful migrations",
    labelNames: ["kind"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120],
    registers: [this.registry],
  });
  private readonly migrationBytes = this.counter("ballast_migration_transferred_bytes_total", "Data copied by migrations", ["kind"]);
  private readonly inProgress = this.gauge("ballast_migration_in_progress", "1 while a migration runs");
  private readonly inFlightRemaining = this.gauge("ballast_migration_remaining_bytes", "Data left to copy in the running migration");
  private readonly escalations = this.counter("ballast_guard_escalations_total", "Convergence guard actions", ["step"]);
  private readonly refusals = this.counter("ballast_guard_refusals_total", "Moves refused by a guard, by refusal code", ["reason"]);
  private readonly driverErrors = this.counter("ballast_driver_errors_total", "Errors from hypervisor drivers", ["driver"]);
  private readonly buildInfo = this.gauge("ballast_build_info", "Always 1; the version label is the running ballast", ["version"]);

  /** With defaultMetrics, the standard process_* and nodejs_* metrics (process_start_time_seconds, …) are exported too, unprefixed. */
  constructor(defaultMetrics = true) {
    if (defaultMetrics) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of NONCONFORMING_DEFAULTS) this.registry.removeSingleMetric(name);
    }
    this.buildInfo.set({ version: packageVersion() }, 1);
    for (const outcome of ROUND_OUTCOMES) this.rounds.inc({ outcome }, 0);
    for (const step of Object.keys(GUARD_STEPS)) this.escalations.inc({ step }, 0);
  }

  private gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  private counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  /** Host gauges are reset each time so hosts that left the cluster leave the output too. */
  observeSnapshot(snapshot: ClusterSnapshot): void {
    for (const g of [this.hostCpu, this.hostMemUsed, this.hostMem, this.hostMaint, this.hostUp, this.hostVms, this.drainLeft]) g.reset();
    const vmsPerHost = new Map<string, number>();
    for (const vm of snapshot.vms) vmsPerHost.set(vm.host, (vmsPerHost.get(vm.host) ?? 0) + 1);
    let maint = 0;
    for (const h of snapshot.hosts) {
      const l = { host: h.name, cell: h.cell };
      this.hostCpu.set(l, h.cpuLoad);
      this.hostMemUsed.set(l, h.memoryUsedMiB * MIB);
      this.hostMem.set(l, h.memoryMiB * MIB);
      this.hostMaint.set(l, h.maintenance ? 1 : 0);
      this.hostUp.set(l, h.reachable ? 1 : 0);
      this.hostVms.set(l, vmsPerHost.get(h.name) ?? 0);
      if (h.maintenance) {
        maint++;
        this.drainLeft.set({ host: h.name }, vmsPerHost.get(h.name) ?? 0);
      }
    }
    this.hostsInMaint.set(maint);
    this.cellImbalance.reset();
    for (const c of imbalance(snapshot)) {
      this.cellImbalance.set({ cell: c.cell, resource: "cpu" }, c.cpu);
      this.cellImbalance.set({ cell: c.cell, resource: "memory" }, c.memory);
    }
  }

  observePlan(moves: readonly Move[], blocked: readonly BlockedMove[], drainBlocked: ReadonlyMap<string, number>): void {
    this.plannedMoves.set(moves.length);
    this.blockedMoves.reset();
    for (const b of blocked) this.blockedMoves.inc({ policy: b.policy });
    this.drainBlocked.reset();
    for (const [host, n] of drainBlocked) this.drainBlocked.set({ host }, n);
  }

  observeRound(outcome: "ok" | "error", seconds: number, finishedAtMs: number): void {
    this.rounds.inc({ outcome });
    this.roundDuration.observe(seconds);
    this.lastRound.set(finishedAtMs / 1000);
  }

  /**
   * `reason` is a refusal code, a bounded set: guards (cooldown, failure-backoff, host-backoff, host-hourly-limit,
   * return-cooldown, unreconciled, hourly-limit) and moves policies held back (not-sustained, min-improvement).
   */
  refused(reason: string): void {
    this.refusals.inc({ reason });
  }

  driverError(driver: string): void {
    this.driverErrors.inc({ driver });
  }

  onStart(): void {
    this.inProgress.set(1);
  }

  onStats(_move: Move, stats: JobStats): void {
    this.inFlightRemaining.set(stats.dataRemainingMiB * MIB);
  }

  onGuard(_move: Move, decision: GuardDecision & { kind: "act" }): void {
    this.escalations.inc({ step: decision.action.kind });
  }

  onFinish(move: Move, result: ExecutionResult): void {
    this.inProgress.set(0);
    this.inFlightRemaining.set(0);
    // The other outcomes of this policy and kind start at 0, so the first failure shows in increase().
    for (const outcome of Object.keys(MIGRATION_OUTCOMES)) this.migrations.inc({ policy: move.policy, kind: move.kind, outcome }, 0);
    this.migrations.inc({ policy: move.policy, kind: move.kind, outcome: result.status });
    this.migrationDuration.observe({ kind: move.kind, outcome: result.status }, result.durationMs / 1000);
    if (result.status === "succeeded" && result.downtimeMs !== undefined) {
      this.migrationDowntime.observe({ kind: move.kind }, result.downtimeMs / 1000);
    }
    if (result.dataMiB !== undefined) this.migrationBytes.inc({ kind: move.kind }, result.dataMiB * MIB);
  }
}
