/**
 * Typed access to ballast's Node-API binding over libvirt (src/drivers/libvirt/native/src/binding.cc).
 *
 * Every call returns a Promise and runs off Node's event loop; a migration runs on a thread of its own. Failures
 * reject with LibvirtError carrying libvirt's own error code, domain and message. 64-bit counters are BigInt.
 * The addon is an optional part of the install: it is loaded on first use, and a missing build is reported with
 * what to install.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { MigrationFlag } from "../../driver.js";

/** virErrorNumber values ballast looks at (libvirt/virterror.h). */
export const ErrorCode = {
  INTERNAL_ERROR: 1,
  NO_SUPPORT: 3,
  NO_CONNECT: 5,
  INVALID_CONN: 6,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  SYSTEM_ERROR: 38,
  RPC: 39,
  NO_DOMAIN: 42,
  AUTH_FAILED: 45,
  OPERATION_INVALID: 55,
  OPERATION_TIMEOUT: 68,
  ARGUMENT_UNSUPPORTED: 74,
  OPERATION_ABORTED: 78,
  MIGRATE_UNSAFE: 81,
  OPERATION_UNSUPPORTED: 84,
} as const;

/** virErrorDomain values (where in libvirt the error arose). */
export const ErrorDomain = { NONE: 0, RPC: 7, QEMU: 10, TEST: 12, REMOTE: 13, DOMAIN: 20 } as const;

/** A failed libvirt call: `code` is virErrorNumber, `domain` virErrorDomain, `level` virErrorLevel. */
export class LibvirtError extends Error {
  override readonly name = "LibvirtError";
  constructor(
    message: string,
    readonly code: number,
    readonly domain: number,
    readonly level: number,
  ) {
    super(message);
  }
}

/** virDomainState. */
export const DomainState = { NOSTATE: 0, RUNNING: 1, BLOCKED: 2, PAUSED: 3, SHUTDOWN: 4, SHUTOFF: 5, CRASHED: 6, PMSUSPENDED: 7 } as const;
/** virDomainEventType (lifecycle events). */
export const LifecycleEvent = { DEFINED: 0, UNDEFINED: 1, STARTED: 2, SUSPENDED: 3, RESUMED: 4, STOPPED: 5, SHUTDOWN: 6, PMSUSPENDED: 7, CRASHED: 8 } as const;
/** virDomainJobType. */
export const JobType = { NONE: 0, BOUNDED: 1, UNBOUNDED: 2, COMPLETED: 3, FAILED: 4, CANCELLED: 5 } as const;
/** virConnectCloseReason. */
export const CloseReason = { ERROR: 0, EOF: 1, KEEPALIVE: 2, CLIENT: 3 } as const;

export interface DomainRef {
  readonly name: string;
  readonly uuid: string;
}

export interface DomainSummary extends DomainRef {
  /** Hypervisor id, -1 when inactive. */
  readonly id: number;
  /** virDomainState. */
  readonly state: number;
  /** State reason (virDomainRunningReason, virDomainShutoffReason, …). */
  readonly reason: number;
  readonly persistent: boolean;
  readonly active: boolean;
}

export interface DomainInfo {
  readonly state: number;
  readonly maxMemKiB: number;
  readonly memoryKiB: number;
  readonly vcpus: number;
  readonly cpuTimeNs: bigint;
}

export interface BlockInfo {
  /** Guest-visible size, bytes. */
  readonly capacity: bigint;
  readonly allocation: bigint;
  readonly physical: bigint;
}

export interface NodeInfo {
  readonly model: string;
  readonly memoryKiB: number;
  readonly cpus: number;
  readonly mhz: number;
  readonly nodes: number;
  readonly sockets: number;
  readonly cores: number;
  readonly threads: number;
}

/** Typed parameters as libvirt names them; 64-bit integer values are BigInt. */
export type TypedParams = Readonly<Record<string, number | bigint | boolean | string>>;

/** Cumulative CPU times of the node in ns: kernel, user, idle, iowait. */
export type NodeCpuStats = Readonly<Record<string, bigint>>;
/** Node memory in KiB: total, free, buffers, cached. */
export type NodeMemoryStats = Readonly<Record<string, bigint>>;

export type StatsGroup = "state" | "cpu-total" | "balloon" | "vcpu" | "block" | "dirtyrate";
export type StatsFilter = "active" | "inactive" | "persistent" | "transient" | "running" | "paused" | "shutoff" | "nowait";

export interface DomainStatsRecord {
  readonly domain: DomainRef;
  readonly params: TypedParams;
}

export interface MigrateOptions {
  readonly flags: readonly MigrationFlag[];
  /** VIR_MIGRATE_PARAM_BANDWIDTH. */
  readonly bandwidthMiBps?: number;
  /** VIR_MIGRATE_PARAM_URI: where the hypervisor sends the data, when not the destination's default. */
  readonly migrateUri?: string;
  readonly destName?: string;
  /** Disks (target names) to copy with NON_SHARED_DISK; all non-shared ones when absent. */
  readonly migrateDisks?: readonly string[];
  readonly autoConvergeInitial?: number;
  readonly autoConvergeIncrement?: number;
}

export interface JobStatsResult {
  /** virDomainJobType. */
  readonly type: number;
  readonly params: TypedParams;
}

export type LibvirtEvent =
  | { readonly type: "lifecycle"; readonly domain: DomainRef; readonly event: number; readonly detail: number }
  | { readonly type: "job-completed"; readonly domain: DomainRef; readonly params: TypedParams }
  | { readonly type: "migration-iteration"; readonly domain: DomainRef; readonly iteration: number }
  /** The connection dropped (not sent for close()): virConnectCloseReason. */
  | { readonly type: "close"; readonly reason: number };

export interface OpenOptions {
  readonly readOnly?: boolean;
  /** Keepalive probe interval (default 5 s; 0 turns keepalive off) and unanswered probes before closing (3). */
  readonly keepaliveIntervalSec?: number;
  readonly keepaliveCount?: number;
}

/**
 * One libvirt connection. Domains are named by UUID or name. Thread-safe: calls may overlap. close() is
 * idempotent; calls after it reject with INVALID_CONN. A connection dropped without close() is closed anyway.
 */
export interface Connection {
  close(): Promise<void>;
  isAlive(): Promise<boolean>;
  listDomains(): Promise<readonly DomainSummary[]>;
  lookupDomain(domain: string): Promise<DomainSummary>;
  getDomainInfo(domain: string): Promise<DomainInfo>;
  getDomainXml(domain: string, options?: { readonly inactive?: boolean; readonly migratable?: boolean }): Promise<string>;
  getBlockInfo(domain: string, disk: string): Promise<BlockInfo>;
  getAllDomainStats(groups: readonly StatsGroup[], options?: { readonly filters?: readonly StatsFilter[] }): Promise<readonly DomainStatsRecord[]>;
  getNodeInfo(): Promise<NodeInfo>;
  getNodeCpuStats(): Promise<NodeCpuStats>;
  getNodeMemoryStats(): Promise<NodeMemoryStats>;
  /** virDomainMigrateToURI3 to `destUri`; resolves when the migration has finished. Runs on its own thread. */
  migrate(domain: string, destUri: string, options: MigrateOptions): Promise<void>;
  migrateSetMaxDowntime(domain: string, downtimeMs: number): Promise<void>;
  migrateSetMaxSpeed(domain: string, bandwidthMiBps: number): Promise<void>;
  migrateStartPostCopy(domain: string): Promise<void>;
  getJobStats(domain: string, options?: { readonly completed?: boolean; readonly keepCompleted?: boolean }): Promise<JobStatsResult>;
  abortJob(domain: string): Promise<void>;
  /** Starts a dirty-rate measurement over `seconds`; results appear as dirtyrate.* in the "dirtyrate" stats group. */
  startDirtyRateCalc(domain: string, seconds: number): Promise<void>;
  suspend(domain: string): Promise<void>;
  resume(domain: string): Promise<void>;
  /** Starts a defined, shut-off domain. */
  create(domain: string): Promise<void>;
}

interface Addon {
  readonly libvirtVersion: number;
  open(uri: string, options: OpenOptions, onEvent?: (event: LibvirtEvent) => void): Promise<Connection>;
  setErrorClass(ctor: new (message: string, code: number, domain: number, level: number) => Error): void;
}

/** Thrown when the addon has not been built on this machine. */
export class NativeBindingMissingError extends Error {
  override readonly name = "NativeBindingMissingError";
}

const ADDON = "ballast_libvirt.node";
// From src/drivers/libvirt/native (tsx, vitest) or dist/src/drivers/libvirt/native (compiled): the build stays in src.
const CANDIDATES = ["./build/Release/", "../../../../../src/drivers/libvirt/native/build/Release/"].map((dir) =>
  fileURLToPath(new URL(dir + ADDON, import.meta.url)),
);

let addon: Addon | undefined;

/** The loaded addon; throws NativeBindingMissingError saying what to install when it is not built. */
export function loadBinding(): Addon {
  if (addon) return addon;
  const path = CANDIDATES.find((p) => existsSync(p));
  if (path === undefined) {
    throw new NativeBindingMissingError(
      "the libvirt driver needs ballast's native libvirt binding, which is not built on this machine: " +
        "run `apt-get install libvirt-dev pkg-config` (and g++, make, python3), then `npm run build:native`",
    );
  }
  const loaded = createRequire(import.meta.url)(path) as Addon;
  loaded.setErrorClass(LibvirtError);
  addon = loaded;
  return loaded;
}

/** libvirt's version as major * 1e6 + minor * 1e3 + release. */
export function libvirtVersion(): number {
  return loadBinding().libvirtVersion;
}

/**
 * Opens a libvirt connection (any URI: qemu+ssh://, qemu+tls://, qemu+tcp://, qemu:///system, test:///default)
 * with keepalive; `onEvent` receives lifecycle, job-completed, migration-iteration and close events. A listener
 * that throws is reported as an uncaught exception, like an EventEmitter listener.
 */
export function open(uri: string, options: OpenOptions = {}, onEvent?: (event: LibvirtEvent) => void): Promise<Connection> {
  try {
    return loadBinding().open(uri, options, onEvent);
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

export function isLibvirtError(e: unknown, code?: number): e is LibvirtError {
  return e instanceof LibvirtError && (code === undefined || e.code === code);
}
