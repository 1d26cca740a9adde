/**
 * XAPI simulator: an HTTP server on loopback that the real, unmodified `xen-api` client talks to
 * (JSON-RPC at /jsonrpc, XML-RPC at /xmlrpc, /rrd_updates). Tests build pools from a spec, drive the
 * client against it, inspect the resulting state and inject faults.
 *
 * Addressing (why not one port per host): the client follows HOST_IS_SLAVE by swapping the *hostname* and
 * keeping the port, and XAPI serves /rrd_updates per host (each host reports itself and the VMs resident on
 * it). So, as in a real pool where every host listens on 443, the whole simulator uses ONE port and each host
 * has its own loopback address: pool p (0-based), host h (0-based) → 127.0.(p+1).(h+1), port shared. Host
 * records carry that address in `address`. Only 127.x loopback addresses are ever bound. A slave's address
 * answers every RPC but system.listMethods with HOST_IS_SLAVE [master address] (the client then re-logs in at
 * the master on the same port); /rrd_updates works on every host, with a session from the master.
 *
 * Wire facts modelled on XAPI (drivers must cope with them):
 * - int64 fields are JSON numbers over JSON-RPC and decimal strings over XML-RPC; floats are doubles both ways.
 * - datetime fields are strings like "20260101T00:00:00Z" over JSON-RPC and <dateTime.iso8601> over XML-RPC
 *   (the client turns those into Date objects).
 * - `task.result` is XML-RPC value text (e.g. "<value>OpaqueRef:…</value>") on both transports.
 * - a cancelled task ends with status "cancelled" and error_info ["TASK_CANCELLED", taskRef]; the client's
 *   callAsync/watchTask then rejects with promise-toolbox's Cancel ("task canceled"), not an XapiError.
 * - every host has a control-domain VM (is_control_domain) and each pool one template (is_a_template):
 *   drivers must filter both out.
 *
 * Volumes: a disk with `volume: true` is modelled as Nova's XenAPI driver attaches a Cinder volume: its VBD has
 * other_config.osvol = "True" (the VDI sits on whatever SR the disk names, typically an `iscsi` one).
 *
 * Cold moves (what XAPI offers): VM.pool_migrate needs a Running VM (VM_BAD_POWER_STATE otherwise). Within a
 * pool a halted VM has no resident host (resident_on = NULL); "moving" it is VM.set_affinity (its home server)
 * and/or VM.start_on(host). A running VM is cold-moved by VM.clean_shutdown (or hard_shutdown) then
 * VM.start_on. Across pools VM.migrate_send also accepts a Halted VM (Storage XenMotion of a halted VM).
 * Like XAPI, the simulator itself does not refuse to migrate_send a VM with a volume attached (it copies
 * whatever VDIs are mapped): refusing is the driver's job, and the call log shows whether it was asked to.
 *
 * Simulated time: task progress and RRD rows follow `clock` (real by default; a ManualClock moves only on
 * advance()); migrationSpeedMiBps is the time-scale knob. event.from long-polls always wait in real time,
 * since that is what the client's own timers expect.
 */
import type { Clock } from "../../src/util/clock.js";
import { startSim } from "./sim.js";

export type SrType = "nfs" | "ext" | "lvm" | "iscsi";
export type PowerState = "Running" | "Halted";
export type Transport = "json-rpc" | "xml-rpc";

export interface HostSpec {
  readonly name: string;
  readonly cpus: number;
  readonly memoryMiB: number;
  /** Memory of the control domain (dom0), resident on the host. Default 1024. */
  readonly dom0MiB?: number;
  /** host.enabled at start. Default true. */
  readonly enabled?: boolean;
}

export interface SrSpec {
  readonly name: string;
  readonly type: SrType;
  /** Shared SRs get a PBD on every host of the pool; local ones only on `host`. */
  readonly shared: boolean;
  /** The pool's default SR (pool.default_SR); at most one per pool. */
  readonly default?: boolean;
  /** Required for non-shared SRs: the host that holds it. */
  readonly host?: string;
}

export interface DiskSpec {
  /** SR name in the same pool. */
  readonly sr: string;
  readonly sizeMiB: number;
  /** An attached block volume (VBD other_config.osvol = "True"), see the module comment. */
  readonly volume?: boolean;
}

export interface VmSpec {
  readonly name: string;
  /** Resident host when Running; for a Halted VM this becomes its affinity (null = none). */
  readonly host: string | null;
  readonly powerState: PowerState;
  readonly memoryMiB: number;
  readonly vcpus: number;
  /** Fraction (0–1) of its vCPUs busy, reported per vCPU in /rrd_updates. Default 0. */
  readonly cpuLoad?: number;
  readonly disks?: readonly DiskSpec[];
  /** One VIF per network name. Default: one VIF on the pool's first network. */
  readonly networks?: readonly string[];
  readonly tags?: readonly string[];
}

export interface PoolSpec {
  readonly name: string;
  /** The first host is the pool master. */
  readonly hosts: readonly HostSpec[];
  readonly srs: readonly SrSpec[];
  /** Network names; default ["Pool-wide network associated with eth0"]. */
  readonly networks?: readonly string[];
  readonly vms: readonly VmSpec[];
}

export interface XapiSimSpec {
  readonly pools: readonly PoolSpec[];
  /** Login user; default "root". */
  readonly user?: string;
  /** Login password; default "sim-password". Never logged. */
  readonly password?: string;
  /** Memory (and, for migrate_send, disk) copy speed in MiB per simulated second. Default 1024 (1 GiB VM ≈ 1 s). */
  readonly migrationSpeedMiBps?: number;
  /** Simulated time; default the real clock. A ManualClock makes task progress move only on advance(). */
  readonly clock?: Clock;
  /** How often running tasks update progress, in simulated ms. Default 100. */
  readonly tickMs?: number;
  /**
   * /rrd_updates?json=true output: "json" (default) as current XAPI writes it (valid JSON, values as strings
   * like "0.2500" or "NaN"); "legacy" as XAPI before its Yojson rewrite (e.g. XCP-ng 8.2): bare keys and bare
   * numbers including NaN, which JSON.parse rejects. Rows before the simulation started are NaN either way.
   */
  readonly rrdFormat?: "json" | "legacy";
}

export interface VdiState {
  readonly uuid: string;
  readonly sr: string;
  readonly sizeMiB: number;
  readonly volume: boolean;
}

export interface VmState {
  readonly name: string;
  readonly uuid: string;
  readonly ref: string;
  readonly pool: string;
  readonly powerState: PowerState;
  /** resident_on as a host name (null when Halted). */
  readonly host: string | null;
  /** VM.affinity as a host name. */
  readonly affinity: string | null;
  readonly memoryMiB: number;
  readonly vcpus: number;
  readonly cpuLoad: number;
  readonly vdis: readonly VdiState[];
  /** Names of the networks its VIFs are on. */
  readonly networks: readonly string[];
  readonly tags: readonly string[];
}

export interface HostState {
  readonly name: string;
  readonly uuid: string;
  readonly ref: string;
  readonly pool: string;
  readonly address: string;
  readonly master: boolean;
  readonly enabled: boolean;
  /** Guest VMs resident (control domain excluded). */
  readonly residentVms: readonly string[];
  readonly memoryMiB: number;
  /** host_metrics.memory_free in MiB (total − dom0 − resident guests − incoming migration reservations). */
  readonly memoryFreeMiB: number;
  /** cpu_avg the RRD reports now (0–1). */
  readonly cpuLoad: number;
}

export interface PoolEndpoint {
  readonly name: string;
  /** http://<master address>:<port> — what a driver is configured with. */
  readonly url: string;
  /** Every host's URL by host name; a slave's URL answers login with HOST_IS_SLAVE. */
  readonly hostUrls: Readonly<Record<string, string>>;
}

export interface CallRecord {
  /** As sent, e.g. "Async.VM.pool_migrate", "VM.get_all_records", "session.login_with_password". */
  readonly method: string;
  readonly transport: Transport;
  readonly pool: string;
  /** The host whose address received the call. */
  readonly host: string;
  /** name_label of the object the first ref argument (after the session) points at, when there is one. */
  readonly subject?: string;
  /** Simulated time of the call (ms since epoch). */
  readonly at: number;
  /** Error code when the call itself failed (not its task). */
  readonly error?: string;
  /** Set when faults.dropNextCall cut this call's connection: it was received but never executed. */
  readonly dropped?: true;
}

export interface Faults {
  /** While true, every login fails with SESSION_AUTHENTICATION_FAILED even with the right password. */
  wrongPassword: boolean;
  /** Every session open now becomes invalid: its next call answers SESSION_INVALID. */
  invalidateSessions(): void;
  /**
   * The next long-running task (a migration, start or shutdown, Async or not) fails half-way with this error;
   * the VM stays where it was. Instant operations (host.disable, assert_can_migrate…) do not consume it.
   */
  failNextTask(code: string, params?: readonly string[]): void;
  /**
   * The next long-running task (of `method` if given, e.g. "VM.start_on") stops making progress at 40 % and never
   * ends on its own; only task.cancel ends it.
   */
  hangNextTask(method?: string): void;
  /**
   * The next call of `method` (name without "Async.", e.g. "VM.pool_migrate") fails with this error: a sync
   * call answers the error, an Async one returns a task that fails at once.
   */
  failNext(method: string, code: string, params?: readonly string[]): void;
  /**
   * The next call (of `method` if given, with or without "Async."; otherwise of any method except event.from,
   * which the client polls in the background) has its socket destroyed after the request is read, without
   * any response and without executing the call.
   */
  dropNextCall(method?: string): void;
}

export interface XapiSim {
  readonly pools: readonly PoolEndpoint[];
  /** Master URL of a pool (default: the first pool). */
  url(pool?: string): string;
  /** URL of one host's address (for a slave: the HOST_IS_SLAVE case). */
  hostUrl(host: string): string;
  readonly user: string;
  readonly password: string;
  readonly port: number;
  /** Current state of a VM / host by name (throws on unknown names). */
  vm(name: string): VmState;
  host(name: string): HostState;
  /** Default SR name of a pool. */
  defaultSr(pool: string): string | null;
  /** Sets a VM's CPU load (0–1 of its vCPUs) from now on (simulated time). */
  setVmCpu(name: string, load: number): void;
  /** Enables/disables a host as another operator would (host.enabled, with an event). */
  setHostEnabled(name: string, enabled: boolean): void;
  readonly faults: Faults;
  /** Every RPC received, in order (passwords and session ids never recorded). */
  readonly calls: readonly CallRecord[];
  /** Number of calls of `method`, with or without the "Async." prefix; optionally only those on `subject`. */
  callCount(method: string, subject?: string): number;
  clearCalls(): void;
  /** Stops tasks and timers, ends long-polls and closes every listener and socket. */
  close(): Promise<void>;
}

export function startXapiSim(spec: XapiSimSpec): Promise<XapiSim> {
  return startSim(spec);
}
