import type { CellId, HostId, VmId } from "./ids.js";

export type Hypervisor = "kvm" | "xen" | "sim";
export type VmState = "running" | "paused" | "shutoff";

export type Storage =
  | { readonly kind: "shared"; readonly id: string }
  | { readonly kind: "local" }
  | { readonly kind: "volume" };

/** Field names are the stable snapshot format of DESIGN.md; extra fields are optional. */
export interface Host {
  readonly name: HostId;
  readonly hypervisor: Hypervisor;
  readonly cell: CellId;
  readonly pool: string | null;
  readonly cpus: number;
  readonly memoryMiB: number;
  /** Smoothed fraction of host CPU capacity, 0–1. */
  readonly cpuLoad: number;
  readonly memoryUsedMiB: number;
  readonly maintenance: boolean;
  readonly reachable: boolean;
  readonly sharedStorage: readonly string[];
  /** Free text from the maintenance flag file, if any. */
  readonly maintenanceReason?: string;
  /**
   * The hypervisor accepts no new VMs here (e.g. disabled in XAPI by someone other than ballast): never a
   * destination, but not drained either — that is the operator's call, made with a maintenance flag.
   */
  readonly disabled?: boolean;
}

export interface Vm {
  readonly id: VmId;
  readonly name: string;
  readonly host: HostId;
  readonly state: VmState;
  readonly vcpus: number;
  readonly memoryMiB: number;
  /** Smoothed, in host CPUs. */
  readonly cpuLoad: number;
  readonly storage: Storage;
  /** Count of attached block volumes. */
  readonly volumes: number;
  readonly dirtyRateMiBps?: number;
  /** Local disk to copy on block migration, when known. */
  readonly diskMiB?: number;
  readonly tags: readonly string[];
}

export interface ClusterSnapshot {
  /** ISO-8601 time the sample was taken. */
  readonly takenAt: string;
  readonly hosts: readonly Host[];
  readonly vms: readonly Vm[];
}
