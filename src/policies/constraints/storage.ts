import type { Host, Vm } from "../../model/index.js";
import { migrationKind, type KindVerdict, type MigrationPolicy } from "../../daemon/migration-kind.js";

/**
 * Storage and hypervisor compatibility of a destination: the migration kind the move would use, or why
 * none is possible (shared storage not mounted, another hypervisor or XenServer pool, block migration
 * disabled, …). The decision table itself lives in src/daemon/migration-kind.ts.
 */
export function storageCompatible(vm: Vm, source: Host, dest: Host, migration: MigrationPolicy): KindVerdict {
  return migrationKind(vm, source, dest, migration);
}
