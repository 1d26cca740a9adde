import type { SimConfig } from "../../config/schema.js";
import { cellId, hostId, vmId } from "../../model/index.js";
import type { CellId, HostId, Storage, VmId, VmState } from "../../model/index.js";
import { hash01, seededRng } from "../../util/rng.js";
import { buildLoadProfile, HOT_HOST_TARGET, HOT_UTILISATION_MAX, SALT } from "./load-model.js";
import type { LoadProfile } from "./load-model.js";

/** Mutable state of one simulated host. */
export interface SimHost {
  readonly index: number;
  readonly name: HostId;
  readonly cell: CellId;
  readonly cpus: number;
  readonly memoryMiB: number;
  /** Memory the hypervisor itself uses. */
  readonly overheadMiB: number;
  sharedStorage: readonly string[];
  reachable: boolean;
  /** Last reported smoothed load (kept while unreachable). */
  cpuLoad: number;
}

/** Mutable state of one simulated VM. */
export interface SimVm {
  readonly index: number;
  readonly id: VmId;
  readonly cell: number;
  readonly vcpus: number;
  readonly memoryMiB: number;
  readonly storage: Storage;
  readonly volumes: number;
  /** Local disk size (local storage only). */
  readonly diskMiB: number | undefined;
  readonly tags: readonly string[];
  readonly profile: LoadProfile;
  /** Memory dirty rate of the running guest, MiB/s, from the seed. */
  readonly baseDirtyRate: number;
  host: number;
  state: VmState;
  dirtyOverride: number | null;
  demandOverride: number | null;
  /** Extra CPU demand in host CPUs on top of the model (a scenario's burst); 0 when none. */
  boost: number;
  /** Smoothed CPU load in host CPUs (NaN before the first sample). */
  smoothed: number;
  /** Burst slot `bursting` was computed for (cache; -1 = none). */
  burstSlot: number;
  bursting: boolean;
  removed: boolean;
}

export interface Inventory {
  readonly hosts: SimHost[];
  readonly vms: SimVm[];
}

/** GiB sizes a VM flavour comes in. */
const MEMORY_STEPS_GIB = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32] as const;
const DISK_STEPS_GIB = [10, 20, 40, 80, 160] as const;
/** Chance that a VM (not on a hot host) is shut off. */
const SHUTOFF_PROBABILITY = 0.03;

function snapMemoryGiB(gib: number): number {
  let best: number = MEMORY_STEPS_GIB[0];
  for (const s of MEMORY_STEPS_GIB) if (Math.abs(Math.log(s / gib)) < Math.abs(Math.log(best / gib))) best = s;
  return best;
}

const EMPTY_TAGS: readonly string[] = Object.freeze([]);

export function hostOverheadMiB(memoryMiB: number): number {
  return Math.round(Math.min(4096, memoryMiB * 0.02));
}

/** Cell wave phase (radians) that puts the crest `minute` minutes into the period (counted from the epoch, so from midnight UTC when the period divides a day). */
function peakPhase(minute: number, periodMinutes: number): number {
  return Math.PI / 2 - (2 * Math.PI * (minute % periodMinutes)) / periodMinutes;
}

/** Snapping to flavour steps can overshoot a dense host: step the largest VMs down until the host holds them. */
function fitMemory(drafts: { memoryMiB: number }[], capacityMiB: number): void {
  let total = drafts.reduce((a, d) => a + d.memoryMiB, 0);
  while (total > capacityMiB) {
    const largest = drafts.reduce((a, d) => (d.memoryMiB > a.memoryMiB ? d : a));
    const gib = largest.memoryMiB / 1024;
    const lower = [...MEMORY_STEPS_GIB].reverse().find((s) => s < gib);
    if (lower === undefined) return;
    total -= largest.memoryMiB - lower * 1024;
    largest.memoryMiB = lower * 1024;
  }
}

/** Tags of a VM: `tenant=<name>` when the seed puts it in one of the cell's tenants (by their shares, in order). */
function tenantTags(seed: number, index: number, tenants: SimConfig["tenants"]): readonly string[] {
  let u = hash01(seed, SALT.tenant, index);
  for (const t of tenants) {
    if (u < t.share) return Object.freeze([`tenant=${t.name}`]);
    u -= t.share;
  }
  return EMPTY_TAGS;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** Builds hosts and VMs deterministically from the config's seed. */
export function buildInventory(cfg: SimConfig): Inventory {
  const rng = seededRng(cfg.seed);
  const hosts: SimHost[] = [];
  const vms: SimVm[] = [];
  const hot = new Set(cfg.hotHosts);
  const known = new Set<string>();
  const localStorage: Storage = Object.freeze({ kind: "local" });
  const volumeStorage: Storage = Object.freeze({ kind: "volume" });

  for (const [ci, cell] of cfg.cells.entries()) {
    const shared: Storage | null = cell.sharedStorage ? Object.freeze({ kind: "shared", id: cell.sharedStorage }) : null;
    const sharedList = Object.freeze(cell.sharedStorage ? [cell.sharedStorage] : []);
    const cellPhase = cell.wavePeakMinute === undefined ? 2 * Math.PI * hash01(cfg.seed, SALT.cellPhase, ci) : peakPhase(cell.wavePeakMinute, cfg.wavePeriodMinutes);
    const tenants = cfg.tenants.filter((t) => t.cells === undefined || t.cells.includes(cell.name));
    const width = Math.max(4, String(cell.hosts * cell.vmsPerHost).length);
    let vmNo = 0;
    for (let h = 1; h <= cell.hosts; h++) {
      const name = hostId(`${cell.name}-h${h}`);
      if (known.has(name)) throw new Error(`sim: duplicate host name ${name} (cell names collide)`);
      known.add(name);
      const overheadMiB = hostOverheadMiB(cell.memoryMiB);
      const host: SimHost = {
        index: hosts.length,
        name,
        cell: cellId(cell.name),
        cpus: cell.cpus,
        memoryMiB: cell.memoryMiB,
        overheadMiB,
        sharedStorage: sharedList,
        reachable: true,
        cpuLoad: 0,
      };
      hosts.push(host);
      const isHot = hot.has(name);

      // Memory: the host ends up within ±10 % of memoryFill used, split unevenly among its VMs in flavour steps.
      const n = cell.vmsPerHost;
      const target = cell.memoryMiB * (cell.memoryFill - 0.1 + 0.2 * rng.next()) - overheadMiB;
      const weights = Array.from({ length: n }, () => 0.3 + rng.next());
      const wsum = weights.reduce((a, b) => a + b, 0);
      const vcpuBudget = cell.cpus * (1.1 + 0.5 * rng.next());
      const drafts = weights.map((w) => {
        const memGiB = snapMemoryGiB(Math.max(1, (target * w) / wsum / 1024));
        // vCPUs follow the same share (flavours scale both), with some jitter: the host's vCPUs overcommit its
        // CPUs 1.1–1.6×, so at the mean utilisation it is moderately loaded.
        const jitter = rng.next();
        const k = Math.round(Math.log2(Math.max(1, (vcpuBudget * w) / wsum))) + (jitter < 0.15 ? -1 : jitter > 0.85 ? 1 : 0);
        const vcpus = 2 ** Math.min(3, Math.max(0, k));
        const r = rng.next();
        let storage: Storage;
        let volumes = 0;
        let diskMiB: number | undefined;
        if (shared) {
          storage = r < 0.8 ? shared : r < 0.9 ? volumeStorage : localStorage;
        } else {
          storage = r < 0.3 ? volumeStorage : localStorage;
        }
        const r2 = rng.next();
        if (storage.kind === "volume") volumes = 1 + Math.floor(r2 * 3);
        else if (r2 < 0.15) volumes = 1;
        if (storage.kind === "local") diskMiB = rng.pick(DISK_STEPS_GIB) * 1024;
        const shutoff = rng.next() < SHUTOFF_PROBABILITY && !isHot;
        return { memoryMiB: memGiB * 1024, vcpus, storage, volumes, diskMiB, shutoff };
      });
      fitMemory(drafts, cell.memoryMiB - overheadMiB);

      let hotUtilisation: number | undefined;
      if (isHot && n > 0) {
        // Enough vCPUs that the host can be ~97 % busy, then each VM keeps the same share of its vCPUs busy.
        const need = (cell.cpus * HOT_HOST_TARGET) / HOT_UTILISATION_MAX;
        let sum = drafts.reduce((a, d) => a + d.vcpus, 0);
        for (let i = 0; sum < need && i < 100_000; i++) {
          const d = drafts[i % n];
          if (d && d.vcpus < cell.cpus) {
            d.vcpus++;
            sum++;
          }
          if (drafts.every((x) => x.vcpus >= cell.cpus)) break;
        }
        hotUtilisation = Math.min(HOT_UTILISATION_MAX, (cell.cpus * HOT_HOST_TARGET) / Math.max(1, sum));
      }

      for (const d of drafts) {
        vmNo++;
        const index = vms.length;
        const heavy = hash01(cfg.seed, SALT.dirtyHeavy, index) < cfg.heavyDirtierFraction;
        const hr = hash01(cfg.seed, SALT.dirtyRate, index);
        const baseDirtyRate = heavy ? cfg.bandwidthMiBps * (1.2 + 1.8 * hr) : cfg.bandwidthMiBps * (0.002 + 0.06 * hr * hr);
        vms.push({
          index,
          id: vmId(`${cell.name}-vm${pad(vmNo, width)}`),
          cell: ci,
          vcpus: d.vcpus,
          memoryMiB: d.memoryMiB,
          storage: d.storage,
          volumes: d.volumes,
          diskMiB: d.diskMiB,
          tags: tenantTags(cfg.seed, index, tenants),
          profile: buildLoadProfile({
            seed: cfg.seed,
            index,
            vcpus: d.vcpus,
            meanUtilisation: cfg.meanUtilisation,
            cellPhase,
            ...(hotUtilisation !== undefined ? { hotUtilisation } : {}),
          }),
          baseDirtyRate: Math.round(baseDirtyRate * 10) / 10,
          host: host.index,
          state: d.shutoff ? "shutoff" : "running",
          dirtyOverride: null,
          demandOverride: null,
          boost: 0,
          smoothed: Number.NaN,
          burstSlot: -1,
          bursting: false,
          removed: false,
        });
      }
    }
  }
  for (const h of hot) {
    if (!known.has(h)) throw new Error(`sim.hotHosts: unknown host '${h}' (hosts are named <cell>-h<N>)`);
  }
  return { hosts, vms };
}
