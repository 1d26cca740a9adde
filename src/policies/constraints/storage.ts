import type { Host, Vm } from "../../model/index.js";
import { destinationKind, migrationKind, type KindVerdict, type MigrationPolicy } from "../../daemon/migration-kind.js";

/**
 * Storage and hypervisor compatibility of a destination: the migration kind the move would use, or why
 * none is possible (shared storage not mounted, another hypervisor or XenServer pool, block migration
 * disabled, …). The decision table itself lives in src/daemon/migration-kind.ts. `vmChecked` skips the
 * destination-independent part when the caller has already checked it (vmMigrationVerdict).
 */
export function storageCompatible(vm: Vm, source: Host, dest: Host, migration: MigrationPolicy, vmChecked = false): KindVerdict {
  return vmChecked ? destinationKind(vm, source, dest, migration) : migrationKind(vm, source, dest, migration);
}
