import type { Driver, JobStats, MigrationOutcome, Placement } from "../drivers/driver.js";
import type { MigrationConfig } from "../config/schema.js";
import { copiedDiskMiB, predictMigration, type Move, type Vm } from "../model/index.js";
import type { Clock } from "../util/clock.js";
import { initialDowntimeMs, type ConvergenceGuard, type GuardDecision, type TakenAction } from "./convergence.js";
import { flagsFor, linkAssumptions } from "./migration-kind.js";

export type MigrationStatus = "succeeded" | "failed" | "aborted";

/** The part of the history store the executor writes: the crash-safe journal. */
export interface MigrationJournal {
  recordIntent(intent: {
    roundId: number | null;
    vm: Move["vm"];
    from: Move["from"];
    to: Move["to"];
    kind: Move["kind"];
    policy: string;
    reason: string;
    flags: readonly string[];
    startedAt: number;
    predictedMs?: number;
    details?: unknown;
  }): number;
  markRunning(id: number, at: number): void;
  appendMigrationEvent(id: number, event: { at: number; kind: "stats" | "guard" | "note"; data: unknown }): void;
  finishMigration(
    id: number,
    result: {
      status: MigrationStatus | "interrupted";
      finishedAt: number;
      downtimeMs?: number;
      dataMiB?: number;
      passes?: number;
      error?: string;
      actualMs?: number;
    },
  ): void;
}

/** Live view of the migration in flight, for metrics, logs and the status API. */
export interface MigrationObserver {
  onStart?(move: Move, migrationId: number): void;
  onStats?(move: Move, stats: JobStats): void;
  onGuard?(move: Move, decision: GuardDecision & { kind: "act" }): void;
  onFinish?(move: Move, result: ExecutionResult): void;
}

export interface ExecutionResult {
  readonly migrationId: number;
  readonly status: MigrationStatus;
  readonly durationMs: number;
  readonly downtimeMs?: number;
  readonly dataMiB?: number;
  readonly passes?: number;
  readonly error?: string;
}

export interface ExecutorDeps {
  readonly driver: Driver;
  readonly journal: MigrationJournal;
  readonly clock: Clock;
  readonly guard: ConvergenceGuard;
  readonly observer?: MigrationObserver;
}

/** How long verification waits for the VM to settle in one place after a job that did not end cleanly. */
const VERIFY_SETTLE_MS = 30_000;
const VERIFY_POLL_MS = 1000;

/** A journal write after the intent: its failure (disk full) must not stop the migration being watched and verified. */
function bestEffort(write: () => void): void {
  try {
    write();
  } catch {
    // the round's own bookkeeping fails too, and logs why
  }
}

/** Job statistics are journalled at most this often; guard decisions always. */
const STATS_JOURNAL_EVERY_MS = 10_000;

const describe = (p: readonly Placement[]): string =>
  p.length === 0 ? "nowhere" : p.map((x) => `${x.host} (${x.state})`).join(", ");

/**
 * Performs one migration at a time: journal the intent, re-check live state, migrate under the convergence
 * guard, verify where the VM ended up (DESIGN: data flow, rule 5).
 */
export class Executor {
  private busy = false;

  constructor(private readonly deps: ExecutorDeps) {}

  get inFlight(): boolean {
    return this.busy;
  }

  /** Durations are measured on the monotonic clock when there is one (a wall-clock step must not change them). */
  private mono(): number {
    return this.deps.clock.monotonicMs?.() ?? this.deps.clock.now();
  }

  /** `cell` is the VM's cell (for per-cell migration mode). */
  async execute(move: Move, vm: Vm, config: MigrationConfig, roundId: number | null, cell?: string): Promise<ExecutionResult> {
    if (this.busy) throw new Error("executor: a migration is already in flight");
    this.busy = true;
    try {
      return await this.run(move, vm, config, roundId, cell);
    } finally {
      this.busy = false;
    }
  }

  private async run(move: Move, vm: Vm, config: MigrationConfig, roundId: number | null, cell: string | undefined): Promise<ExecutionResult> {
    const { driver, journal, clock, observer } = this.deps;
    const flags = flagsFor(move.kind, config, cell);
    const prediction = predictMigration(vm, move.kind, { ...linkAssumptions(config), suspend: !flags.includes("LIVE") });
    const startedAt = clock.now();
    const startedMono = this.mono();
    const id = journal.recordIntent({
      roundId,
      vm: move.vm,
      from: move.from,
      to: move.to,
      kind: move.kind,
      policy: move.policy,
      reason: move.reason,
      flags,
      startedAt,
      ...(Number.isFinite(prediction.timeMs) && { predictedMs: Math.round(prediction.timeMs) }),
      // The guest's state at intent: a cold move stops a running guest, and reconciliation must start it again.
      details: { prediction, vmState: vm.state },
    });
    observer?.onStart?.(move, id);
    // From here on journal writes are best-effort (disk full): the migration must still be watched and verified.
    // A record that cannot be closed stays open, and reconciliation closes it once the disk takes writes again.
    const write = bestEffort;
    const finish = (r: Omit<ExecutionResult, "migrationId" | "durationMs">): ExecutionResult => {
      const finishedAt = clock.now();
      const result: ExecutionResult = { ...r, migrationId: id, durationMs: Math.round(this.mono() - startedMono) };
      write(() => journal.finishMigration(id, {
        status: r.status,
        finishedAt,
        actualMs: result.durationMs,
        ...(r.downtimeMs !== undefined && { downtimeMs: r.downtimeMs }),
        ...(r.dataMiB !== undefined && { dataMiB: r.dataMiB }),
        ...(r.passes !== undefined && { passes: r.passes }),
        ...(r.error !== undefined && { error: r.error }),
      }));
      observer?.onFinish?.(move, result);
      return result;
    };

    // Re-check live state: the plan was made on a sample that may be stale.
    let placements: readonly Placement[];
    try {
      placements = (await driver.locate(move.vm)).placements;
    } catch (e) {
      return finish({ status: "failed", error: `re-check failed: ${(e as Error).message}` });
    }
    const onSource = placements.length === 1 && placements[0]?.host === move.from;
    if (!onSource) {
      return finish({ status: "failed", error: `re-check: VM is on ${describe(placements)}, expected ${move.from}` });
    }

    let handle;
    try {
      handle = await driver.migrate({
        vm: move.vm,
        from: move.from,
        to: move.to,
        kind: move.kind,
        flags,
        maxDowntimeMs: initialDowntimeMs(config),
        ...(config.bandwidthMiBps !== undefined && { bandwidthMiBps: config.bandwidthMiBps }),
      });
    } catch (e) {
      return finish({ status: "failed", error: `migrate refused: ${(e as Error).message}` });
    }
    write(() => journal.markRunning(id, clock.now()));

    const history: JobStats[] = [];
    const taken: TakenAction[] = [];
    let pausedByUs = false;
    let lastJournalled = -Infinity;
    let outcome: MigrationOutcome;
    // The job's end wakes the loop at once (a guest we paused must be resumed without waiting for a poll).
    let endedAt: number | undefined;
    const done = handle.done
      .catch((e: unknown): MigrationOutcome => ({ status: "failed", error: String(e) }))
      .then((o) => {
        endedAt ??= this.mono();
        return o;
      });
    for (;;) {
      const tick = new AbortController();
      await Promise.race([clock.sleep(config.pollIntervalMs, tick.signal).catch(() => undefined), done]);
      tick.abort();
      const stats = endedAt === undefined ? await handle.stats().catch(() => undefined) : null;
      if (stats === null) {
        outcome = await done;
        break;
      }
      if (stats === undefined) continue; // a failed poll is not a decision input
      history.push(stats);
      observer?.onStats?.(move, stats);
      if (this.mono() - lastJournalled >= STATS_JOURNAL_EVERY_MS) {
        write(() => journal.appendMigrationEvent(id, { at: clock.now(), kind: "stats", data: stats }));
        lastJournalled = this.mono();
      }
      const decision = this.deps.guard({
        stats: history,
        memoryMiB: vm.memoryMiB,
        diskMiB: copiedDiskMiB(vm, move.kind),
        kind: move.kind,
        config,
        capabilities: handle.capabilities ?? driver.capabilities,
        taken,
      });
      if (decision.kind === "act") {
        taken.push({ action: decision.action, atSample: history.length });
        if (decision.action.kind === "pause") pausedByUs = true;
        write(() => journal.appendMigrationEvent(id, { at: clock.now(), kind: "guard", data: { ...decision, stats } }));
        observer?.onGuard?.(move, decision);
        await handle.act(decision.action).catch((e: unknown) => {
          write(() => journal.appendMigrationEvent(id, { at: clock.now(), kind: "note", data: { actFailed: String(e) } }));
        });
      }
    }

    if (outcome.status === "succeeded" && outcome.note !== undefined) {
      write(() => journal.appendMigrationEvent(id, { at: clock.now(), kind: "note", data: { hypervisor: outcome.note } }));
    }
    return finish(await this.verify(move, outcome, pausedByUs, id, endedAt ?? this.mono()));
  }

  /** Where the VM really is decides the recorded outcome; a guest we paused is never left paused. */
  private async verify(
    move: Move,
    outcome: MigrationOutcome,
    pausedByUs: boolean,
    id: number,
    endedAt: number,
  ): Promise<Omit<ExecutionResult, "migrationId" | "durationMs">> {
    const { driver, journal, clock } = this.deps;
    // A failed job takes a moment to be torn down (the destination's paused incoming domain goes away, a restarted
    // source daemon answers again; both seen on the lab): the outcome is judged where the VM settles.
    const expected = outcome.status === "succeeded" ? move.to : move.from;
    const settled = (p: readonly Placement[]): boolean => p.length === 1 && (p[0]?.host === expected || p[0]?.state !== "paused");
    let placements: readonly Placement[] | undefined;
    let lastError: unknown;
    for (const end = this.mono() + VERIFY_SETTLE_MS; ; await clock.sleep(VERIFY_POLL_MS)) {
      try {
        placements = (await driver.locate(move.vm)).placements;
        lastError = undefined;
      } catch (e) {
        lastError = e;
      }
      if ((lastError === undefined && placements !== undefined && settled(placements)) || this.mono() >= end) break;
    }
    if (placements === undefined) return { status: "failed", error: `verification failed: ${(lastError as Error).message}` };
    const [only, ...rest] = placements;
    // A guest paused by the guard stays paused until resumed: that wait is downtime too.
    let stillPausedMs = 0;
    if (only && rest.length === 0 && pausedByUs && only.state === "paused") {
      await driver.resume(move.vm, only.host).catch((e: unknown) => {
        bestEffort(() => journal.appendMigrationEvent(id, { at: clock.now(), kind: "note", data: { resumeFailed: String(e) } }));
      });
      stillPausedMs = Math.round(this.mono() - endedAt);
    }
    const where = describe(placements);
    if (outcome.status === "succeeded") {
      if (only?.host === move.to && rest.length === 0) {
        return { status: "succeeded", downtimeMs: outcome.downtimeMs + stillPausedMs, dataMiB: outcome.dataMiB, passes: outcome.passes };
      }
      return { status: "failed", error: `verification: hypervisor reported success but VM is on ${where}` };
    }
    const error = outcome.status === "failed" ? outcome.error : outcome.reason;
    const note = only?.host === move.from && rest.length === 0 ? "" : ` (VM is on ${where})`;
    return { status: outcome.status, error: error + note };
  }
}
