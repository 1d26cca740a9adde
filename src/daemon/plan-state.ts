import {
  footprint,
  hostWith,
  type CellId,
  type ClusterSnapshot,
  type Host,
  type HostId,
  type Move,
  type Vm,
  type VmId,
} from "../model/index.js";
import type { ClusterView } from "../policies/types.js";
import { compareStrings } from "../policies/text.js";

/**
 * The host with its fields in one fixed order (extra fields kept after them). `maintenanceReason` is
 * only set when present, so hosts without one compare equal to their input.
 */
function normaliseHost(h: Host): Host {
  const base = {
    name: h.name,
    hypervisor: h.hypervisor,
    cell: h.cell,
    pool: h.pool,
    cpus: h.cpus,
    memoryMiB: h.memoryMiB,
    cpuLoad: h.cpuLoad,
    memoryUsedMiB: h.memoryUsedMiB,
    maintenance: h.maintenance,
    reachable: h.reachable,
    sharedStorage: h.sharedStorage,
  };
  return { ...base, ...h };
}

/**
 * The planner's working copy of a snapshot: indexed (host → VMs, cell → hosts; id → VM built on first
 * use) and mutable through `apply` only. Policies receive it as a read-only ClusterView. Building it is
 * one pass over hosts and VMs; applying a move is O(VMs on the source host). Arrays returned by the view
 * are live: callers read them and do not keep them across moves.
 */
export class PlanState implements ClusterView {
  readonly takenAt: string;
  private readonly snapshot: ClusterSnapshot;
  private readonly hostList: Host[];
  private readonly hostPos = new Map<HostId, number>();
  private readonly byHost = new Map<HostId, Vm[]>();
  private readonly cellHosts = new Map<CellId, Host[]>();
  /** Position of each host in its cell's list. */
  private readonly cellPos = new Map<HostId, number>();
  private readonly cellList: CellId[];
  /** VMs as moved by this plan (id → VM with its new host). */
  private readonly movedVms = new Map<VmId, Vm>();
  private vmIndex: Map<VmId, Vm> | undefined;
  /** Positions (in hostList) of hosts in maintenance, by host name. Maintenance never changes during a plan. */
  private readonly maintenancePos: number[];

  constructor(snapshot: ClusterSnapshot) {
    this.snapshot = snapshot;
    this.takenAt = snapshot.takenAt;
    // One object shape for every host (property reads in the planner's inner loop stay monomorphic).
    this.hostList = snapshot.hosts.map(normaliseHost);
    for (let i = 0; i < this.hostList.length; i++) {
      const h = this.hostList[i] as Host;
      if (this.hostPos.has(h.name)) throw new Error(`snapshot: host ${h.name} appears twice`);
      this.hostPos.set(h.name, i);
      this.byHost.set(h.name, []);
      let cell = this.cellHosts.get(h.cell);
      if (!cell) this.cellHosts.set(h.cell, (cell = []));
      this.cellPos.set(h.name, cell.length);
      cell.push(h);
    }
    this.cellList = [...this.cellHosts.keys()].sort();
    this.maintenancePos = this.hostList
      .map((h, i) => (h.maintenance ? i : -1))
      .filter((i) => i >= 0)
      .sort((a, b) => compareStrings((this.hostList[a] as Host).name, (this.hostList[b] as Host).name));
    const vms = snapshot.vms;
    for (let i = 0; i < vms.length; i++) {
      const vm = vms[i] as Vm;
      const list = this.byHost.get(vm.host);
      if (!list) throw new Error(`snapshot: VM ${vm.id} is on unknown host ${vm.host}`);
      list.push(vm);
    }
  }

  hosts(): readonly Host[] {
    return this.hostList;
  }
  host(id: HostId): Host | undefined {
    const i = this.hostPos.get(id);
    return i === undefined ? undefined : this.hostList[i];
  }
  vm(id: VmId): Vm | undefined {
    if (!this.vmIndex) {
      this.vmIndex = new Map();
      for (const vms of this.byHost.values()) for (const vm of vms) this.vmIndex.set(vm.id, vm);
    }
    return this.vmIndex.get(id);
  }
  /** The VM if it is on `host` now — O(VMs on the host), no global index needed. */
  vmOn(host: HostId, id: VmId): Vm | undefined {
    const list = this.byHost.get(host);
    if (!list) return undefined;
    for (let i = 0; i < list.length; i++) if ((list[i] as Vm).id === id) return list[i];
    return undefined;
  }
  vmsOn(host: HostId): readonly Vm[] {
    return this.byHost.get(host) ?? [];
  }
  cells(): readonly CellId[] {
    return this.cellList;
  }
  hostsInCell(cell: CellId): readonly Host[] {
    return this.cellHosts.get(cell) ?? [];
  }
  maintenanceHosts(): readonly Host[] {
    return this.maintenancePos.map((i) => this.hostList[i] as Host);
  }

  /** Simulates the move (DESIGN rule 3) with the model's footprint/hostWith, exactly as applyMove does. */
  apply(move: Move): void {
    const src = this.byHost.get(move.from);
    const at = src ? src.findIndex((v) => v.id === move.vm) : -1;
    const vm = src?.[at];
    if (!src || !vm) throw new Error(`plan: VM ${move.vm} is not on ${move.from}`);
    const from = this.host(move.from);
    const to = this.host(move.to);
    const dest = this.byHost.get(move.to);
    if (!from || !to || !dest) throw new Error(`plan: unknown host in move ${move.from} → ${move.to}`);
    const fp = footprint(vm);
    this.setHost(hostWith(from, fp, -1));
    this.setHost(hostWith(to, fp, 1));
    const moved: Vm = { ...vm, host: move.to };
    src.splice(at, 1);
    dest.push(moved);
    this.movedVms.set(vm.id, moved);
    this.vmIndex?.set(vm.id, moved);
  }

  /** The working copy as a snapshot (hosts and VMs in their original order). */
  toSnapshot(): ClusterSnapshot {
    return {
      takenAt: this.takenAt,
      hosts: [...this.hostList],
      vms: this.snapshot.vms.map((v) => this.movedVms.get(v.id) ?? v),
    };
  }

  private setHost(h: Host): void {
    const i = this.hostPos.get(h.name);
    const j = this.cellPos.get(h.name);
    if (i === undefined || j === undefined) throw new Error(`plan: unknown host ${h.name}`);
    this.hostList[i] = h;
    const cell = this.cellHosts.get(h.cell);
    if (cell) cell[j] = h;
  }
}
