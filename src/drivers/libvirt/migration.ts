/**
 * One libvirt migration: virDomainMigrateToURI3 peer-to-peer from the source daemon to the destination's URI,
 * watched through job statistics and steered by the convergence guard's actions.
 */
import { DriverError } from "../driver.js";
import type { GuardAction, JobStats, MigrationFlag, MigrationHandle, MigrationOutcome, MigrationPhase, MigrationRequest } from "../driver.js";
import type { Clock } from "../../util/clock.js";
import { toDriverError } from "./errors.js";
import type { HostLink } from "./host-link.js";
import { numParam } from "./load.js";
import { DomainState, ErrorCode, JobType, LibvirtError, type JobStatsResult, type TypedParams } from "./native/index.js";

const MIB = 1024 * 1024;
/** How long migrate() waits for the hypervisor to show the job (QEMU starts on the destination first, ≈ 1.4 s). */
const ACCEPT_WAIT_MS = 15_000;
const ACCEPT_POLL_MS = 50;
/** How long a finished migration waits for its job-completed event before asking the destination. */
const EVENT_WAIT_MS = 1000;
/** How long stats() waits for the migrate call to return once the guest has left the source. */
const FINISH_WAIT_MS = 2000;
/** virDomainPausedReason VIR_DOMAIN_PAUSED_MIGRATION: QEMU stopped the guest for the switch-over. */
const PAUSED_MIGRATION = 2;

export interface MigrationContext {
  readonly clock: Clock;
  readonly source: HostLink;
  readonly dest: HostLink;
  readonly uuid: string;
  readonly request: MigrationRequest;
  /** The latest job-completed event's parameters for this domain since `since` (from either host). */
  completedEvent(since: number): TypedParams | undefined;
}

/**
 * The flags sent to libvirt. MigrateToURI3 with a destination libvirt URI is peer-to-peer (the source daemon
 * talks to the destination's), so PEER2PEER is always added — the executor's cold set (OFFLINE + PERSIST_DEST +
 * UNDEFINE_SOURCE) included.
 */
export function libvirtFlags(flags: readonly MigrationFlag[]): MigrationFlag[] {
  return flags.includes("PEER2PEER") ? [...flags] : [...flags, "PEER2PEER"];
}

type Settled = { readonly ok: true } | { readonly ok: false; readonly error: unknown };

export class LibvirtMigration implements MigrationHandle {
  readonly done: Promise<MigrationOutcome>;
  private readonly startedAt: number;
  private readonly offline: boolean;
  private settled: Settled | undefined;
  /** Settles when the migrate call returns, before the outcome is worked out. */
  private readonly finished: Promise<Settled>;
  private abortReason: string | undefined;
  private postcopy = false;
  private pausedAt: number | undefined;
  private maxDowntimeMs: number;
  private downtimeApplied: boolean;
  private last: JobStats | undefined;

  private constructor(
    private readonly ctx: MigrationContext,
    running: Promise<void>,
  ) {
    this.startedAt = ctx.clock.now();
    this.offline = ctx.request.flags.includes("OFFLINE");
    this.maxDowntimeMs = ctx.request.maxDowntimeMs;
    this.downtimeApplied = this.offline;
    this.finished = running.then(
      (): Settled => ({ ok: true }),
      (error: unknown): Settled => ({ ok: false, error }),
    );
    this.done = this.finished.then((s) => {
      this.settled = s;
      return this.outcome(s);
    });
  }

  /** Starts the migration; resolves once libvirt shows the job (or it already finished), rejects on refusal. */
  static async start(ctx: MigrationContext): Promise<LibvirtMigration> {
    const { request: req, source, dest, uuid, clock } = ctx;
    const conn = await source.openDedicated();
    const running = conn
      .migrate(uuid, dest.host.uri, {
        flags: libvirtFlags(req.flags),
        ...(req.bandwidthMiBps !== undefined && { bandwidthMiBps: Math.max(1, Math.round(req.bandwidthMiBps)) }),
      })
      .finally(() => conn.close());
    const m = new LibvirtMigration(ctx, running);
    let early: Settled | undefined;
    void running.then(
      () => (early = { ok: true }),
      (error: unknown) => (early = { ok: false, error }),
    );
    for (let waited = 0; waited < ACCEPT_WAIT_MS; waited += ACCEPT_POLL_MS) {
      await clock.sleep(ACCEPT_POLL_MS);
      if (early) break;
      const job = await source.call((c) => c.getJobStats(uuid)).catch(() => undefined);
      if (job && job.type !== JobType.NONE) break;
    }
    // A migration that failed before its job ever showed was refused (unsafe storage, no such host, …).
    if (early && !early.ok) throw toDriverError(early.error, req.from);
    if (!early) await m.applyDowntime();
    return m;
  }

  async stats(): Promise<JobStats | null> {
    if (this.settled) return null;
    const { source, uuid, clock } = this.ctx;
    let job: JobStatsResult;
    let paused = false;
    try {
      job = await source.call((c) => c.getJobStats(uuid));
      if (!this.offline) {
        const d = await source.call((c) => c.lookupDomain(uuid));
        paused = d.state === DomainState.PAUSED && d.reason === PAUSED_MIGRATION;
      }
    } catch (e) {
      if (this.settled) return null;
      // Once the guest has left, the source answers "no domain" or "not running" until the migrate call returns.
      if (e instanceof LibvirtError && (e.code === ErrorCode.NO_DOMAIN || e.code === ErrorCode.OPERATION_INVALID)) {
        await Promise.race([this.finished, clock.sleep(FINISH_WAIT_MS)]);
        return this.settled ? null : (this.last ?? null);
      }
      throw toDriverError(e, this.ctx.request.from);
    }
    if (this.settled) return null;
    const active = job.type === JobType.BOUNDED || job.type === JobType.UNBOUNDED;
    if (!active && this.last) {
      // The job was seen and has ended (completed, failed, cancelled): the migrate call is returning.
      await Promise.race([this.finished, clock.sleep(FINISH_WAIT_MS)]);
      return this.settled ? null : this.last;
    }
    if (!this.downtimeApplied) await this.applyDowntime();
    const p = job.params;
    const now = clock.now();
    const elapsed = numParam(p, "time_elapsed") ?? now - this.startedAt;
    const pageSize = numParam(p, "memory_page_size") ?? 4096;
    const dirtyPages = numParam(p, "memory_dirty_rate");
    const bps = numParam(p, "memory_bps");
    const sample: JobStats = {
      elapsedMs: Math.max(1, elapsed),
      phase: this.phase(paused),
      dataTotalMiB: mib(numParam(p, "data_total")),
      dataProcessedMiB: mib(numParam(p, "data_processed")),
      dataRemainingMiB: mib(numParam(p, "data_remaining")),
      memoryIteration: Math.max(1, numParam(p, "memory_iteration") ?? 1),
      ...(dirtyPages !== undefined && { dirtyRateMiBps: round1((dirtyPages * pageSize) / MIB) }),
      ...(bps !== undefined && { bandwidthMiBps: round1(bps / MIB) }),
      maxDowntimeMs: this.maxDowntimeMs,
    };
    if (active) this.last = sample;
    return sample;
  }

  async act(action: GuardAction): Promise<void> {
    if (this.settled) throw new DriverError(`no migration job is active for ${this.ctx.request.vm}`, "NO_ACTIVE_JOB");
    const { source, uuid, request, clock } = this.ctx;
    const run = async (fn: Parameters<HostLink["call"]>[0]): Promise<void> => {
      try {
        await source.call(fn);
      } catch (e) {
        throw toDriverError(e, request.from);
      }
    };
    switch (action.kind) {
      case "raise-downtime":
        if (!Number.isFinite(action.ms) || action.ms <= 0) throw new DriverError(`invalid downtime ${action.ms} ms`, "INVALID_ARGUMENT");
        await run((c) => c.migrateSetMaxDowntime(uuid, Math.round(action.ms)));
        this.maxDowntimeMs = action.ms;
        this.downtimeApplied = true;
        return;
      case "post-copy":
        if (!request.flags.includes("POSTCOPY")) {
          throw new DriverError(`migration of ${request.vm} was not started with the POSTCOPY flag; post-copy cannot be switched on`, "POSTCOPY_NOT_ENABLED");
        }
        await run((c) => c.migrateStartPostCopy(uuid));
        this.postcopy = true;
        return;
      case "pause":
        if (this.offline) throw new DriverError(`${request.vm} is moving offline; there is no running guest to pause`, "OPERATION_INVALID");
        await run((c) => c.suspend(uuid));
        this.pausedAt ??= clock.now();
        return;
      case "abort":
        await this.abort(action.reason);
        return;
    }
  }

  /** Aborts the job (the guard, or cancel() from another call path); the outcome becomes "aborted". */
  async abort(reason: string): Promise<void> {
    if (this.settled) return;
    this.abortReason ??= reason;
    try {
      await this.ctx.source.call((c) => c.abortJob(this.ctx.uuid));
    } catch (e) {
      // The job may have ended between the check and the call: then there is nothing left to abort.
      if (this.settled) return;
      throw toDriverError(e, this.ctx.request.from);
    }
  }

  /** libvirt forgets the downtime limit when no job runs, so it is set once the job is visible. */
  private async applyDowntime(): Promise<void> {
    try {
      await this.ctx.source.call((c) => c.migrateSetMaxDowntime(this.ctx.uuid, Math.round(this.maxDowntimeMs)));
      this.downtimeApplied = true;
    } catch {
      // Retried at the next stats poll.
    }
  }

  private phase(pausedForSwitchOver: boolean): MigrationPhase {
    if (this.offline) return "offline";
    if (this.postcopy) return "postcopy";
    if (this.pausedAt !== undefined || !this.ctx.request.flags.includes("LIVE")) return "paused";
    return pausedForSwitchOver ? "stop-and-copy" : "precopy";
  }

  private async outcome(s: Settled): Promise<MigrationOutcome> {
    const { clock, request } = this.ctx;
    if (!s.ok) {
      const err = s.error;
      if (this.abortReason !== undefined || (err instanceof LibvirtError && err.code === ErrorCode.OPERATION_ABORTED)) {
        return { status: "aborted", reason: this.abortReason ?? (err instanceof Error ? err.message : String(err)) };
      }
      return { status: "failed", error: toDriverError(err, request.from).message };
    }
    const endedAt = clock.now();
    const p = await this.completedStats();
    const guardPauseMs = this.pausedAt !== undefined ? endedAt - this.pausedAt : 0;
    const reported = p ? numParam(p, "downtime") : undefined;
    // Without completed statistics the allowed maximum is the honest upper bound of the switch-over.
    const switchOver = this.offline ? 0 : (reported ?? this.maxDowntimeMs);
    const dataBytes = p ? numParam(p, "data_processed") : undefined;
    return {
      status: "succeeded",
      downtimeMs: Math.round(Math.max(switchOver, guardPauseMs)),
      dataMiB: dataBytes !== undefined ? mib(dataBytes) : (this.last?.dataProcessedMiB ?? 0),
      passes: Math.max(1, (p ? numParam(p, "memory_iteration") : undefined) ?? this.last?.memoryIteration ?? 1),
    };
  }

  /**
   * The finished job's statistics: the destination's completed job (there at once for a pre-copy migration), else
   * the job-completed event (works after post-copy too), which may arrive later: waiting for it first cost ~1 s a move.
   */
  private async completedStats(): Promise<TypedParams | undefined> {
    const { clock, dest, uuid } = this.ctx;
    const r = await dest.call((c) => c.getJobStats(uuid, { completed: true })).catch(() => undefined);
    if (r && r.type === JobType.COMPLETED && Object.keys(r.params).length > 0) return r.params;
    for (let waited = 0; waited <= EVENT_WAIT_MS; waited += ACCEPT_POLL_MS) {
      const ev = this.ctx.completedEvent(this.startedAt);
      if (ev) return ev;
      if (this.offline) break;
      await clock.sleep(ACCEPT_POLL_MS);
    }
    return undefined;
  }
}

function mib(bytes: number | undefined): number {
  return bytes === undefined ? 0 : round1(bytes / MIB);
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
