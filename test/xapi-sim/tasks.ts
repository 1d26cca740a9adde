/**
 * XAPI tasks: every long operation runs as a task whose progress advances with simulated time; the client
 * follows it through task records in its event cache. Faults can make the next task fail half-way or hang.
 */
import { randomUUID } from "node:crypto";
import type { Clock } from "../../src/util/clock.js";
import { asFault, fault, type XapiFault } from "./errors.js";
import type { SimFaults } from "./faults.js";
import { newRef, type SimPool } from "./pool.js";
import { NULL_REF, XapiDate, type XValue } from "./values.js";
import { formatValue } from "./xml-rpc.js";

/** The work behind a task, already validated. */
export interface TaskJob {
  /** Simulated ms the work takes. */
  readonly durationMs: number;
  /** Applies the outcome at 100 %; may throw an XapiFault. Returns the result value, or undefined for void. */
  complete(): XValue | undefined;
  /** Undoes what start-up took (memory reservations, current_operations) after failure or cancel. */
  abort(): void;
}

const HANG_AT = 0.4;
const FAIL_AT = 0.5;

interface Running {
  readonly ref: string;
  readonly pool: SimPool;
  readonly job: TaskJob;
  readonly startedAt: number;
  readonly hang: boolean;
  readonly failWith: XapiFault | undefined;
  readonly settled: (outcome: Outcome) => void;
}

export type Outcome = { result: XValue | undefined } | { error: XapiFault };

export class TaskRunner {
  private readonly running = new Map<string, Running>();
  private stopTicking: (() => void) | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly tickMs: number,
    private readonly faults: SimFaults,
  ) {}

  /** A bare pending task (task.create, e.g. for the client's HTTP requests). */
  create(pool: SimPool, label: string, description: string): string {
    const ref = newRef();
    pool.store.add("task", ref, {
      uuid: randomUUID(),
      name_label: label,
      name_description: description,
      status: "pending",
      progress: 0,
      result: "",
      error_info: [],
      created: new XapiDate(this.clock.now()),
      finished: new XapiDate(0),
      resident_on: pool.masterRef,
      subtask_of: NULL_REF,
      subtasks: [],
      type: "<none/>",
      allowed_operations: ["cancel"],
      current_operations: {},
      other_config: {},
      backtrace: "()",
    });
    return ref;
  }

  /**
   * Runs prepare() (validation + start-up) inside a new task named after method; a fault thrown by prepare
   * fails the task at once, as XAPI does for Async calls. Returns the task ref and its outcome.
   */
  start(
    pool: SimPool,
    method: string,
    prepare: (taskRef: string) => TaskJob,
    failNow?: XapiFault,
  ): { ref: string; outcome: Promise<Outcome> } {
    const ref = this.create(pool, method, "");
    const outcome = new Promise<Outcome>((settled) => {
      let job: TaskJob;
      try {
        if (failNow !== undefined) throw failNow;
        job = prepare(ref);
      } catch (e) {
        const error = asFault(e);
        this.fail(pool, ref, error);
        settled({ error });
        return;
      }
      // Instant work (host.disable, assert_can_migrate) completes now; task faults are for the long ones.
      const long = job.durationMs > 0;
      const r: Running = {
        ref,
        pool,
        job,
        startedAt: this.clock.now(),
        hang: long && this.faults.takeTaskHang(method),
        failWith: long ? this.faults.takeTaskFailure() : undefined,
        settled,
      };
      if (!long) return this.completeJob(r);
      this.running.set(ref, r);
      this.stopTicking ??= this.clock.every(this.tickMs, () => this.tick());
    });
    return { ref, outcome };
  }

  cancel(pool: SimPool, ref: string): void {
    pool.store.getOf("task", ref);
    const r = this.running.get(ref);
    if (r === undefined) return; // already finished: nothing to cancel
    this.finishRunning(r);
    r.job.abort();
    const error = fault.taskCancelled(ref);
    pool.store.set(ref, {
      status: "cancelled",
      error_info: [error.code, ...error.params],
      finished: new XapiDate(this.clock.now()),
    });
    r.settled({ error });
  }

  /** Ends a bare task (an HTTP handler finished the work it stood for). */
  succeed(pool: SimPool, ref: string): void {
    if (!pool.store.has(ref) || pool.store.get(ref).status !== "pending") return;
    pool.store.set(ref, { status: "success", progress: 1, finished: new XapiDate(this.clock.now()) });
  }

  /** Shutdown: synchronous callers still waiting get an answer instead of a connection that never ends. */
  stop(): void {
    this.stopTicking?.();
    this.stopTicking = undefined;
    for (const r of this.running.values()) r.settled({ error: fault.internal("simulator shutting down") });
    this.running.clear();
  }

  private tick(): void {
    const now = this.clock.now();
    for (const r of [...this.running.values()]) {
      let progress = Math.min(1, (now - r.startedAt) / r.job.durationMs);
      if (r.hang) progress = Math.min(progress, HANG_AT);
      if (r.failWith !== undefined && progress >= FAIL_AT) {
        this.finishRunning(r);
        r.job.abort();
        this.fail(r.pool, r.ref, r.failWith);
        r.settled({ error: r.failWith });
      } else if (progress >= 1) {
        this.finishRunning(r);
        this.completeJob(r);
      } else if (r.pool.store.has(r.ref) && progress !== r.pool.store.get(r.ref).progress) {
        r.pool.store.set(r.ref, { progress });
      }
    }
  }

  private completeJob(r: Running): void {
    let result: XValue | undefined;
    try {
      result = r.job.complete();
    } catch (e) {
      const error = asFault(e);
      r.job.abort();
      this.fail(r.pool, r.ref, error);
      r.settled({ error });
      return;
    }
    // A task destroyed while running still does its work in XAPI; only its record is gone.
    if (r.pool.store.has(r.ref)) r.pool.store.set(r.ref, {
      status: "success",
      progress: 1,
      // XML-RPC value text on every transport, as XAPI stores it.
      result: result === undefined ? "" : formatValue(result),
      finished: new XapiDate(this.clock.now()),
    });
    r.settled({ result });
  }

  private fail(pool: SimPool, ref: string, e: XapiFault): void {
    if (pool.store.has(ref)) pool.store.set(ref, {
      status: "failure",
      error_info: [e.code, ...e.params],
      finished: new XapiDate(this.clock.now()),
    });
  }

  private finishRunning(r: Running): void {
    this.running.delete(r.ref);
    if (this.running.size === 0) {
      this.stopTicking?.();
      this.stopTicking = undefined;
    }
  }
}
