import type { MigrationKind } from "./move.js";
import type { Vm } from "./snapshot.js";

/** What the prediction assumes about the migration link and the switch-over. */
export interface LinkAssumptions {
  readonly bandwidthMiBps: number;
  /** Downtime the guard allows at most: pre-copy converges once a pass's dirty set fits in it. */
  readonly maxDowntimeMs: number;
  /** Fixed cost around every migration (QEMU start and stop, switch-over). */
  readonly overheadMs: number;
  /** No LIVE flag: the guest is paused for the whole copy. */
  readonly suspend: boolean;
}

export interface Prediction {
  /** Expected wall time of the migration; for one that cannot converge, the time until the guard steps in. */
  readonly timeMs: number;
  readonly converges: boolean;
  readonly passes: number;
  readonly downtimeMs: number;
  /** False when the driver measured no dirty rate and none was assumed (the figure is then optimistic). */
  readonly dirtyRateKnown: boolean;
}

/** Passes after which a pre-copy that still has not fitted its dirty set in the downtime counts as not converging. */
const MAX_PASSES = 30;

/** Disk a migration of this kind copies: block migration and a cold move copy local disks, the others none. */
export const copiedDiskMiB = (vm: Vm, kind: MigrationKind): number =>
  kind === "live-block" || (kind === "cold" && vm.storage.kind === "local") ? (vm.diskMiB ?? 0) : 0;

/** The kind a VM would most likely move with, for ranking before a destination is chosen. */
export const likelyKind = (vm: Vm): MigrationKind =>
  vm.state === "shutoff" ? "cold" : vm.storage.kind === "local" ? "live-block" : vm.storage.kind === "volume" ? "live-volume" : "live-shared";

/**
 * Pre-copy as a geometric series: the first pass copies RAM (and disk for block migration); each next pass
 * copies what the guest dirtied during the previous one, until a pass fits in the allowed downtime. A guest
 * dirtying at or above the bandwidth never gets there.
 */
export function predictMigration(vm: Vm, kind: MigrationKind, link: LinkAssumptions): Prediction {
  const bw = Math.max(1e-6, link.bandwidthMiBps);
  const disk = copiedDiskMiB(vm, kind);
  const dirty = vm.dirtyRateMiBps ?? 0;
  const dirtyRateKnown = vm.dirtyRateMiBps !== undefined;
  const sec = (mib: number): number => (mib / bw) * 1000;
  if (kind === "cold" || vm.state === "shutoff") {
    // Shut down (if running), copy the definition (and disk when local), start again.
    const timeMs = link.overheadMs + sec(copiedDiskMiB(vm, "cold"));
    return { timeMs, converges: true, passes: 1, downtimeMs: vm.state === "shutoff" ? 0 : timeMs, dirtyRateKnown };
  }
  if (link.suspend) {
    const copy = sec(disk + vm.memoryMiB);
    return { timeMs: link.overheadMs + copy, converges: true, passes: 1, downtimeMs: sec(vm.memoryMiB), dirtyRateKnown };
  }
  let total = sec(disk + vm.memoryMiB);
  let passTime = total;
  for (let pass = 2; pass <= MAX_PASSES; pass++) {
    const dirtied = Math.min(vm.memoryMiB, dirty * (passTime / 1000));
    const copy = sec(dirtied);
    if (copy <= link.maxDowntimeMs) {
      return { timeMs: link.overheadMs + total + copy, converges: true, passes: pass, downtimeMs: copy, dirtyRateKnown };
    }
    if (dirty >= bw) {
      // The dirty set never shrinks: the guard will act after this pass.
      return { timeMs: link.overheadMs + total + copy, converges: false, passes: pass, downtimeMs: copy, dirtyRateKnown };
    }
    total += copy;
    passTime = copy;
  }
  return { timeMs: link.overheadMs + total, converges: false, passes: MAX_PASSES, downtimeMs: sec(Math.min(vm.memoryMiB, dirty * (passTime / 1000))), dirtyRateKnown };
}
