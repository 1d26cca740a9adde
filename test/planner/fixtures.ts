/** Builders shared by the policy and planner tests (not a test file itself). */
import { cellId, hostId, vmId, type ClusterSnapshot, type Host, type Vm } from "../../src/model/index.js";
import type { PolicyInput, Thresholds } from "../../src/policies/types.js";
import { PlacementRules } from "../../src/policies/constraints/affinity.js";
import type { MigrationPolicy } from "../../src/daemon/migration-kind.js";
import { PlanState } from "../../src/daemon/plan-state.js";
import { enabledPolicies, policyConfigSchema } from "../../src/policies/registry.js";
import type { PlanOptions } from "../../src/daemon/planner.js";

export const T: Thresholds = { cpuHigh: 0.85, cpuLow: 0.7, memHigh: 0.9, memLow: 0.8 };
export const MIG: MigrationPolicy = { allowBlockMigration: false, allowColdForTags: [] };
export const NOW = Date.UTC(2026, 0, 1, 12);

export type HostSpec = Omit<Partial<Host>, "name" | "cell"> & { cell?: string };
export type VmSpec = Omit<Partial<Vm>, "id" | "host">;

/** 10 CPUs, 100,000 MiB, cell c1, 20 % CPU and 20 % memory, mounting nfs. */
export function host(name: string, spec: HostSpec = {}): Host {
  const { cell, ...rest } = spec;
  return {
    name: hostId(name),
    hypervisor: "kvm",
    cell: cellId(cell ?? "c1"),
    pool: null,
    cpus: 10,
    memoryMiB: 100_000,
    cpuLoad: 0.2,
    memoryUsedMiB: 20_000,
    maintenance: false,
    reachable: true,
    sharedStorage: ["nfs"],
    ...rest,
  };
}

/** Running, 2 vCPUs using 1 CPU, 8,000 MiB, on shared storage nfs. */
export function vm(id: string, on: string, spec: VmSpec = {}): Vm {
  return {
    id: vmId(id),
    name: id,
    host: hostId(on),
    state: "running",
    vcpus: 2,
    memoryMiB: 8_000,
    cpuLoad: 1,
    storage: { kind: "shared", id: "nfs" },
    volumes: 0,
    tags: [],
    ...spec,
  };
}

/**
 * A snapshot whose host loads are consistent with their VMs: each host's cpuLoad/memoryUsedMiB is its
 * given `cpuLoad`/`memoryUsedMiB` taken as the non-VM baseline plus the VMs' footprints.
 */
export function cluster(hosts: readonly Host[], vms: readonly Vm[]): ClusterSnapshot {
  const out = hosts.map((h) => {
    let cpu = 0;
    let mem = 0;
    for (const v of vms) {
      if (v.host !== h.name || v.state === "shutoff") continue;
      cpu += v.cpuLoad;
      mem += v.memoryMiB;
    }
    return { ...h, cpuLoad: h.cpuLoad + cpu / h.cpus, memoryUsedMiB: h.memoryUsedMiB + mem };
  });
  return { takenAt: new Date(NOW).toISOString(), hosts: out, vms };
}

/** A snapshot taken as given (host loads not recomputed). */
/** A random host as property tests draw it: load as fractions of its capacity. */
export interface ArbHost {
  readonly cell: string;
  readonly cpus: number;
  readonly memoryMiB: number;
  readonly baseCpu: number;
  readonly baseMem: number;
  readonly maintenance: boolean;
  readonly reachable: boolean;
  readonly mounts?: readonly string[];
}

/** A random VM: `at` picks its host (modulo), `util` its CPU use per vCPU; storage "local", "volume" or a shared id. */
export interface ArbVm {
  readonly at: number;
  readonly state: Vm["state"];
  readonly vcpus: number;
  readonly util: number;
  readonly memoryMiB: number;
  readonly storage?: string;
  readonly tags: readonly string[];
}

/** The cluster property tests plan on, from what fast-check drew (hosts h0…, VMs v0…). */
export function arbitraryCluster({ hosts, vms }: { hosts: readonly ArbHost[]; vms: readonly ArbVm[] }): ClusterSnapshot {
  const hs: Host[] = hosts.map((h, i) =>
    host(`h${i}`, {
      cell: h.cell,
      cpus: h.cpus,
      memoryMiB: h.memoryMiB,
      cpuLoad: h.baseCpu,
      memoryUsedMiB: Math.round(h.baseMem * h.memoryMiB),
      maintenance: h.maintenance,
      reachable: h.reachable,
      ...(h.mounts && { sharedStorage: h.mounts }),
    }),
  );
  const vs: Vm[] = vms.map((v, j) =>
    vm(`v${j}`, `h${v.at % hs.length}`, {
      state: v.state,
      vcpus: v.vcpus,
      cpuLoad: v.state === "running" ? Math.round(v.vcpus * v.util * 100) / 100 : 0,
      memoryMiB: v.memoryMiB,
      ...(v.storage !== undefined && {
        storage: v.storage === "local" || v.storage === "volume" ? { kind: v.storage } : { kind: "shared", id: v.storage },
        volumes: v.storage === "volume" ? 1 : 0,
      }),
      tags: v.tags,
    }),
  );
  return cluster(hs, vs);
}

export const raw = (hosts: readonly Host[], vms: readonly Vm[]): ClusterSnapshot => ({ takenAt: new Date(NOW).toISOString(), hosts, vms });

export const viewOf = (s: ClusterSnapshot): PlanState => new PlanState(s);

/** What the planner hands a policy, on the snapshot as given: default tag names, every migration compatible. */
export function policyInput(s: ClusterSnapshot, over: Partial<PolicyInput> = {}): PolicyInput {
  const view = viewOf(s);
  return { view, thresholds: T, nowMs: NOW, rules: new PlacementRules(view), compatible: () => true, parkEmptyHosts: false, ...over };
}

export const defaultPolicies = (): PlanOptions["policies"] => enabledPolicies(policyConfigSchema.parse({}));

export const planOpts = (over: Partial<PlanOptions> = {}): PlanOptions => ({
  policies: defaultPolicies(),
  thresholds: T,
  migration: MIG,
  nowMs: NOW,
  ...over,
});
