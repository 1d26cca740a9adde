import type { MigrationKind, VmId } from "../../model/index.js";
import type { Clock } from "../../util/clock.js";
import { DriverError } from "../driver.js";
import type { GuardAction, JobStats, MigrationHandle, MigrationOutcome, MigrationPhase } from "../driver.js";
import type { PoolConnection } from "./pool.js";
import { describeError, xapiCode } from "./pool.js";
import type { TaskRecord } from "./records.js";
import { num } from "./records.js";

/** What a failed XAPI migration error means, for the history. */
const HINTS: Readonly<Record<string, string>> = {
  HOST_NOT_ENOUGH_FREE_MEMORY: "the destination host has not enough free memory for the VM",
  VM_REQUIRES_SR: "the destination cannot see a storage repository the VM's disks are on",
  VM_REQUIRES_NETWORK: "the destination has no network a VIF of the VM is on",
  HOST_DISABLED: "the destination host is disabled",
  VM_BAD_POWER_STATE: "the VM is not in a power state this operation accepts",
  SESSION_INVALID: "the XAPI session was lost",
  VM_MIGRATE_FAILED: "XAPI could not complete the migration",
  HOST_OFFLINE: "the destination host is offline",
};

/** A readable error for the history: XAPI's "CODE(params)" plus what it means, when known. */
export function explainXapiError(step: string, e: unknown): string {
  const code = xapiCode(e);
  const hint = code ? HINTS[code] : undefined;
  return `${step} failed: ${describeError(e)}${hint ? ` — ${hint}` : ""}`;
}

/** xen-api rejects a watched task that was cancelled with promise-toolbox's Cancel (not an Error, no code). */
function isCancelled(e: unknown): boolean {
  if (xapiCode(e) === "TASK_CANCELLED") return true;
  const ctor = (e as { constructor?: { name?: string } } | null)?.constructor?.name;
  return ctor === "Cancel";
}

export const STOP_AND_COPY_NOTE =
  "XAPI ran its own final stop-and-copy (it exposes no downtime control or figure; downtime recorded as 0)";

/** A task's failure as read from its record (xen-api's XapiError shape: code, params, "CODE(params)"). */
export class XapiTaskError extends Error {
  override readonly name = "XapiTaskError";
  constructor(
    readonly code: string,
    readonly params: readonly string[],
  ) {
    super(`${code}(${params.join(", ")})`);
  }
}

/** A running XAPI task this migration waits on. */
interface TaskRef {
  readonly pool: PoolConnection;
  readonly ref: string;
}

export interface XenJobPlan {
  readonly vm: VmId;
  readonly kind: MigrationKind;
  /** RAM plus any disk copied: what progress is a fraction of. */
  readonly totalMiB: number;
  /** precopy for live moves; offline for cold ones. */
  readonly phase: Extract<MigrationPhase, "precopy" | "offline">;
  /** Note for the history on success. */
  readonly note?: string;
}

/**
 * One XAPI migration: a sequence of steps, each either a plain call or an Async task whose progress is the
 * job's progress. XAPI reports only a task's progress (0–1), so the job statistics are one honest memory
 * pass: processed = progress × total, no dirty rate, no downtime control. Abort is task.cancel.
 */
export class XenMigration implements MigrationHandle {
  readonly done: Promise<MigrationOutcome>;
  private resolveDone!: (o: MigrationOutcome) => void;
  private task: TaskRef | undefined;
  private taskWaiter: { resolve(v: unknown): void; reject(e: unknown): void } | undefined;
  private progress = 0;
  private ended = false;
  private abortReason: string | undefined;
  readonly startedAt: number;

  constructor(
    readonly plan: XenJobPlan,
    private readonly clock: Clock,
    private readonly onEnd: (job: XenMigration) => void,
  ) {
    this.startedAt = clock.now();
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  get vm(): VmId {
    return this.plan.vm;
  }

  get finished(): boolean {
    return this.ended;
  }

  /** Starts an Async task; resolves with its ref once XAPI has accepted it. */
  async startTask(pool: PoolConnection, method: string, args: readonly unknown[]): Promise<string> {
    if (this.abortReason !== undefined) throw new DriverError(`migration of ${this.vm} was aborted: ${this.abortReason}`, "ABORTED");
    const ref = (await pool.client().call(`Async.${method}`, ...args)) as string;
    this.task = { pool, ref };
    this.progress = 0;
    return ref;
  }

  /**
   * Waits for the task started last; rejects with XAPI's error, or resolves with its result. The end is seen
   * through xen-api's event cache or, whichever comes first, through the fresh task record stats() reads, so
   * a stalled event feed cannot hide it.
   */
  async awaitTask(): Promise<unknown> {
    const t = this.task;
    if (!t) throw new Error("no task to wait for");
    const xapi = t.pool.client();
    const watched = xapi.watchTask(t.ref);
    watched.catch(() => undefined);
    const polled = new Promise((resolve, reject) => (this.taskWaiter = { resolve, reject }));
    try {
      return await Promise.race([watched, polled]);
    } finally {
      this.taskWaiter = undefined;
      this.task = undefined;
      this.progress = 1;
      // XAPI keeps finished tasks until destroyed (xen-api's callAsync does the same).
      xapi.call("task.destroy", t.ref).catch(() => undefined);
    }
  }

  /** A task record read by stats() that shows the task over settles awaitTask(). */
  private settleFromRecord(rec: TaskRecord): void {
    const w = this.taskWaiter;
    if (!w) return;
    if (rec.status === "success") w.resolve(rec.result);
    else if (rec.status === "failure" || rec.status === "cancelled") {
      const [code, ...params] = rec.error_info ?? [];
      w.reject(new XapiTaskError(code ?? (rec.status === "cancelled" ? "TASK_CANCELLED" : "INTERNAL_ERROR"), params));
    }
  }

  /** Ends the job once; later calls are ignored. */
  finish(outcome: MigrationOutcome): void {
    if (this.ended) return;
    this.ended = true;
    this.task = undefined;
    this.onEnd(this);
    this.resolveDone(outcome);
  }

  /** The outcome for an error thrown by a step. */
  outcomeOf(step: string, e: unknown): MigrationOutcome {
    if (isCancelled(e) || this.abortReason !== undefined) {
      return { status: "aborted", reason: this.abortReason ?? "the XAPI task was cancelled outside ballast" };
    }
    return { status: "failed", error: explainXapiError(step, e) };
  }

  succeeded(): MigrationOutcome {
    return {
      status: "succeeded",
      downtimeMs: 0,
      dataMiB: Math.round(this.plan.totalMiB * 10) / 10,
      passes: 1,
      ...(this.plan.note !== undefined && { note: this.plan.note }),
    };
  }

  async stats(): Promise<JobStats | null> {
    if (this.ended) return null;
    const t = this.task;
    if (t) {
      // A fresh read, not the event cache: progress events arrive only every few hundred ms.
      const rec = (await t.pool.client().call("task.get_record", t.ref)) as TaskRecord;
      this.settleFromRecord(rec);
      const p = num(rec.progress);
      if (Number.isFinite(p)) this.progress = Math.max(this.progress, Math.min(1, Math.max(0, p)));
    }
    if (this.ended) return null;
    const total = this.plan.totalMiB;
    const processed = Math.round(this.progress * total * 10) / 10;
    return {
      elapsedMs: Math.max(1, this.clock.now() - this.startedAt),
      phase: this.plan.phase,
      dataTotalMiB: total,
      dataProcessedMiB: processed,
      dataRemainingMiB: Math.round((total - processed) * 10) / 10,
      memoryIteration: 1,
    };
  }

  async act(action: GuardAction): Promise<void> {
    if (this.ended) throw new DriverError(`no migration job is active for ${this.vm}`, "NO_ACTIVE_JOB");
    if (action.kind !== "abort") {
      throw new DriverError(`XAPI offers no ${action.kind} control for a migration in progress; only abort (task.cancel)`, "UNSUPPORTED");
    }
    await this.abort(action.reason);
  }

  /** Cancels the task in flight; steps not yet started are skipped. */
  async abort(reason: string): Promise<void> {
    if (this.ended) return;
    this.abortReason ??= reason;
    const t = this.task;
    if (!t) return;
    try {
      await t.pool.client().call("task.cancel", t.ref);
    } catch (e) {
      // The task ended between our look and the cancel: the outcome says what happened.
      if (xapiCode(e) !== "HANDLE_INVALID" && xapiCode(e) !== "OPERATION_NOT_ALLOWED") throw e;
    }
  }
}
