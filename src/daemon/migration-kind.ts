import type { Host, LinkAssumptions, MigrationKind, Vm } from "../model/index.js";
import type { MigrationConfig } from "../config/schema.js";
import { MIGRATION_FLAGS, type MigrationFlag } from "../drivers/driver.js";

/** The parts of the `migration` config section that decide whether and how a VM can move. */
export type MigrationPolicy = Pick<MigrationConfig, "allowBlockMigration" | "allowColdForTags"> &
  Partial<Pick<MigrationConfig, "mode" | "maxDowntimeMs" | "bandwidthMiBps">>;

/** Link speed predictions assume when `migration.bandwidthMiBps` sets no cap (10 GbE, less protocol overhead). */
export const DEFAULT_LINK_MIBPS = 1000;
/** QEMU start and stop around a migration (measured ≈ 1.4 s in the libvirt lab). */
export const MIGRATION_OVERHEAD_MS = 1500;

/** What predictions assume, from the `migration` config section. */
export function linkAssumptions(cfg: MigrationPolicy): LinkAssumptions {
  return {
    bandwidthMiBps: cfg.bandwidthMiBps ?? DEFAULT_LINK_MIBPS,
    maxDowntimeMs: cfg.maxDowntimeMs ?? 500,
    overheadMs: MIGRATION_OVERHEAD_MS,
    suspend: cfg.mode === "suspend",
  };
}
/** The parts of the `migration` config section that decide the libvirt flag set. */
export type MigrationFlagConfig = Pick<MigrationConfig, "mode" | "flags"> &
  Partial<Pick<MigrationConfig, "modeByCell" | "permitPostCopy" | "permitAutoConverge">>;

export interface KindBlocked {
  readonly ok: false;
  readonly code: MigrationBlockCode;
  readonly reason: string;
}
export type KindVerdict = { readonly ok: true; readonly kind: MigrationKind } | KindBlocked;

export type MigrationBlockCode =
  /** Source and destination run different hypervisors. */
  | "hypervisor"
  /** The VM's disks are on shared storage the destination (or, inconsistently, the source) does not mount. */
  | "storage-not-mounted"
  /** XenServer shared-storage live migration (VM.pool_migrate) stays within a pool. */
  | "pool"
  /** Volume-backed live migration is a KVM/libvirt feature. */
  | "volume-unsupported"
  /** Storage XenMotion cannot move a VM with block volumes attached. */
  | "block-volumes"
  /** Local disks, block migration off and no cold-migration tag. */
  | "block-disabled";

const OK = { ok: true } as const;
const KIND: { readonly [K in MigrationKind]: KindVerdict } = {
  "live-shared": { ok: true, kind: "live-shared" },
  "live-block": { ok: true, kind: "live-block" },
  "live-volume": { ok: true, kind: "live-volume" },
  cold: { ok: true, kind: "cold" },
};

const hasColdTag = (vm: Vm, cfg: MigrationPolicy): boolean => vm.tags.some((t) => cfg.allowColdForTags.includes(t));

/**
 * What can be decided about moving `vm` off `from` without looking at a destination. The planner
 * checks this once per candidate, so a VM that cannot move at all is reported with one clear reason
 * instead of one rejection per host.
 */
export function vmMigrationVerdict(vm: Vm, from: Host, cfg: MigrationPolicy): { readonly ok: true } | KindBlocked {
  if (vm.state !== "shutoff" && vm.storage.kind === "local") {
    if (cfg.allowBlockMigration) {
      if (from.hypervisor === "xen" && vm.volumes > 0) {
        return {
          ok: false,
          code: "block-volumes",
          reason: `Storage XenMotion cannot move a VM with block volumes attached (${vm.volumes} attached)`,
        };
      }
    } else if (!hasColdTag(vm, cfg)) {
      return {
        ok: false,
        code: "block-disabled",
        reason: "local disk and block migration is disabled (migration.allowBlockMigration)",
      };
    }
  }
  if (vm.state !== "shutoff" && vm.storage.kind === "volume" && from.hypervisor === "xen") {
    return { ok: false, code: "volume-unsupported", reason: "volume-backed live migration is not available on XenServer" };
  }
  return OK;
}

/**
 * The migration kind for moving `vm` from `from` to `to` (DESIGN.md, "Migration kinds"), or why it
 * cannot move there. Pure.
 *
 * - VM-level first (vmMigrationVerdict): local disk with block migration off and no cold tag, etc.;
 * - different hypervisors: impossible;
 * - shared storage: both hosts must mount it (a shut-off VM too: it must start from that storage);
 *   XenServer additionally keeps it within one pool;
 * - shut off: `cold`;
 * - shared: `live-shared`; volume: `live-volume` (KVM only);
 * - local: `live-block` when `allowBlockMigration` (XenServer: no volumes attached), else `cold`
 *   when the VM carries one of `allowColdForTags`, else blocked.
 *
 * Paused VMs migrate like running ones.
 */
export function migrationKind(vm: Vm, from: Host, to: Host, cfg: MigrationPolicy): KindVerdict {
  const pre = vmMigrationVerdict(vm, from, cfg);
  return pre.ok ? destinationKind(vm, from, to, cfg) : pre;
}

/**
 * The destination-dependent part of migrationKind, for a VM that already passed vmMigrationVerdict
 * (the planner checks that once per candidate, then this once per destination).
 */
export function destinationKind(vm: Vm, from: Host, to: Host, cfg: MigrationPolicy): KindVerdict {
  if (from.hypervisor !== to.hypervisor) {
    return {
      ok: false,
      code: "hypervisor",
      reason: `${to.name} runs ${to.hypervisor}, ${vm.name} is on ${from.hypervisor}`,
    };
  }
  const storage = vm.storage;
  if (storage.kind === "shared") {
    if (!to.sharedStorage.includes(storage.id)) {
      return { ok: false, code: "storage-not-mounted", reason: `${to.name} does not mount shared storage ${storage.id}` };
    }
    if (!from.sharedStorage.includes(storage.id)) {
      return { ok: false, code: "storage-not-mounted", reason: `source ${from.name} does not report mounting shared storage ${storage.id}` };
    }
    if (from.hypervisor === "xen" && from.pool !== to.pool && vm.state !== "shutoff") {
      return {
        ok: false,
        code: "pool",
        reason: `${to.name} is in pool ${to.pool ?? "(none)"}, not ${from.pool ?? "(none)"}: VM.pool_migrate stays within a pool`,
      };
    }
  }
  if (vm.state === "shutoff") return KIND.cold;
  switch (storage.kind) {
    case "shared":
      return KIND["live-shared"];
    case "volume":
      return KIND["live-volume"];
    case "local":
      return cfg.allowBlockMigration ? KIND["live-block"] : KIND.cold;
  }
}

const COLD_FLAGS: readonly MigrationFlag[] = ["OFFLINE", "PERSIST_DEST", "UNDEFINE_SOURCE"];

/**
 * The libvirt flag set for a migration of this kind: the configured flags (`mode: suspend` drops
 * LIVE, so the guest is paused for the copy), plus NON_SHARED_DISK for `live-block`, POSTCOPY and
 * AUTO_CONVERGE when the guard may use them (libvirt needs POSTCOPY at start to switch later); `cold` is
 * exactly OFFLINE + PERSIST_DEST + UNDEFINE_SOURCE. Returned in MIGRATION_FLAGS order, no duplicates.
 */
export function flagsFor(kind: MigrationKind, cfg: MigrationFlagConfig, cell?: string): MigrationFlag[] {
  const mode = (cell !== undefined ? cfg.modeByCell?.[cell] : undefined) ?? cfg.mode;
  const set = new Set<MigrationFlag>();
  if (kind === "cold") {
    for (const f of COLD_FLAGS) set.add(f);
  } else {
    for (const f of cfg.flags) set.add(f);
    set.delete("OFFLINE");
    if (mode === "suspend") set.delete("LIVE");
    if (kind === "live-block") set.add("NON_SHARED_DISK");
    else set.delete("NON_SHARED_DISK");
    // Post-copy and auto-converge only make sense while the guest keeps running during the copy.
    const live = set.has("LIVE");
    if (cfg.permitPostCopy && live) set.add("POSTCOPY");
    if (cfg.permitAutoConverge && live) set.add("AUTO_CONVERGE");
    if (!live) {
      set.delete("POSTCOPY");
      set.delete("AUTO_CONVERGE");
    }
  }
  return MIGRATION_FLAGS.filter((f) => set.has(f));
}
