import { cellId, hostId, vmId, type ClusterSnapshot, type Host, type Storage, type Vm, type VmState } from "../src/model/index.js";
import { seededRng } from "../src/util/rng.js";

export interface GenerateOptions {
  readonly hosts: number;
  readonly vms: number;
  readonly cells: number;
  /** Hosts flagged for maintenance (spread over the cells). */
  readonly maintenance: number;
  /** Hosts whose VMs run hot enough to put the host at or above `cpuHigh`. */
  readonly hotspots: number;
  readonly seed: number;
  /** Threshold the hotspots must reach (default 0.85, the config default). */
  readonly cpuHigh?: number;
  readonly takenAt?: string;
}

const MEMORY_CHOICES = [2048, 4096, 4096, 8192, 8192, 16384] as const;
const VCPU_CHOICES = [1, 2, 2, 4, 4, 8] as const;

/**
 * A valid, deterministic ClusterSnapshot for benchmarks and tests: `cells` cells `cell-N`, hosts
 * `cell-N-hM` (all mounting the cell's shared storage `nfs-cell-N`), VMs spread evenly with mostly
 * shared storage (some volume-backed, some local, a few shut off). Hosts are sized to the VM density
 * (40 VMs per host: 64 CPUs, 512 GiB); ordinary hosts sit at 30–60 % CPU and about half their memory,
 * so there is capacity elsewhere; the hotspot hosts' VMs are scaled until the host is at 88–97 % CPU
 * (≥ cpuHigh). Host loads are the sum of their VMs' footprints plus a little hypervisor overhead.
 */
export function generateSnapshot(o: GenerateOptions): ClusterSnapshot {
  if (o.hosts < o.cells || o.cells < 1) throw new Error("generateSnapshot: need at least one host per cell");
  if (o.maintenance + o.hotspots > o.hosts) throw new Error("generateSnapshot: more maintenance + hotspot hosts than hosts");
  const rng = seededRng(o.seed);
  const cpuHigh = o.cpuHigh ?? 0.85;
  // Host size follows VM density (40 VMs per host → 64 CPUs, 512 GiB), so any density gives the same load levels.
  const perHost = Math.max(1, o.vms / o.hosts);
  const cpus = Math.max(8, 2 ** Math.ceil(Math.log2(perHost * 1.6)));
  const memoryMiB = Math.max(32 * 1024, 2 ** Math.ceil(Math.log2(perHost * 12 * 1024)));
  const overheadMiB = 4096;

  interface Draft {
    name: string;
    cell: string;
    maintenance: boolean;
    hot: boolean;
    vms: Vm[];
  }
  const drafts: Draft[] = [];
  for (let i = 0; i < o.hosts; i++) {
    const c = i % o.cells;
    drafts.push({ name: `cell-${c}-h${String(Math.floor(i / o.cells)).padStart(4, "0")}`, cell: `cell-${c}`, maintenance: false, hot: false, vms: [] });
  }
  // Maintenance and hotspot hosts: evenly strided so every cell gets its share; maintenance ones spread among them.
  const special = o.maintenance + o.hotspots;
  const stride = o.hosts / Math.max(1, special);
  for (let k = 0; k < special; k++) {
    const d = drafts[Math.floor(k * stride)];
    if (!d) continue;
    if (Math.floor(((k + 1) * o.maintenance) / special) > Math.floor((k * o.maintenance) / special)) d.maintenance = true;
    else d.hot = true;
  }

  for (let j = 0; j < o.vms; j++) {
    const d = drafts[j % o.hosts];
    if (!d) continue;
    const vcpus = rng.pick(VCPU_CHOICES);
    const r = rng.next();
    const state: VmState = r < 0.04 ? "shutoff" : r < 0.05 ? "paused" : "running";
    const s = rng.next();
    const storage: Storage = s < 0.8 ? { kind: "shared", id: `nfs-${d.cell}` } : s < 0.9 ? { kind: "volume" } : { kind: "local" };
    const util = state === "running" ? 0.05 + rng.next() * 0.3 : 0;
    d.vms.push({
      id: vmId(`vm-${String(j).padStart(6, "0")}`),
      name: `vm-${j}`,
      host: hostId(d.name),
      state,
      vcpus,
      memoryMiB: rng.pick(MEMORY_CHOICES),
      cpuLoad: Math.round(vcpus * util * 1000) / 1000,
      storage,
      volumes: storage.kind === "volume" ? rng.int(1, 3) : 0,
      dirtyRateMiBps: Math.round(rng.next() * 200),
      tags: [],
    });
  }

  const hosts: Host[] = [];
  const vms: Vm[] = [];
  for (const d of drafts) {
    const overheadCpu = 0.02 + rng.next() * 0.03;
    let vmCpu = d.vms.reduce((a, v) => a + (v.state === "shutoff" ? 0 : v.cpuLoad), 0);
    if (d.hot) {
      // Scale running VMs so the host lands at 88–97 % CPU; capped at each VM's vCPUs.
      const target = Math.max(cpuHigh + 0.03, 0.88) + rng.next() * 0.09;
      const want = Math.max(0, (target - overheadCpu) * cpus);
      const running = d.vms.filter((v) => v.state === "running");
      const base = running.reduce((a, v) => a + v.cpuLoad, 0);
      const cap = running.reduce((a, v) => a + v.vcpus, 0);
      if (cap < want) throw new Error(`generateSnapshot: host ${d.name} has too few vCPUs to be a hotspot`);
      const factor = base > 0 ? want / base : 1;
      d.vms = d.vms.map((v) => (v.state === "running" ? { ...v, cpuLoad: Math.min(v.vcpus, v.cpuLoad * factor) } : v));
      // Whatever the vCPU caps cut off is spread over VMs with room left.
      let short = want - d.vms.reduce((a, v) => a + (v.state === "running" ? v.cpuLoad : 0), 0);
      d.vms = d.vms.map((v) => {
        if (short <= 0 || v.state !== "running") return v;
        const add = Math.min(short, v.vcpus - v.cpuLoad);
        short -= add;
        return { ...v, cpuLoad: v.cpuLoad + add };
      });
      vmCpu = d.vms.reduce((a, v) => a + (v.state === "shutoff" ? 0 : v.cpuLoad), 0);
    }
    const memUsed = overheadMiB + d.vms.reduce((a, v) => a + (v.state === "shutoff" ? 0 : v.memoryMiB), 0);
    if (memUsed > memoryMiB) throw new Error(`generateSnapshot: host ${d.name} overcommitted; use fewer VMs per host`);
    hosts.push({
      name: hostId(d.name),
      hypervisor: "kvm",
      cell: cellId(d.cell),
      pool: null,
      cpus,
      memoryMiB,
      cpuLoad: Math.min(1, vmCpu / cpus + overheadCpu),
      memoryUsedMiB: memUsed,
      maintenance: d.maintenance,
      reachable: true,
      sharedStorage: [`nfs-${d.cell}`],
      ...(d.maintenance ? { maintenanceReason: "generated: firmware update" } : {}),
    });
    vms.push(...d.vms);
  }
  vms.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { takenAt: o.takenAt ?? "2026-01-01T00:00:00.000Z", hosts, vms };
}
