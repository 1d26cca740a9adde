import type { Host, Storage, Vm, VmState } from "../../model/index.js";
import { cellId, hostId, vmId } from "../../model/index.js";
import type { HostRecord, PoolRecords, PowerState, SrRecord, VmRecord } from "./records.js";
import { isRef, num } from "./records.js";

/** other_config key ballast sets on a host it disabled, so a host disabled by someone else stays distinguishable. */
export const BALLAST_DISABLED_KEY = "ballast-disabled";

export type DiskClass = "shared" | "local" | "volume";

export interface VmDisk {
  readonly vdiRef: string;
  readonly srRef: string;
  readonly sr: SrRecord;
  readonly sizeMiB: number;
  readonly cls: DiskClass;
}

const MiB = 1024 * 1024;

/**
 * What a disk is to ballast. A volume is what Nova's XenAPI driver attaches from Cinder: a VBD marked
 * `osvol` in its other_config (Nova's own marker; the XAPI simulator models volumes the same way). Other
 * disks on shared SRs (NFS VHD, the default SR) are shared; disks on unshared SRs are local.
 */
export function diskClass(sr: SrRecord, vbdOtherConfig?: Readonly<Record<string, string>>): DiskClass {
  if (vbdOtherConfig?.["osvol"]?.toLowerCase() === "true") return "volume";
  return sr.shared ? "shared" : "local";
}

/** The VM's disks (VBDs of type Disk with a VDI), in userdevice order. CD drives are not disks. */
export function vmDisks(r: PoolRecords, vm: VmRecord): VmDisk[] {
  const out: { disk: VmDisk; order: number }[] = [];
  for (const vbdRef of vm.VBDs) {
    const vbd = r.VBD.get(vbdRef);
    if (!vbd || vbd.type.toLowerCase() !== "disk" || !isRef(vbd.VDI)) continue;
    const vdi = r.VDI.get(vbd.VDI);
    if (!vdi) continue;
    const sr = r.SR.get(vdi.SR);
    if (!sr) continue;
    const size = num(vdi.virtual_size);
    out.push({
      disk: {
        vdiRef: vbd.VDI,
        srRef: vdi.SR,
        sr,
        sizeMiB: Number.isFinite(size) ? Math.round(size / MiB) : 0,
        cls: diskClass(sr, vbd.other_config),
      },
      order: Number(vbd.userdevice ?? out.length),
    });
  }
  return out.sort((a, b) => a.order - b.order).map((x) => x.disk);
}

export function vmStorage(r: PoolRecords, disks: readonly VmDisk[]): { storage: Storage; volumes: number; diskMiB?: number } {
  const volumes = disks.filter((d) => d.cls === "volume").length;
  const own = disks.filter((d) => d.cls !== "volume");
  if (own.some((d) => d.cls === "local")) {
    return { storage: { kind: "local" }, volumes, diskMiB: own.reduce((s, d) => s + d.sizeMiB, 0) };
  }
  const shared = own[0];
  if (shared) return { storage: { kind: "shared", id: shared.sr.uuid }, volumes };
  if (volumes > 0) return { storage: { kind: "volume" }, volumes };
  // No disk at all: pool_migrate can take it to any host of the pool, like a VM on the default SR.
  const def = r.SR.get(r.pool.default_SR);
  if (def?.shared) return { storage: { kind: "shared", id: def.uuid }, volumes: 0 };
  return { storage: { kind: "local" }, volumes: 0, diskMiB: 0 };
}

export function vmState(p: PowerState): VmState {
  switch (p) {
    case "Running":
      return "running";
    case "Paused":
      return "paused";
    default:
      // Halted and Suspended: no running domain; a suspended VM is refused by migrate() with the reason.
      return "shutoff";
  }
}

/** A real guest: not a template, snapshot or control domain (dom0). */
export const isGuest = (vm: VmRecord): boolean => !vm.is_a_template && !vm.is_control_domain && vm.is_a_snapshot !== true;

/**
 * The host a VM belongs to: where it runs; for a halted VM (no resident host in XAPI) its affinity, else the
 * host of its local SR, else the pool master (any host of the pool can start a VM on shared storage).
 */
export function vmHostRef(r: PoolRecords, vm: VmRecord, disks: readonly VmDisk[]): string | undefined {
  if (vm.power_state === "Running" || vm.power_state === "Paused") return isRef(vm.resident_on) ? vm.resident_on : undefined;
  if (isRef(vm.affinity) && r.host.has(vm.affinity)) return vm.affinity;
  for (const d of disks) {
    if (d.cls !== "local") continue;
    for (const pbdRef of d.sr.PBDs ?? []) {
      const h = r.PBD.get(pbdRef)?.host;
      if (h && r.host.has(h)) return h;
    }
  }
  return r.host.has(r.pool.master) ? r.pool.master : undefined;
}

/** Shared SRs a host has a PBD for (their uuids). */
export function hostSharedStorage(r: PoolRecords, hostRef: string): string[] {
  const host = r.host.get(hostRef);
  const out: string[] = [];
  for (const pbdRef of host?.PBDs ?? []) {
    const pbd = r.PBD.get(pbdRef);
    const sr = pbd && r.SR.get(pbd.SR);
    if (sr?.shared && pbd?.currently_attached !== false) out.push(sr.uuid);
  }
  return out.sort();
}

/** Smoothed CPU loads from RRD data, by host or VM uuid. */
export interface LoadView {
  /** Fraction of host CPU capacity, 0–1. */
  host(uuid: string): number | undefined;
  /** In host CPUs. */
  vm(uuid: string): number | undefined;
}

export interface PoolMapOptions {
  readonly pool: string;
  readonly cell?: string;
  readonly hostCells: Readonly<Record<string, string>>;
  /** The connection to the pool master is up. */
  readonly reachable: boolean;
  readonly load: LoadView;
}

export interface PoolSnapshot {
  readonly hosts: Host[];
  readonly vms: Vm[];
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
const clamp = (x: number, lo: number, hi: number): number => (x < lo ? lo : x > hi ? hi : x);

export function hostCpus(h: HostRecord): number {
  const n = h.host_CPUs?.length ?? 0;
  if (n > 0) return n;
  const c = Number(h.cpu_info?.["cpu_count"]);
  return Number.isFinite(c) && c > 0 ? c : 1;
}

/** Hosts and VMs of one pool in the snapshot format (DESIGN.md). Pure. */
export function mapPool(r: PoolRecords, o: PoolMapOptions): PoolSnapshot {
  const hosts: Host[] = [];
  const reachableHosts = new Set<string>();
  for (const [ref, h] of r.host) {
    const m = r.host_metrics.get(h.metrics);
    const total = num(m?.memory_total);
    const free = num(m?.memory_free);
    // Without its memory size a host cannot take a VM: it is unreachable for placement, with 1 MiB (like a libvirt
    // host that never answered) so the snapshot stays valid.
    const sized = Number.isFinite(total) && total >= MiB;
    const reachable = o.reachable && m !== undefined && m.live !== false && sized;
    if (reachable) reachableHosts.add(ref);
    const memoryMiB = sized ? Math.round(total / MiB) : 1;
    const cell = o.hostCells[h.name_label] ?? o.cell ?? o.pool;
    hosts.push({
      name: hostId(h.name_label),
      hypervisor: "xen",
      cell: cellId(cell),
      pool: o.pool,
      cpus: hostCpus(h),
      memoryMiB,
      cpuLoad: round3(clamp(o.load.host(h.uuid) ?? 0, 0, 1)),
      memoryUsedMiB: Number.isFinite(total) && Number.isFinite(free) ? clamp(Math.round((total - free) / MiB), 0, memoryMiB) : 0,
      maintenance: false,
      reachable,
      sharedStorage: hostSharedStorage(r, ref),
      // Whoever disabled it, XAPI places nothing there. (Ballast's own disable is marked with BALLAST_DISABLED_KEY
      // so that undrain re-enables only hosts ballast disabled; a mark left by a flag removed while ballast was
      // down is cleared by the daemon after its first sample.)
      ...(!h.enabled && { disabled: true }),
    });
  }
  const vms: Vm[] = [];
  for (const v of r.VM.values()) {
    if (!isGuest(v)) continue;
    const disks = vmDisks(r, v);
    const hostRef = vmHostRef(r, v, disks);
    const host = hostRef === undefined ? undefined : r.host.get(hostRef);
    // VMs of unreachable hosts are left out (their state is unknown), as the simulator does.
    if (!host || !reachableHosts.has(hostRef as string)) continue;
    const vcpus = Math.max(1, Math.round(num(v.VCPUs_at_startup ?? v.VCPUs_max) || 1));
    const { storage, volumes, diskMiB } = vmStorage(r, disks);
    const state = vmState(v.power_state);
    const mem = num(v.memory_static_max);
    vms.push({
      id: vmId(v.uuid),
      name: v.name_label,
      host: hostId(host.name_label),
      state,
      vcpus,
      memoryMiB: Number.isFinite(mem) ? Math.max(1, Math.round(mem / MiB)) : 1,
      cpuLoad: state === "shutoff" ? 0 : round3(clamp(o.load.vm(v.uuid) ?? 0, 0, vcpus)),
      storage,
      volumes,
      ...(diskMiB !== undefined && { diskMiB }),
      tags: [...(v.tags ?? [])],
    });
  }
  return { hosts, vms };
}
