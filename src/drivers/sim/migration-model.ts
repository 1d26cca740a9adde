import type { HostId, MigrationKind, VmId, VmState } from "../../model/index.js";
import { DriverError } from "../driver.js";
import type { GuardAction, JobStats, MigrationFlag, MigrationOutcome, MigrationPhase } from "../driver.js";

/**
 * One simulated migration job: pre-copy passes over a link of fixed bandwidth (QEMU's model), with the
 * guard's levers (raise downtime, post-copy, pause, abort), suspend mode (no LIVE) and offline moves.
 *
 * All times are integer epoch milliseconds. The job is advanced lazily: `advanceTo(t)` replays every event up
 * to t (pass ends, switch-over, injected failure), so the job gives the same result whether it is polled
 * every second or once at the end.
 */

/** Fixed part of the stop-and-copy pause (device state, switch of the network). */
export const SWITCHOVER_MS = 30;
/** Guest pause when switching to post-copy. */
export const POSTCOPY_SWITCH_MS = 50;
/** Time to move a shut-off VM's definition (no QEMU to stop or start). */
export const SHUTOFF_MOVE_MS = 200;

export type JobMode = "live" | "suspend" | "offline";

export type JobPhase =
  | "setup"
  | "disk"
  | "precopy"
  | "stop-and-copy"
  | "postcopy"
  | "suspended-copy"
  | "offline"
  | "ended";

export interface JobPlan {
  readonly id: number;
  readonly vm: VmId;
  readonly from: HostId;
  readonly to: HostId;
  readonly kind: MigrationKind;
  readonly flags: readonly MigrationFlag[];
  readonly mode: JobMode;
  readonly ramMiB: number;
  /** Local disk copied before memory (live-block) or during an offline move. */
  readonly diskMiB: number;
  readonly bandwidthMiBps: number;
  readonly maxDowntimeMs: number;
  /** QEMU start/stop around the move. */
  readonly overheadMs: number;
  readonly startedAt: number;
  /** Guest state when the job began; restored on abort or failure, kept on the destination on success. */
  readonly guestState: VmState;
  /** When the job fails on its own (seeded failure rate or an injected failure), or null. */
  readonly failAt: number | null;
  readonly failMessage: string;
}

/** What the job needs from the cluster: the guest's dirty rate and moving the guest. */
export interface JobEnv {
  /** Dirty rate of the running guest, MiB/s (the job zeroes it while the guest is paused). */
  dirtyRate(): number;
  /** Puts the guest on the source or destination host in the given state. */
  placeGuest(where: "source" | "destination", state: VmState): void;
  /** Called once when the job has ended, whatever the outcome. */
  ended(job: SimJob): void;
}

const copyMs = (mib: number, bw: number): number => (mib <= 0 ? 0 : Math.max(1, Math.ceil((mib * 1000) / bw)));

export class SimJob {
  phase: JobPhase = "setup";
  private phaseStart: number;
  private phaseEnd: number;
  /** MiB the current phase moves (pass size, pending data, …). */
  private phaseMiB = 0;
  /** Memory pass, 1-based once memory copying has begun. */
  pass = 0;
  /** Memory dirtied since the current pass began (MiB), accrued up to `accruedTo`. */
  private dirtied = 0;
  private accruedTo: number;
  /** Data moved by phases that have ended. */
  private processed = 0;
  maxDowntimeMs: number;
  /** When the guard paused the guest, or null. */
  pausedAt: number | null = null;
  private pausedMs = 0;
  private postcopyRequested = false;
  private postcopyDowntimeMs = 0;
  private failAt: number | null;
  outcome: MigrationOutcome | null = null;
  endedAt: number | null = null;
  readonly done: Promise<MigrationOutcome>;
  private resolveDone!: (o: MigrationOutcome) => void;

  constructor(
    readonly plan: JobPlan,
    private readonly env: JobEnv,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    this.maxDowntimeMs = plan.maxDowntimeMs;
    this.failAt = plan.failAt;
    this.phaseStart = plan.startedAt;
    this.accruedTo = plan.startedAt;
    if (plan.mode === "offline") {
      // The guest is shut down, its definition (and local disk) moved, then it is started on the destination.
      this.phase = "offline";
      this.phaseMiB = plan.diskMiB;
      const base = plan.guestState === "shutoff" ? SHUTOFF_MOVE_MS : plan.overheadMs;
      this.phaseEnd = plan.startedAt + base + copyMs(plan.diskMiB, plan.bandwidthMiBps);
      if (plan.guestState !== "shutoff") env.placeGuest("source", "shutoff");
    } else {
      this.phaseEnd = plan.startedAt + plan.overheadMs;
    }
  }

  get ended(): boolean {
    return this.phase === "ended";
  }

  get guestPausedByGuard(): boolean {
    return this.pausedAt !== null;
  }

  /** Time of the next thing that happens on its own, or Infinity once ended. */
  nextEventAt(): number {
    if (this.phase === "ended") return Infinity;
    return Math.min(this.phaseEnd, this.failAt ?? Infinity);
  }

  advanceTo(t: number): void {
    while (this.phase !== "ended") {
      const failAt = this.failAt;
      if (failAt !== null && failAt <= this.phaseEnd && failAt <= t) {
        this.accrue(failAt);
        this.finish(failAt, { status: "failed", error: this.plan.failMessage });
        return;
      }
      if (this.phaseEnd > t) {
        this.accrue(t);
        return;
      }
      this.accrue(this.phaseEnd);
      this.completePhase(this.phaseEnd);
    }
  }

  private guestDirtyRate(): number {
    if (this.pausedAt !== null || this.plan.guestState !== "running") return 0;
    return this.env.dirtyRate();
  }

  private accrue(t: number): void {
    if (t <= this.accruedTo) return;
    if (this.phase === "precopy") {
      this.dirtied = Math.min(this.plan.ramMiB, this.dirtied + (this.guestDirtyRate() * (t - this.accruedTo)) / 1000);
    }
    this.accruedTo = t;
  }

  private enter(phase: JobPhase, at: number, mib: number, durationMs: number): void {
    this.phase = phase;
    this.phaseStart = at;
    this.phaseEnd = at + durationMs;
    this.phaseMiB = mib;
    this.accruedTo = at;
  }

  private startPass(at: number, mib: number): void {
    this.pass++;
    this.dirtied = 0;
    this.enter("precopy", at, mib, copyMs(mib, this.plan.bandwidthMiBps));
    if (this.postcopyRequested) this.switchToPostcopy(at);
  }

  private completePhase(at: number): void {
    const { plan } = this;
    const bw = plan.bandwidthMiBps;
    switch (this.phase) {
      case "setup":
        if (plan.mode === "suspend") {
          // No LIVE flag: the guest is paused for one pass over everything.
          const total = plan.diskMiB + plan.ramMiB;
          this.pass = 1;
          if (plan.guestState === "running") this.env.placeGuest("source", "paused");
          this.enter("suspended-copy", at, total, copyMs(total, bw) + SWITCHOVER_MS);
        } else if (plan.diskMiB > 0) {
          this.pass = 1;
          this.enter("disk", at, plan.diskMiB, copyMs(plan.diskMiB, bw));
        } else {
          this.startPass(at, plan.ramMiB);
        }
        return;
      case "disk":
        this.processed += this.phaseMiB;
        this.pass = 0;
        this.startPass(at, plan.ramMiB);
        return;
      case "precopy": {
        this.processed += this.phaseMiB;
        const pending = Math.min(plan.ramMiB, this.dirtied);
        if ((pending * 1000) / bw <= this.maxDowntimeMs) {
          // QEMU's switch-over: what is left fits in the allowed downtime; stop the guest and copy it.
          this.enter("stop-and-copy", at, pending, copyMs(pending, bw) + SWITCHOVER_MS);
        } else {
          this.startPass(at, pending);
        }
        return;
      }
      case "stop-and-copy": {
        this.processed += this.phaseMiB;
        const stopMs = this.phaseEnd - this.phaseStart;
        const paused = this.pausedAt !== null;
        const downtimeMs = paused ? this.pausedMs + (at - (this.pausedAt ?? at)) : stopMs;
        // A guest the guard paused stays paused on the destination: the daemon must resume it.
        this.finishSucceeded(at, downtimeMs, paused ? "paused" : plan.guestState);
        return;
      }
      case "postcopy":
        this.processed += this.phaseMiB;
        this.finishSucceeded(at, this.postcopyDowntimeMs, plan.guestState);
        return;
      case "suspended-copy":
        this.processed += this.phaseMiB;
        this.finishSucceeded(at, plan.guestState === "running" ? this.phaseEnd - this.phaseStart : 0, plan.guestState);
        return;
      case "offline":
        this.processed += this.phaseMiB;
        this.finishSucceeded(at, plan.guestState === "shutoff" ? 0 : at - plan.startedAt, plan.guestState);
        return;
      case "ended":
        return;
    }
  }

  private finishSucceeded(at: number, downtimeMs: number, state: VmState): void {
    this.env.placeGuest("destination", state);
    this.end(at, { status: "succeeded", downtimeMs, dataMiB: round1(this.processed), passes: Math.max(1, this.pass) });
  }

  /** Ends the job with the guest back in its original state on the source. */
  private finish(at: number, outcome: MigrationOutcome): void {
    this.env.placeGuest("source", this.plan.guestState);
    this.end(at, outcome);
  }

  private end(at: number, outcome: MigrationOutcome): void {
    this.phase = "ended";
    this.endedAt = at;
    this.outcome = outcome;
    this.pausedAt = null;
    this.env.ended(this);
    this.resolveDone(outcome);
  }

  private copiedInPhase(t: number): number {
    const span = this.phaseEnd - this.phaseStart;
    if (span <= 0 || this.phase === "setup") return 0;
    return (this.phaseMiB * Math.min(span, Math.max(0, t - this.phaseStart))) / span;
  }

  /** Job statistics as libvirt would report them at t (after advanceTo(t)); null once ended. */
  stats(t: number): JobStats | null {
    if (this.phase === "ended") return null;
    const { plan } = this;
    const copied = this.copiedInPhase(t);
    const ram = plan.ramMiB;
    const disk = plan.diskMiB;
    let remaining: number;
    switch (this.phase) {
      case "setup":
        remaining = plan.mode === "offline" ? disk : disk + ram;
        break;
      case "disk":
        remaining = disk - copied + ram;
        break;
      default:
        remaining = this.phaseMiB - copied;
    }
    return {
      elapsedMs: t - plan.startedAt,
      phase: this.publicPhase(),
      dataTotalMiB: plan.mode === "offline" ? disk : disk + ram,
      dataProcessedMiB: round1(this.processed + copied),
      dataRemainingMiB: round1(Math.max(0, remaining)),
      memoryIteration: Math.max(1, this.pass),
      dirtyRateMiBps: round1(this.phase === "precopy" || this.phase === "setup" || this.phase === "disk" ? this.guestDirtyRate() : 0),
      bandwidthMiBps: plan.bandwidthMiBps,
      maxDowntimeMs: this.maxDowntimeMs,
    };
  }

  private publicPhase(): MigrationPhase {
    switch (this.phase) {
      case "stop-and-copy":
        return "stop-and-copy";
      case "postcopy":
        return "postcopy";
      case "suspended-copy":
        return "paused";
      case "offline":
        return "offline";
      default:
        return this.pausedAt !== null ? "paused" : "precopy";
    }
  }

  /** Applies a guard action at t (after advanceTo(t)). Throws DriverError the way libvirt refuses. */
  act(action: GuardAction, t: number): void {
    if (this.phase === "ended") {
      throw new DriverError(`no migration job is active for ${this.plan.vm}`, "NO_ACTIVE_JOB");
    }
    const { plan } = this;
    switch (action.kind) {
      case "raise-downtime":
        if (!Number.isFinite(action.ms) || action.ms <= 0) {
          throw new DriverError(`invalid downtime ${action.ms} ms`, "INVALID_ARGUMENT");
        }
        // Takes effect at the next switch-over check (the end of the current pass), as in QEMU.
        this.maxDowntimeMs = action.ms;
        return;
      case "post-copy":
        if (!plan.flags.includes("POSTCOPY")) {
          throw new DriverError(
            `migration of ${plan.vm} was not started with the POSTCOPY flag; post-copy cannot be switched on`,
            "POSTCOPY_NOT_ENABLED",
          );
        }
        if (plan.mode !== "live") {
          throw new DriverError(`post-copy needs a live migration (${plan.vm} is moving ${plan.mode})`, "OPERATION_INVALID");
        }
        if (this.phase === "setup" || this.phase === "disk") this.postcopyRequested = true;
        else if (this.phase === "precopy") this.switchToPostcopy(t);
        // stop-and-copy or already post-copy: nothing left to switch.
        return;
      case "pause":
        if (plan.mode === "offline") {
          throw new DriverError(`${plan.vm} is moving offline; there is no running guest to pause`, "OPERATION_INVALID");
        }
        if ((this.phase === "setup" || this.phase === "disk" || this.phase === "precopy") && this.pausedAt === null) {
          this.accrue(t);
          this.pausedAt = t;
          this.env.placeGuest("source", "paused");
        }
        return;
      case "abort":
        this.abort(action.reason, t);
        return;
    }
  }

  abort(reason: string, t: number): void {
    if (this.phase === "ended") return;
    if (this.phase === "postcopy") {
      throw new DriverError(
        `migration of ${this.plan.vm} is in post-copy: the guest already runs on ${this.plan.to}; it cannot be aborted`,
        "POSTCOPY_NO_ABORT",
      );
    }
    this.accrue(t);
    this.finish(t, { status: "aborted", reason });
  }

  /** Fails the job now (lost connection to a host). Post-copy jobs carry on: the guest already runs on the destination. */
  fail(message: string, t: number): void {
    if (this.phase === "ended" || this.phase === "postcopy") return;
    this.accrue(t);
    this.finish(t, { status: "failed", error: message });
  }

  /** The daemon resumed the guest it paused: it dirties memory again. */
  resumeGuest(t: number): void {
    if (this.phase === "suspended-copy") {
      throw new DriverError(`${this.plan.vm} is paused by a non-live migration; it resumes when the copy ends`, "MIGRATION_IN_PROGRESS");
    }
    if (this.pausedAt === null) return;
    this.accrue(t);
    this.pausedMs += t - this.pausedAt;
    this.pausedAt = null;
    this.env.placeGuest("source", this.plan.guestState);
  }

  private switchToPostcopy(t: number): void {
    this.accrue(t);
    const copied = this.copiedInPhase(t);
    const remaining = Math.min(this.plan.ramMiB, this.phaseMiB - copied + this.dirtied);
    this.processed += copied;
    if (this.pausedAt !== null) {
      this.pausedMs += t - this.pausedAt;
      this.pausedAt = null;
    }
    this.postcopyRequested = false;
    this.postcopyDowntimeMs = this.pausedMs + POSTCOPY_SWITCH_MS;
    this.failAt = null;
    this.enter("postcopy", t, remaining, POSTCOPY_SWITCH_MS + copyMs(remaining, this.plan.bandwidthMiBps));
    // The guest now runs on the destination; missing pages are pulled on demand.
    this.env.placeGuest("destination", this.plan.guestState);
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
