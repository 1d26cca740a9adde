import type { ClusterSnapshot, Host, MigrationKind, Vm } from "../../model/index.js";
import type { MigrationFlag, MigrationRequest } from "../driver.js";
import { flagsFor as executorFlags } from "../../daemon/migration-kind.js";

/** The seed's "true live migration" flag set. */
export const LIVE_FLAGS: readonly MigrationFlag[] = ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"];

export interface PickOptions {
  /** Storage kind of the VM (default shared). */
  readonly storage?: Vm["storage"]["kind"];
  readonly state?: Vm["state"];
  /** Dirty rate bounds, MiB/s (inclusive). */
  readonly minDirtyRate?: number;
  readonly maxDirtyRate?: number;
  readonly minMemoryMiB?: number;
  readonly maxMemoryMiB?: number;
  /** Skip this many matching VMs (to get different ones). */
  readonly skip?: number;
}

function kindFor(vm: Vm): MigrationKind {
  if (vm.state === "shutoff") return "cold";
  return vm.storage.kind === "shared" ? "live-shared" : vm.storage.kind === "volume" ? "live-volume" : "live-block";
}

/** Flags the executor would use for a kind, in live mode with the default flag set. */
export function flagsFor(kind: MigrationKind): MigrationFlag[] {
  return executorFlags(kind, { mode: "live", flags: [...LIVE_FLAGS] });
}

/**
 * A valid move on a simulated snapshot for tests and benches: a VM matching the options and a destination in its
 * cell that is reachable, mounts its shared storage and has the memory free. Throws when none matches.
 */
export function pickMove(snapshot: ClusterSnapshot, opts: PickOptions = {}): MigrationRequest & { readonly vmInfo: Vm } {
  const hosts = new Map(snapshot.hosts.map((h) => [h.name, h] as const));
  let skip = opts.skip ?? 0;
  for (const vm of snapshot.vms) {
    if (vm.storage.kind !== (opts.storage ?? "shared")) continue;
    if (vm.state !== (opts.state ?? "running")) continue;
    const dirty = vm.dirtyRateMiBps ?? 0;
    if (opts.minDirtyRate !== undefined && dirty < opts.minDirtyRate) continue;
    if (opts.maxDirtyRate !== undefined && dirty > opts.maxDirtyRate) continue;
    if (opts.minMemoryMiB !== undefined && vm.memoryMiB < opts.minMemoryMiB) continue;
    if (opts.maxMemoryMiB !== undefined && vm.memoryMiB > opts.maxMemoryMiB) continue;
    const from = hosts.get(vm.host);
    if (!from?.reachable) continue;
    const to = snapshot.hosts.find((h: Host) => {
      if (h.name === from.name || h.cell !== from.cell || !h.reachable) return false;
      if (vm.storage.kind === "shared" && !h.sharedStorage.includes(vm.storage.id)) return false;
      return vm.state === "shutoff" || h.memoryMiB - h.memoryUsedMiB >= vm.memoryMiB * 1.5;
    });
    if (!to) continue;
    if (skip-- > 0) continue;
    const kind = kindFor(vm);
    return { vm: vm.id, from: from.name, to: to.name, kind, flags: flagsFor(kind), maxDowntimeMs: 500, vmInfo: vm };
  }
  throw new Error(`pickMove: no VM matches ${JSON.stringify(opts)}`);
}
