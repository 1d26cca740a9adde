/**
 * The XAPI record fields the driver reads, as plain data. Records come from xen-api's object cache (or a
 * test fixture); XAPI sends 64-bit integers as strings over XML-RPC and as numbers over JSON-RPC, so numeric
 * fields are typed as both and read with num().
 */

export const NULL_REF = "OpaqueRef:NULL";

type Int = number | string;

export interface PoolRecord {
  readonly name_label: string;
  readonly master: string;
  readonly default_SR: string;
}

export interface HostRecord {
  readonly uuid: string;
  readonly name_label: string;
  readonly enabled: boolean;
  readonly metrics: string;
  readonly PBDs?: readonly string[];
  readonly host_CPUs?: readonly string[];
  readonly cpu_info?: Readonly<Record<string, string>>;
  readonly other_config?: Readonly<Record<string, string>>;
}

export interface HostMetricsRecord {
  readonly memory_total: Int;
  readonly memory_free: Int;
  readonly live: boolean;
}

export type PowerState = "Running" | "Paused" | "Halted" | "Suspended";

export interface VmRecord {
  readonly uuid: string;
  readonly name_label: string;
  readonly power_state: PowerState;
  readonly is_a_template: boolean;
  readonly is_control_domain: boolean;
  readonly is_a_snapshot?: boolean;
  readonly resident_on: string;
  readonly affinity?: string;
  readonly memory_static_max: Int;
  readonly memory_dynamic_max?: Int;
  readonly VCPUs_max: Int;
  readonly VCPUs_at_startup?: Int;
  readonly VBDs: readonly string[];
  readonly VIFs?: readonly string[];
  readonly tags?: readonly string[];
  /** Task ref → operation (e.g. "pool_migrate") for operations in progress. */
  readonly current_operations?: Readonly<Record<string, string>>;
}

export interface VbdRecord {
  readonly VM: string;
  readonly VDI: string;
  readonly type: string;
  readonly userdevice?: string;
  readonly other_config?: Readonly<Record<string, string>>;
}

export interface VdiRecord {
  readonly uuid?: string;
  readonly name_label?: string;
  readonly SR: string;
  readonly virtual_size: Int;
  readonly other_config?: Readonly<Record<string, string>>;
}

export interface SrRecord {
  readonly uuid: string;
  readonly name_label: string;
  readonly type: string;
  readonly shared: boolean;
  readonly PBDs?: readonly string[];
  readonly other_config?: Readonly<Record<string, string>>;
}

export interface PbdRecord {
  readonly host: string;
  readonly SR: string;
  readonly currently_attached?: boolean;
}

export interface NetworkRecord {
  readonly uuid?: string;
  readonly name_label: string;
}

export interface VifRecord {
  readonly VM: string;
  readonly network: string;
  readonly device?: string;
}

export interface TaskRecord {
  readonly status: "pending" | "success" | "failure" | "cancelling" | "cancelled";
  readonly progress: Int;
  readonly result?: string;
  readonly error_info?: readonly string[];
}

/** The records of one pool, by class then opaque ref. */
export interface PoolRecords {
  readonly poolRef: string;
  readonly pool: PoolRecord;
  readonly host: ReadonlyMap<string, HostRecord>;
  readonly host_metrics: ReadonlyMap<string, HostMetricsRecord>;
  readonly VM: ReadonlyMap<string, VmRecord>;
  readonly VBD: ReadonlyMap<string, VbdRecord>;
  readonly VDI: ReadonlyMap<string, VdiRecord>;
  readonly SR: ReadonlyMap<string, SrRecord>;
  readonly PBD: ReadonlyMap<string, PbdRecord>;
  readonly network: ReadonlyMap<string, NetworkRecord>;
  readonly VIF: ReadonlyMap<string, VifRecord>;
}

export const RECORD_CLASSES = ["host", "host_metrics", "VM", "VBD", "VDI", "SR", "PBD", "network", "VIF"] as const;
export type RecordClass = (typeof RECORD_CLASSES)[number];

/** A numeric XAPI field (string or number) as a number; NaN when absent or malformed. */
export function num(v: Int | undefined): number {
  if (typeof v === "number") return v;
  if (typeof v === "string" && v.trim() !== "") return Number(v);
  return NaN;
}

export const isRef = (r: string | undefined): r is string => typeof r === "string" && r.startsWith("OpaqueRef:") && r !== NULL_REF;
