import type { ClusterSnapshot, HostId, MigrationKind, VmId, VmState } from "../model/index.js";

/**
 * The one narrow interface every hypervisor driver implements (DESIGN rule 5). The simulator, libvirt and
 * XenServer drivers all pass test/contract/driver-contract.ts.
 */
export interface Driver {
  readonly name: string;
  readonly capabilities: DriverCapabilities;
  /** Inventory and load of every host and VM this driver manages. Maintenance flags are overlaid by the daemon. */
  sample(): Promise<ClusterSnapshot>;
  /** Starts a migration; resolves once the hypervisor has accepted it. */
  migrate(request: MigrationRequest): Promise<MigrationHandle>;
  /** Where the VM exists right now (used to re-check before, verify after, and reconcile after a crash). */
  locate(vm: VmId): Promise<VmLocation>;
  /** Aborts any migration job of this VM, including one started by a previous daemon instance. */
  cancel(vm: VmId): Promise<void>;
  /** Resumes a guest paused on host (the daemon never leaves a VM paused by its own guard). */
  resume(vm: VmId, host: HostId): Promise<void>;
  /**
   * Optional, for drivers whose cold moves stop a running guest (XAPI: shutdown, move, start): starts a guest
   * left shut off on host by a cold move that did not finish, e.g. because the daemon died. No-op if it runs.
   */
  start?(vm: VmId, host: HostId): Promise<void>;
  /**
   * Optional: tells the hypervisor a host is (on) or no longer (off) being drained, e.g. XAPI host.disable so it
   * places nothing new there. Idempotent; a host disabled by someone else is left as it is.
   */
  setMaintenance?(host: HostId, on: boolean): Promise<void>;
  close(): Promise<void>;
}

export interface DriverCapabilities {
  /** The driver can change the allowed downtime during a migration (libvirt yes, XAPI no). */
  readonly setDowntime: boolean;
  readonly postCopy: boolean;
  readonly pauseGuest: boolean;
  /** Job statistics report dirty rate. */
  readonly dirtyRate: boolean;
}

/** libvirt's names for the flags of virDomainMigrateToURI3; other drivers map what applies. */
export const MIGRATION_FLAGS = [
  "LIVE",
  "PEER2PEER",
  "PERSIST_DEST",
  "UNDEFINE_SOURCE",
  "NON_SHARED_DISK",
  "AUTO_CONVERGE",
  "POSTCOPY",
  "OFFLINE",
] as const;
export type MigrationFlag = (typeof MIGRATION_FLAGS)[number];

export interface MigrationRequest {
  readonly vm: VmId;
  readonly from: HostId;
  readonly to: HostId;
  readonly kind: MigrationKind;
  /** Effective flag set (the executor derives it from kind and config). No LIVE = guest suspended for the copy. */
  readonly flags: readonly MigrationFlag[];
  /** Initial allowed downtime; the convergence guard may raise it. */
  readonly maxDowntimeMs: number;
  /** Link bandwidth cap, if configured. */
  readonly bandwidthMiBps?: number;
}

export type MigrationPhase = "precopy" | "stop-and-copy" | "postcopy" | "paused" | "offline";

/** One sample of job statistics, polled about once a second. */
export interface JobStats {
  readonly elapsedMs: number;
  readonly phase: MigrationPhase;
  readonly dataTotalMiB: number;
  readonly dataProcessedMiB: number;
  readonly dataRemainingMiB: number;
  /** Memory pass number, 1-based. */
  readonly memoryIteration: number;
  readonly dirtyRateMiBps?: number;
  readonly bandwidthMiBps?: number;
  /** Currently allowed downtime. */
  readonly maxDowntimeMs?: number;
}

/** What the convergence guard can ask the hypervisor to do mid-migration. */
export type GuardAction =
  | { readonly kind: "raise-downtime"; readonly ms: number }
  | { readonly kind: "post-copy" }
  | { readonly kind: "pause" }
  | { readonly kind: "abort"; readonly reason: string };

export type MigrationOutcome =
  | {
      readonly status: "succeeded";
      readonly downtimeMs: number;
      readonly dataMiB: number;
      readonly passes: number;
      /** What the history should know about how the hypervisor finished (e.g. XAPI's own stop-and-copy). */
      readonly note?: string;
    }
  | { readonly status: "failed"; readonly error: string }
  | { readonly status: "aborted"; readonly reason: string };

export interface MigrationHandle {
  /** Latest job statistics; null once the job has ended. */
  stats(): Promise<JobStats | null>;
  act(action: GuardAction): Promise<void>;
  /** Settles when the hypervisor reports the job finished, whatever the outcome. */
  readonly done: Promise<MigrationOutcome>;
  /** What this job can be asked to do, when it differs from the driver's (a driver combining hypervisors). */
  readonly capabilities?: DriverCapabilities;
}

export interface Placement {
  readonly host: HostId;
  readonly state: VmState;
}

/** Every host the VM is defined on: empty when lost, two entries when duplicated (both are errors to report). */
export interface VmLocation {
  readonly vm: VmId;
  readonly placements: readonly Placement[];
}

export class DriverError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly host?: HostId,
  ) {
    super(message);
    this.name = "DriverError";
  }
}
