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

/** The host's load with a footprint added (sign 1) or removed (sign -1). The one place move arithmetic lives. */
export function hostWith(host: Host, fp: Footprint, sign: 1 | -1): Host {
  return {
    ...host,
    cpuLoad: Math.max(0, host.cpuLoad + (sign * fp.cpus) / host.cpus),
    memoryUsedMiB: Math.max(0, host.memoryUsedMiB + sign * fp.memoryMiB),
  };
}

export const memoryFraction = (host: Host): number => (host.memoryMiB > 0 ? host.memoryUsedMiB / host.memoryMiB : 1);
