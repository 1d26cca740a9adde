import type { Logger } from "pino";
import type { Driver } from "../drivers/driver.js";
import type { ClusterSnapshot, HostId, Move, VmId } from "../model/index.js";
import { imbalance } from "../model/index.js";
import type { ResolvedConfig } from "../config/index.js";
import { enabledPolicies } from "../policies/registry.js";
import type { HistoryStore } from "../store/index.js";
import type { Clock } from "../util/clock.js";
import { ballastGuard, type ConvergenceGuard } from "./convergence.js";
import { Executor, type ExecutionResult, type MigrationObserver } from "./executor.js";
import { FlagWatcher, type MaintenanceFlag } from "./flags.js";
import { moveGuards } from "./guards.js";
import { LoadHistory } from "./load-history.js";
import type { Metrics } from "./metrics.js";
import { plan, type Plan } from "./planner.js";
import { reconcile } from "./reconcile.js";
import type { JobStats } from "../drivers/driver.js";

export interface DaemonDeps {
  readonly config: ResolvedConfig;
  readonly driver: Driver;
  readonly store: HistoryStore;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly guard?: ConvergenceGuard;
  /** Lifecycle listeners (sd_notify: READY after the first sample, STATUS after each round). */
  readonly hooks?: DaemonHooks;
}

export interface DaemonHooks {
  /** The driver sampled the cluster (maintenance flags overlaid). */
  sampled?(snapshot: ClusterSnapshot): void;
  roundFinished?(summary: RoundSummary): void;
}

/** What SIGTERM does to a migration in flight (config `shutdown`). */
export interface ShutdownPolicy {
  readonly action: "wait" | "abort";
  readonly timeoutMs: number;
}

export interface RoundSummary {
  readonly roundId: number;
  readonly trigger: string;
  readonly startedAt: number;
  readonly durationMs: number;
  readonly outcome: "ok" | "error";
  readonly moves: number;
  readonly blocked: number;
  readonly executed?: { readonly move: Move; readonly result: ExecutionResult };
  readonly error?: string;
}

export interface InFlight {
  readonly move: Move;
  readonly migrationId: number;
  readonly startedAt: number;
  stats?: JobStats;
  readonly guardActions: string[];
}

/** Overlays maintenance flags on the driver's sample (flags are the operator's truth, not the hypervisor's). */
export function withMaintenance(snapshot: ClusterSnapshot, flags: ReadonlyMap<HostId, MaintenanceFlag>): ClusterSnapshot {
  if (flags.size === 0) return snapshot;
  return {
    ...snapshot,
    hosts: snapshot.hosts.map((h) => {
      const f = flags.get(h.name);
      return f ? { ...h, maintenance: true, ...(f.reason && { maintenanceReason: f.reason }) } : h;
    }),
  };
}

/**
 * The daemon loop: rounds run one at a time (triggered by the schedule, a flag change, or by hand), each
 * samples, plans and performs at most one migration. When more moves are waiting, the next round follows at once.
 */
export class Daemon {
  private config: ResolvedConfig;
  private readonly executor: Executor;
  private readonly history: LoadHistory;
  private readonly flags: FlagWatcher;
  private running: Promise<void> | undefined;
  private pending: string | undefined;
  private stopping = false;
  private lastBlocked = new Map<string, string>();
  private unknownFlagHosts = new Set<HostId>();
  /** Hosts left disabled on the hypervisor for a flag that is gone have been looked for (once per start). */
  private staleMaintenanceChecked = false;
  /** The last flag change's handling (driver told, round run): rescanFlags waits for it. */
  private flagHandling: Promise<void> = Promise.resolve();
  readonly startedAt: number;
  lastSnapshot: ClusterSnapshot | undefined;
  lastPlan: Plan | undefined;
  lastRound: RoundSummary | undefined;
  inFlight: InFlight | undefined;
  roundsRun = 0;
  /** Last sign of progress (round started, sampled or ended; migration polled): the watchdog's input. */
  lastActivityAt: number;

  constructor(private readonly deps: DaemonDeps) {
    this.config = deps.config;
    this.startedAt = deps.clock.now();
    this.lastActivityAt = this.startedAt;
    this.history = new LoadHistory(this.historyWindowMs());
    const observer: MigrationObserver = {
      onStart: (move, migrationId) => {
        this.inFlight = { move, migrationId, startedAt: deps.clock.now(), guardActions: [] };
        deps.metrics.onStart();
        deps.log.info({ vm: move.vm, host: move.from, to: move.to, policy: move.policy, kind: move.kind, migration: migrationId }, "migration started");
      },
      onStats: (move, stats) => {
        this.lastActivityAt = deps.clock.now();
        if (this.inFlight) this.inFlight.stats = stats;
        deps.metrics.onStats(move, stats);
      },
      onGuard: (move, decision) => {
        this.inFlight?.guardActions.push(decision.action.kind);
        deps.metrics.onGuard(move, decision);
        deps.log.warn({ vm: move.vm, host: move.from, step: decision.action.kind, reason: decision.reason }, "convergence guard acted");
      },
      onFinish: (move, result) => {
        this.inFlight = undefined;
        deps.metrics.onFinish(move, result);
        const line = { vm: move.vm, host: move.from, to: move.to, policy: move.policy, kind: move.kind, outcome: result.status, durationMs: result.durationMs, downtimeMs: result.downtimeMs, error: result.error };
        if (result.status === "succeeded") deps.log.info(line, "migration finished");
        else deps.log.error(line, "migration did not succeed");
      },
    };
    this.executor = new Executor({ driver: deps.driver, journal: deps.store, clock: deps.clock, guard: deps.guard ?? ballastGuard, observer });
    this.flags = new FlagWatcher(
      this.config.maintenanceDir,
      deps.clock,
      this.config.flagRescanSeconds * 1000,
      (change) => {
        const at = deps.clock.now();
        for (const f of change.set) {
          this.record((store) => store.recordEvent({ at, kind: "flag-set", host: f.host, message: f.reason || "maintenance flag set" }));
          deps.log.info({ host: f.host, reason: f.reason }, "maintenance flag set");
        }
        for (const h of change.cleared) {
          this.record((store) => store.recordEvent({ at, kind: "flag-cleared", host: h, message: "maintenance flag removed" }));
          deps.log.info({ host: h }, "maintenance flag cleared");
        }
        // The hypervisor hears of the drain first (XAPI: host.disable), so the round plans on what it will do.
        this.flagHandling = this.applyMaintenance(change.set.map((f) => f.host), change.cleared).then(() => this.trigger("flag"));
      },
      (e) => {
        deps.log.warn({ err: e, dir: this.config.maintenanceDir }, "maintenance flag scan failed; flags in force are kept");
        this.record((store) => store.recordEvent({ at: deps.clock.now(), kind: "flag-scan-failed", message: e instanceof Error ? e.message : String(e) }));
      },
      (entries) => {
        for (const { name, why } of entries) {
          deps.log.warn({ entry: name, why }, "maintenance flag directory entry ignored");
          this.record((store) => store.recordEvent({ at: deps.clock.now(), kind: "flag-ignored", message: `${name}: ${why}` }));
        }
      },
    );
  }

  /** Tells the driver about hosts entering and leaving maintenance; a failure is logged and recorded, never fatal. */
  private async applyMaintenance(set: readonly HostId[], cleared: readonly HostId[]): Promise<void> {
    const { driver, log, clock } = this.deps;
    if (!driver.setMaintenance) return;
    const calls = [...set.map((h) => [h, true] as const), ...cleared.map((h) => [h, false] as const)];
    for (const [host, on] of calls) {
      try {
        await driver.setMaintenance(host, on);
      } catch (e) {
        const message = `could not ${on ? "disable" : "re-enable"} ${host} on the hypervisor: ${e instanceof Error ? e.message : String(e)}`;
        log.warn({ err: e, host }, message);
        this.record((store) => store.recordEvent({ at: clock.now(), kind: "maintenance-failed", host, message }));
      }
    }
  }

  /**
   * A flag removed while no instance ran, or while one was killed before telling the hypervisor, leaves the
   * host disabled there for good. Hosts disabled but not flagged go to setMaintenance(off), which re-enables
   * only hosts ballast itself disabled. Not while the flag directory cannot be read: that is not an undrain.
   */
  private async releaseStaleMaintenance(sampled: ClusterSnapshot): Promise<void> {
    if (this.flags.scanFailing) return;
    this.staleMaintenanceChecked = true;
    const stale = sampled.hosts.filter((h) => h.disabled === true && !this.flags.flags.has(h.name)).map((h) => h.name);
    if (stale.length > 0) await this.applyMaintenance([], stale);
  }

  /** A flag for a host the driver does not report is kept (the host may come back) and reported once. */
  private reportUnknownFlags(snapshot: ClusterSnapshot): void {
    const { store, log, clock } = this.deps;
    const known = new Set<HostId>(snapshot.hosts.map((h) => h.name));
    const unknown = new Set([...this.flags.flags.keys()].filter((h) => !known.has(h)));
    for (const host of unknown) {
      if (this.unknownFlagHosts.has(host)) continue;
      log.warn({ host }, "maintenance flag names a host the cluster does not have");
      store.recordEvent({ at: clock.now(), kind: "flag-unknown-host", host, message: "maintenance flag for a host not in the cluster (kept in case it appears)" });
    }
    this.unknownFlagHosts = unknown;
  }

  private historyWindowMs(): number {
    // The sustain window (at least two minutes: the step a rise is read from), plus the points just before it.
    return Math.max(this.config.policies["hotspot-relief"].sustainMinutes * 60_000, 2 * 60_000) + 2 * 60_000;
  }

  get maintenanceFlags(): ReadonlyMap<HostId, MaintenanceFlag> {
    return this.flags.flags;
  }

  get currentConfig(): ResolvedConfig {
    return this.config;
  }

  /** Reconciles unfinished journal records, then watches flags. The caller triggers the first round. */
  async start(): Promise<void> {
    const { store, clock, driver, log } = this.deps;
    store.recordEvent({ at: clock.now(), kind: "started", message: `ballast started (driver ${driver.name})` });
    await reconcile({ store, driver, clock, log });
    this.history.seed(store.hostLoadHistory(clock.now() - this.historyWindowMs()));
    await this.flags.start();
  }

  /**
   * Re-reads the maintenance flags now, as the directory watch would, and resolves once the round a change
   * triggers has run (`ballast simulate` drains on a virtual clock, where neither watch nor rescan timer keeps pace).
   */
  async rescanFlags(): Promise<void> {
    await this.flags.rescan();
    await this.flagHandling;
  }

  /** Takes effect at the next round. */
  setConfig(config: ResolvedConfig): void {
    this.config = config;
    this.history.setWindow(this.historyWindowMs());
  }

  /** Runs a round now, or right after the one in progress; resolves when no round is left to run. */
  trigger(reason: string): Promise<void> {
    if (this.stopping) return Promise.resolve();
    if (this.running) {
      this.pending = reason;
      return this.running;
    }
    this.running = (async () => {
      let next: string | undefined = reason;
      while (next !== undefined && !this.stopping) {
        this.pending = undefined;
        const trigger: string = next;
        const summary: RoundSummary = await this.round(trigger).catch((e: unknown) => this.unrecordedRound(trigger, e));
        const more = summary.executed?.result.status === "succeeded" && summary.moves > 1;
        next = this.pending ?? (more ? "follow-up" : undefined);
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async round(trigger: string): Promise<RoundSummary> {
    const { store, clock, log, metrics, driver } = this.deps;
    const config = this.config;
    const startedAt = clock.now();
    this.lastActivityAt = startedAt;
    const roundId = store.startRound({ startedAt, trigger });
    this.roundsRun++;
    let summary: RoundSummary;
    try {
      // Records left open by a previous instance that could not be closed at start-up are retried here.
      await reconcile({ store, driver, clock, log });
      let sampled: ClusterSnapshot;
      try {
        sampled = await driver.sample();
      } catch (e) {
        metrics.driverError(driver.name);
        throw e;
      }
      if (!this.staleMaintenanceChecked) await this.releaseStaleMaintenance(sampled);
      const snapshot = withMaintenance(sampled, this.flags.flags);
      this.reportUnknownFlags(sampled);
      const now = clock.now();
      this.history.record(snapshot, now);
      store.recordSamples(
        now,
        snapshot.hosts.map((h) => ({ host: h.name, cell: h.cell, cpuLoad: h.cpuLoad, memoryUsedMiB: h.memoryUsedMiB, memoryMiB: h.memoryMiB, maintenance: h.maintenance })),
      );
      store.recordImbalance(now, imbalance(snapshot).map((c) => ({ cell: c.cell, cpu: c.cpu, memory: c.memory })));
      store.pruneSamples(now - config.history.sampleRetentionHours * 3_600_000);
      store.pruneRounds(now - config.history.roundRetentionDays * 86_400_000);
      metrics.observeSnapshot(snapshot);
      this.lastSnapshot = snapshot;
      this.lastActivityAt = clock.now();
      this.hook(() => this.deps.hooks?.sampled?.(snapshot));

      const guards = moveGuards(store, config.guards, now);
      const result = plan(snapshot, {
        policies: enabledPolicies(config.policies),
        thresholds: config.thresholds,
        migration: config.migration,
        history: this.history.view,
        vmLoadBefore: this.history.vmLoadBefore,
        nowMs: now,
        exclude: guards.exclude,
        excludeHost: guards.excludeHost,
        excludeDestination: guards.excludeDestination,
        tags: config.policies.affinity.tags,
      });
      this.lastPlan = result;
      for (const r of guards.refusals()) metrics.refused(r);
      // Moves a policy held back (not sustained yet, below minImprovement) count as refusals too.
      for (const n of result.notes ?? []) if (n.held) metrics.refused(n.code);
      metrics.observePlan(result.moves, result.blocked, this.drainBlocked(snapshot, result));
      this.recordBlocked(roundId, result, now);
      const planMs = clock.now() - startedAt;
      metrics.observeRound("ok", planMs / 1000, clock.now());

      let executed: RoundSummary["executed"];
      const move = result.moves[0];
      if (move && !this.stopping) {
        const limit = guards.hourlyLimitReached();
        if (limit) {
          metrics.refused("hourly-limit");
          store.recordDecision({ roundId, at: now, outcome: "refused", vm: move.vm, from: move.from, to: move.to, kind: move.kind, policy: move.policy, reason: limit });
          log.info({ vm: move.vm, host: move.from, policy: move.policy, outcome: "refused", reason: limit }, "move refused by guard");
        } else {
          const vm = snapshot.vms.find((v) => v.id === move.vm);
          if (!vm) throw new Error(`planned VM ${move.vm} is not in the snapshot`);
          store.recordDecision({ roundId, at: now, outcome: "moved", vm: move.vm, from: move.from, to: move.to, kind: move.kind, policy: move.policy, reason: move.reason });
          log.info({ vm: move.vm, host: move.from, to: move.to, policy: move.policy, kind: move.kind, outcome: "chosen", reason: move.reason }, "decision");
          const cell = snapshot.hosts.find((h) => h.name === move.from)?.cell;
          executed = { move, result: await this.executor.execute(move, vm, config.migration, roundId, cell) };
        }
      }
      summary = { roundId, trigger, startedAt, durationMs: clock.now() - startedAt, outcome: "ok", moves: result.moves.length, blocked: result.blocked.length, ...(executed && { executed }) };
      store.finishRound(roundId, { finishedAt: clock.now(), outcome: "ok", planned: result.moves.length, blocked: result.blocked.length, summary: this.summaryLine(summary) });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      log.error({ err: e, trigger }, "round failed");
      metrics.observeRound("error", (clock.now() - startedAt) / 1000, clock.now());
      summary = { roundId, trigger, startedAt, durationMs: clock.now() - startedAt, outcome: "error", moves: 0, blocked: 0, error };
      this.record((store) => store.finishRound(roundId, { finishedAt: clock.now(), outcome: "error", planned: 0, blocked: 0, error }));
    }
    this.lastRound = summary;
    this.lastActivityAt = clock.now();
    this.hook(() => this.deps.hooks?.roundFinished?.(summary));
    return summary;
  }

  private summaryLine(s: RoundSummary): string {
    const ex = s.executed ? `; ${s.executed.move.vm} ${s.executed.move.from}→${s.executed.move.to} ${s.executed.result.status}` : "";
    return `${s.moves} planned, ${s.blocked} blocked${ex}`;
  }

  /** Blocked moves on hosts in maintenance, per host (drain progress). */
  private drainBlocked(snapshot: ClusterSnapshot, result: Plan): Map<string, number> {
    const vmHost = new Map<VmId, HostId>(snapshot.vms.map((v) => [v.id, v.host]));
    const out = new Map<string, number>();
    for (const b of result.blocked) {
      const host = vmHost.get(b.vm);
      if (host && this.flags.flags.has(host)) out.set(host, (out.get(host) ?? 0) + 1);
    }
    return out;
  }

  /** Blocked decisions are recorded when they appear or their reason changes, not every round. */
  private recordBlocked(roundId: number, result: Plan, at: number): void {
    const now = new Map<string, string>();
    for (const b of result.blocked) {
      const key = `${b.policy}/${b.vm}`;
      now.set(key, b.reason);
      if (this.lastBlocked.get(key) !== b.reason) {
        this.deps.store.recordDecision({ roundId, at, outcome: "blocked", vm: b.vm, policy: b.policy, reason: b.reason });
        this.deps.log.warn({ vm: b.vm, policy: b.policy, outcome: "blocked", reason: b.reason }, "move blocked");
      }
    }
    this.lastBlocked = now;
  }

  /** History writes outside a round's own bookkeeping are best-effort: a full or read-only disk must not end the daemon. */
  private record(write: (store: HistoryStore) => void): void {
    try {
      write(this.deps.store);
    } catch (e) {
      this.deps.log.error({ err: e }, "could not write to the history database");
    }
  }

  /** A round whose start could not even be recorded (disk full): counted and logged, never an unhandled rejection. */
  private unrecordedRound(trigger: string, e: unknown): RoundSummary {
    const { clock, log, metrics } = this.deps;
    const error = e instanceof Error ? e.message : String(e);
    log.error({ err: e, trigger }, "round failed");
    metrics.observeRound("error", 0, clock.now());
    this.lastRound = { roundId: 0, trigger, startedAt: clock.now(), durationMs: 0, outcome: "error", moves: 0, blocked: 0, error };
    return this.lastRound;
  }

  /** A listener's failure is logged, never a round's failure. */
  private hook(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.deps.log.warn({ err: e }, "lifecycle hook failed");
    }
  }

  /**
   * Stops scheduling (no new round, no new migration) and waits for the round in progress to end. A
   * migration in flight is aborted at once (`abort`), or allowed up to `timeoutMs` to finish and aborted
   * then (`wait`). Aborting goes through the driver (`cancel`), so the guest stays on its source and the
   * executor still verifies and journals the outcome before this resolves.
   */
  async stop(policy: ShutdownPolicy = { action: "wait", timeoutMs: Infinity }): Promise<void> {
    const { clock, log } = this.deps;
    this.stopping = true;
    this.flags.stop();
    const running = this.running;
    if (running && this.inFlight) {
      if (policy.action === "abort") {
        await this.abortInFlight("shutdown.action is abort");
      } else {
        const f = this.inFlight;
        log.info({ vm: f.move.vm, host: f.move.from, to: f.move.to, migration: f.migrationId, timeoutSec: policy.timeoutMs / 1000 }, "waiting for the migration in flight before stopping");
        const timer = new AbortController();
        const timedOut = Number.isFinite(policy.timeoutMs)
          ? await Promise.race([running.then(() => false), clock.sleep(policy.timeoutMs, timer.signal).then(() => true, () => false)])
          : (await running, false);
        timer.abort();
        if (timedOut) await this.abortInFlight(`still running after shutdown.stopTimeoutSec (${policy.timeoutMs / 1000} s)`);
      }
    }
    await this.running;
    this.record((store) => store.recordEvent({ at: clock.now(), kind: "stopped", message: "ballast stopped" }));
  }

  /** Asks the driver to abort the migration in flight (no-op without one); the executor records the outcome. */
  async abortInFlight(reason: string): Promise<void> {
    const { driver, clock, log } = this.deps;
    const f = this.inFlight;
    if (!f) return;
    log.warn({ vm: f.move.vm, host: f.move.from, to: f.move.to, migration: f.migrationId, reason }, "aborting the migration in flight");
    // Recorded if the disk allows; the abort itself must happen either way.
    this.record((store) => store.appendMigrationEvent(f.migrationId, { at: clock.now(), kind: "note", data: { shutdown: `aborted: ${reason}` } }));
    this.record((store) => store.recordEvent({ at: clock.now(), kind: "shutdown-abort", host: f.move.from, message: `aborting migration #${f.migrationId} of ${f.move.vm}: ${reason}` }));
    await driver.cancel(f.move.vm).catch((e: unknown) => log.error({ err: e, vm: f.move.vm, migration: f.migrationId }, "could not abort the migration; waiting for it to end"));
  }

  get busy(): boolean {
    return this.running !== undefined;
  }
}
