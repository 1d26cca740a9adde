import type { Host, Vm } from "./snapshot.js";

/** What a VM adds to the host it runs on: CPUs of demand and MiB of memory in use. */
export interface Footprint {
  readonly cpus: number;
  readonly memoryMiB: number;
}

/** A shut-off guest uses neither CPU nor memory until it is started again. */
export function footprint(vm: Vm): Footprint {
  return vm.state === "shutoff" ? { cpus: 0, memoryMiB: 0 } : { cpus: vm.cpuLoad, memoryMiB: vm.memoryMiB };
}

/** A host's load figures (the fields move arithmetic changes). */
export interface HostLoad {
  readonly cpuLoad: number;
  readonly memoryUsedMiB: number;
  readonly memoryMiB: number;
}

/**
 * The host's load figures with a footprint added (sign 1) or removed (sign -1), without copying the host:
 * the planner evaluates thousands of candidate destinations per plan. The one place move arithmetic lives.
 */
export function loadWith(host: Pick<Host, "cpus" | "cpuLoad" | "memoryUsedMiB" | "memoryMiB">, fp: Footprint, sign: 1 | -1): HostLoad {
  return {
    cpuLoad: Math.max(0, host.cpuLoad + (sign * fp.cpus) / host.cpus),
    memoryUsedMiB: Math.max(0, host.memoryUsedMiB + sign * fp.memoryMiB),
    memoryMiB: host.memoryMiB,
  };
}

/** The host with a footprint added (sign 1) or removed (sign -1); arithmetic from loadWith. */
export function hostWith(host: Host, fp: Footprint, sign: 1 | -1): Host {
  const l = loadWith(host, fp, sign);
  return { ...host, cpuLoad: l.cpuLoad, memoryUsedMiB: l.memoryUsedMiB };
}

export const memoryFraction = (host: Pick<Host, "memoryMiB" | "memoryUsedMiB">): number =>
  host.memoryMiB > 0 ? host.memoryUsedMiB / host.memoryMiB : 1;

/** What a group of hosts holds and offers in total: CPUs of demand and capacity, MiB of memory used and installed. */
export interface LoadTotals {
  readonly cpuDemand: number;
  readonly cpus: number;
  readonly memoryUsedMiB: number;
  readonly memoryMiB: number;
}

export function loadTotals(hosts: readonly Pick<Host, "cpus" | "cpuLoad" | "memoryUsedMiB" | "memoryMiB">[]): LoadTotals {
  let cpuDemand = 0;
  let cpus = 0;
  let memoryUsedMiB = 0;
  let memoryMiB = 0;
  for (const h of hosts) {
    cpuDemand += h.cpuLoad * h.cpus;
    cpus += h.cpus;
    memoryUsedMiB += h.memoryUsedMiB;
    memoryMiB += h.memoryMiB;
  }
  return { cpuDemand, cpus, memoryUsedMiB, memoryMiB };
}
