/**
 * One simulated pool: its object store filled from the spec with XAPI-shaped records, and the queries and
 * state changes (residency, memory accounting, host enable) that the API methods share.
 */
import { randomUUID } from "node:crypto";
import type { HostSpec, PoolSpec, SrSpec, VmSpec } from "./index.js";
import type { LoadHistory } from "./rrd.js";
import { ObjectStore } from "./store.js";
import { NULL_REF, XapiDate, bytesToMib, int64, mibToBytes, refList, str, type XRecord } from "./values.js";

export const newRef = (): string => `OpaqueRef:${randomUUID()}`;

const DEFAULT_NETWORK = "Pool-wide network associated with eth0";

export interface DiskCopy {
  readonly vdi: XRecord;
  readonly vbdOtherConfig: XRecord;
  readonly userdevice: string;
}

export class SimPool {
  readonly store: ObjectStore;
  readonly ref = newRef();
  readonly hostRefs = new Map<string, string>();
  readonly hostAddresses = new Map<string, string>();
  readonly sessions = new Set<string>();
  /** Memory promised to migrations in flight, by destination host ref (XAPI reserves it at the start). */
  readonly reservations = new Map<string, bigint>();
  masterRef = NULL_REF;

  constructor(
    readonly name: string,
    readonly index: number,
    private readonly now: () => number,
    readonly loads: LoadHistory,
  ) {
    this.store = new ObjectStore(now);
  }

  static build(spec: PoolSpec, index: number, now: () => number, loads: LoadHistory): SimPool {
    const pool = new SimPool(spec.name, index, now, loads);
    pool.populate(spec);
    return pool;
  }

  get master(): string {
    return this.hostName(this.masterRef);
  }

  masterAddress(): string {
    return this.hostAddresses.get(this.master) ?? "";
  }

  hostRef(name: string): string {
    const ref = this.hostRefs.get(name);
    if (ref === undefined) throw new Error(`pool ${this.name} has no host ${name}`);
    return ref;
  }

  hostName(ref: string): string {
    return str(this.store.get(ref).name_label);
  }

  /** Guest VMs only: templates and control domains are never what a test means by a VM name. */
  guestRefs(): string[] {
    return this.store.refs("VM").filter((r) => {
      const v = this.store.get(r);
      return v.is_a_template !== true && v.is_control_domain !== true;
    });
  }

  findVm(name: string): string | undefined {
    return this.guestRefs().find((r) => this.store.get(r).name_label === name);
  }

  srByName(name: string): string {
    const ref = this.store.refs("SR").find((r) => this.store.get(r).name_label === name);
    if (ref === undefined) throw new Error(`pool ${this.name} has no SR ${name}`);
    return ref;
  }

  networkByName(name: string): string | undefined {
    return this.store.refs("network").find((r) => this.store.get(r).name_label === name);
  }

  defaultSr(): string {
    return str(this.store.get(this.ref).default_SR);
  }

  /** Whether host has a PBD of sr (so it can reach the VDIs on it). */
  hostSeesSr(hostRef: string, srRef: string): boolean {
    return refList(this.store.get(srRef).PBDs).some((pbd) => this.store.get(pbd).host === hostRef);
  }

  vmVdis(vmRef: string): string[] {
    return refList(this.store.get(vmRef).VBDs)
      .map((vbd) => str(this.store.get(vbd).VDI))
      .filter((vdi) => vdi !== NULL_REF && vdi !== "");
  }

  vmMemory(vmRef: string): bigint {
    return int64(this.store.get(vmRef).memory_static_max);
  }

  hostFree(hostRef: string): bigint {
    const h = this.store.get(hostRef);
    const total = int64(this.store.get(str(h.metrics)).memory_total);
    const used = refList(h.resident_VMs).reduce((sum, vm) => sum + this.vmMemory(vm), 0n);
    return total - used - (this.reservations.get(hostRef) ?? 0n);
  }

  reserve(hostRef: string, bytes: bigint): void {
    this.reservations.set(hostRef, (this.reservations.get(hostRef) ?? 0n) + bytes);
    this.refreshMemory(hostRef);
  }

  release(hostRef: string, bytes: bigint): void {
    this.reservations.set(hostRef, (this.reservations.get(hostRef) ?? 0n) - bytes);
    this.refreshMemory(hostRef);
  }

  refreshMemory(hostRef: string): void {
    const metrics = str(this.store.get(hostRef).metrics);
    this.store.set(metrics, { memory_free: this.hostFree(hostRef), last_updated: new XapiDate(this.now()) });
  }

  /** Moves a VM's residency (NULL_REF = halted, no host), keeping host.resident_VMs, memory and load history in step. */
  setResidency(vmRef: string, hostRef: string, powerState: "Running" | "Halted"): void {
    const vm = this.store.get(vmRef);
    const from = str(vm.resident_on);
    if (from !== NULL_REF && this.store.has(from)) {
      this.store.set(from, { resident_VMs: refList(this.store.get(from).resident_VMs).filter((r) => r !== vmRef) });
      this.refreshMemory(from);
    }
    const running = powerState === "Running";
    this.store.set(vmRef, {
      resident_on: hostRef,
      power_state: powerState,
      domid: running ? BigInt(1 + (this.now() % 1000)) : -1n,
      ...(running ? { affinity: hostRef } : {}),
    });
    for (const vbd of refList(vm.VBDs)) this.store.set(vbd, { currently_attached: running });
    for (const vif of refList(vm.VIFs)) this.store.set(vif, { currently_attached: running });
    if (hostRef !== NULL_REF) {
      this.store.append(hostRef, "resident_VMs", vmRef);
      this.refreshMemory(hostRef);
    }
    const uuid = str(vm.uuid);
    this.loads.place(uuid, running ? str(this.store.get(hostRef).uuid) : null, this.now());
  }

  /** Creates a guest VM with its metrics, VBDs/VDIs and VIFs; returns its ref. */
  createVm(
    v: { name: string; uuid: string; memory: bigint; vcpus: number; tags: readonly string[]; affinity: string },
    disks: readonly DiskCopy[],
    networks: readonly string[],
  ): string {
    const s = this.store;
    const ref = newRef();
    const metrics = newRef();
    s.add("VM_metrics", metrics, {
      uuid: randomUUID(),
      memory_actual: v.memory,
      VCPUs_number: BigInt(v.vcpus),
      VCPUs_utilisation: {},
      start_time: new XapiDate(0),
      install_time: new XapiDate(0),
      last_updated: new XapiDate(this.now()),
      state: [],
      other_config: {},
    });
    const vbds: string[] = [];
    for (const d of disks) {
      const vdi = newRef();
      const vbd = newRef();
      const sr = str(d.vdi.SR);
      s.add("VDI", vdi, { ...d.vdi, VBDs: [vbd] });
      s.append(sr, "VDIs", vdi);
      s.add("VBD", vbd, {
        uuid: randomUUID(),
        VM: ref,
        VDI: vdi,
        device: `xvd${String.fromCharCode(97 + Number(d.userdevice))}`,
        userdevice: d.userdevice,
        bootable: d.userdevice === "0",
        mode: "RW",
        type: "Disk",
        empty: false,
        currently_attached: false,
        other_config: d.vbdOtherConfig,
        allowed_operations: [],
        current_operations: {},
      });
      vbds.push(vbd);
    }
    const vifs: string[] = [];
    networks.forEach((net, i) => {
      const vif = newRef();
      s.add("VIF", vif, {
        uuid: randomUUID(),
        VM: ref,
        network: net,
        device: String(i),
        MAC: `02:00:00:${randomUUID().slice(0, 6).replace(/(..)(..)(..)/, "$1:$2:$3")}`,
        MTU: 1500n,
        currently_attached: false,
        other_config: {},
      });
      s.append(net, "VIFs", vif);
      vifs.push(vif);
    });
    s.add("VM", ref, {
      ...vmRecord(v.name, v.uuid, v.memory, v.vcpus),
      metrics,
      VBDs: vbds,
      VIFs: vifs,
      tags: [...v.tags],
      affinity: v.affinity,
    });
    return ref;
  }

  /** Removes a VM and everything hanging off it (after it left the pool by migrate_send). */
  destroyVm(vmRef: string, destroyVdis: boolean): void {
    const s = this.store;
    const vm = s.get(vmRef);
    this.setResidency(vmRef, NULL_REF, "Halted");
    for (const vbd of refList(vm.VBDs)) {
      const vdi = str(s.get(vbd).VDI);
      if (destroyVdis && s.has(vdi)) {
        const sr = str(s.get(vdi).SR);
        s.set(sr, { VDIs: refList(s.get(sr).VDIs).filter((r) => r !== vdi) });
        s.delete(vdi);
      }
      s.delete(vbd);
    }
    for (const vif of refList(vm.VIFs)) {
      const net = str(s.get(vif).network);
      s.set(net, { VIFs: refList(s.get(net).VIFs).filter((r) => r !== vif) });
      s.delete(vif);
    }
    s.delete(str(vm.metrics));
    s.delete(vmRef);
  }

  private populate(spec: PoolSpec): void {
    const s = this.store;
    if (spec.hosts.length === 0) throw new Error(`pool ${spec.name} has no hosts`);
    if (spec.hosts.length > 254) throw new Error(`pool ${spec.name}: at most 254 hosts`);
    spec.hosts.forEach((h, i) => this.addHost(h, i));
    this.masterRef = this.hostRef(spec.hosts[0]?.name ?? "");

    const networks = spec.networks ?? [DEFAULT_NETWORK];
    networks.forEach((name, i) => {
      s.add("network", newRef(), {
        uuid: randomUUID(),
        name_label: name,
        name_description: "",
        bridge: `xenbr${i}`,
        MTU: 1500n,
        VIFs: [],
        PIFs: [],
        other_config: {},
      });
    });

    let defaultSr = NULL_REF;
    for (const sr of spec.srs) {
      const ref = this.addSr(sr);
      if (sr.default === true) {
        if (defaultSr !== NULL_REF) throw new Error(`pool ${spec.name} has two default SRs`);
        defaultSr = ref;
      }
    }

    s.add("pool", this.ref, {
      uuid: randomUUID(),
      name_label: spec.name,
      name_description: "",
      master: this.masterRef,
      default_SR: defaultSr,
      suspend_image_SR: defaultSr,
      crash_dump_SR: defaultSr,
      ha_enabled: false,
      other_config: {},
      tags: [],
      restrictions: {},
      cpu_info: {},
    });

    // Every pool ships templates; a driver must not count them as VMs.
    s.add("VM", newRef(), { ...vmRecord("Other install media", randomUUID(), mibToBytes(256), 1), is_a_template: true });

    for (const v of spec.vms) this.addVm(v, networks[0] ?? DEFAULT_NETWORK);
  }

  private addHost(h: HostSpec, i: number): void {
    const s = this.store;
    const ref = newRef();
    const metrics = newRef();
    const uuid = randomUUID();
    const address = `127.0.${this.index + 1}.${i + 1}`;
    this.hostRefs.set(h.name, ref);
    this.hostAddresses.set(h.name, address);
    s.add("host_metrics", metrics, {
      uuid: randomUUID(),
      memory_total: mibToBytes(h.memoryMiB),
      memory_free: mibToBytes(h.memoryMiB),
      live: true,
      last_updated: new XapiDate(this.now()),
      other_config: {},
    });
    const cpus: string[] = [];
    for (let n = 0; n < h.cpus; n++) {
      const cpu = newRef();
      s.add("host_cpu", cpu, {
        uuid: randomUUID(),
        host: ref,
        number: BigInt(n),
        vendor: "GenuineIntel",
        speed: 2600n,
        modelname: "Simulated Xeon",
        family: 6n,
        model: 85n,
        stepping: "4",
        flags: "fpu vme de pse tsc msr pae",
        features: "",
        utilisation: 0,
        other_config: {},
      });
      cpus.push(cpu);
    }
    const dom0 = newRef();
    s.add("host", ref, {
      uuid,
      name_label: h.name,
      name_description: "",
      hostname: h.name,
      address,
      enabled: h.enabled ?? true,
      metrics,
      host_CPUs: cpus,
      cpu_info: { cpu_count: String(h.cpus), socket_count: "1", vendor: "GenuineIntel", speed: "2600.000" },
      resident_VMs: [],
      PBDs: [],
      PIFs: [],
      control_domain: dom0,
      memory_overhead: 0n,
      software_version: { product_brand: "XCP-ng", product_version: "8.2.1", xapi: "1.20" },
      API_version_major: 2n,
      API_version_minor: 16n,
      allowed_operations: ["evacuate", "provision", "vm_start", "vm_migrate", "vm_resume"],
      current_operations: {},
      other_config: {},
      tags: [],
    });
    s.add("VM", dom0, {
      ...vmRecord(`Control domain on host: ${h.name}`, randomUUID(), mibToBytes(h.dom0MiB ?? 1024), Math.min(h.cpus, 16)),
      is_control_domain: true,
    });
    this.loads.register(str(s.get(dom0).uuid), Math.min(h.cpus, 16), 0, this.now());
    this.setResidency(dom0, ref, "Running");
  }

  private addSr(sr: SrSpec): string {
    const s = this.store;
    const ref = newRef();
    if (!sr.shared && sr.host === undefined) throw new Error(`local SR ${sr.name} needs a host`);
    const hosts = sr.shared ? [...this.hostRefs.values()] : [this.hostRef(sr.host ?? "")];
    const pbds = hosts.map((host) => {
      const pbd = newRef();
      s.add("PBD", pbd, { uuid: randomUUID(), host, SR: ref, currently_attached: true, device_config: {}, other_config: {} });
      s.append(host, "PBDs", pbd);
      return pbd;
    });
    s.add("SR", ref, {
      uuid: randomUUID(),
      name_label: sr.name,
      name_description: "",
      type: sr.type,
      content_type: "user",
      shared: sr.shared,
      PBDs: pbds,
      VDIs: [],
      physical_size: mibToBytes(4 * 1024 * 1024),
      physical_utilisation: 0n,
      virtual_allocation: 0n,
      other_config: {},
      sm_config: {},
      tags: [],
    });
    return ref;
  }

  private addVm(v: VmSpec, defaultNetwork: string): void {
    const uuid = randomUUID();
    const disks = (v.disks ?? []).map((d, i): DiskCopy => ({
      vdi: vdiRecord(`${v.name} disk ${i}`, this.srByName(d.sr), mibToBytes(d.sizeMiB)),
      vbdOtherConfig: d.volume === true ? { osvol: "True" } : {},
      userdevice: String(i),
    }));
    const networks = (v.networks ?? [defaultNetwork]).map((n) => {
      const ref = this.networkByName(n);
      if (ref === undefined) throw new Error(`VM ${v.name}: pool ${this.name} has no network ${n}`);
      return ref;
    });
    const host = v.host === null ? NULL_REF : this.hostRef(v.host);
    if (v.powerState === "Running" && host === NULL_REF) throw new Error(`running VM ${v.name} needs a host`);
    this.loads.register(uuid, v.vcpus, v.cpuLoad ?? 0, this.now());
    const ref = this.createVm(
      { name: v.name, uuid, memory: mibToBytes(v.memoryMiB), vcpus: v.vcpus, tags: v.tags ?? [], affinity: host },
      disks,
      networks,
    );
    if (v.powerState === "Running") {
      // A spec XAPI could not be in is a test bug: say so instead of simulating nonsense.
      for (const sr of new Set(disks.map((d) => str(d.vdi.SR)))) {
        if (!this.hostSeesSr(host, sr)) throw new Error(`VM ${v.name} runs on ${v.host} which cannot see SR ${this.hostName(sr)}`);
      }
      if (this.hostFree(host) < mibToBytes(v.memoryMiB)) throw new Error(`VM ${v.name} does not fit in ${v.host}'s free memory`);
      this.setResidency(ref, host, "Running");
      this.store.set(ref, { guest_metrics: this.addGuestMetrics() });
    }
  }

  addGuestMetrics(): string {
    const ref = newRef();
    this.store.add("VM_guest_metrics", ref, {
      uuid: randomUUID(),
      os_version: { name: "Simulated Linux" },
      PV_drivers_up_to_date: true,
      networks: {},
      memory: {},
      live: true,
      last_updated: new XapiDate(this.now()),
      other_config: {},
    });
    return ref;
  }

  memoryMib(hostRef: string): number {
    return bytesToMib(int64(this.store.get(str(this.store.get(hostRef).metrics)).memory_total));
  }
}

export function vdiRecord(name: string, sr: string, size: bigint): XRecord {
  return {
    uuid: randomUUID(),
    name_label: name,
    name_description: "",
    SR: sr,
    virtual_size: size,
    physical_utilisation: size,
    type: "user",
    sharable: false,
    read_only: false,
    managed: true,
    is_a_snapshot: false,
    VBDs: [],
    other_config: {},
    sm_config: {},
    xenstore_data: {},
    tags: [],
  };
}

function vmRecord(name: string, uuid: string, memory: bigint, vcpus: number): XRecord {
  return {
    uuid,
    name_label: name,
    name_description: "",
    power_state: "Halted",
    resident_on: NULL_REF,
    affinity: NULL_REF,
    domid: -1n,
    is_a_template: false,
    is_a_snapshot: false,
    is_control_domain: false,
    memory_static_max: memory,
    memory_static_min: memory,
    memory_dynamic_max: memory,
    memory_dynamic_min: memory,
    memory_target: memory,
    memory_overhead: 0n,
    VCPUs_max: BigInt(vcpus),
    VCPUs_at_startup: BigInt(vcpus),
    VBDs: [],
    VIFs: [],
    metrics: NULL_REF,
    guest_metrics: NULL_REF,
    snapshots: [],
    tags: [],
    other_config: {},
    blocked_operations: {},
    allowed_operations: [],
    current_operations: {},
    HVM_boot_policy: "BIOS order",
    ha_restart_priority: "",
  };
}
