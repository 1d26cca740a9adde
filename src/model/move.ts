import type { HostId, VmId } from "./ids.js";

export const MIGRATION_KINDS = ["live-shared", "live-block", "live-volume", "cold"] as const;
export type MigrationKind = (typeof MIGRATION_KINDS)[number];

export interface Move {
  readonly vm: VmId;
  readonly from: HostId;
  readonly to: HostId;
  readonly policy: string;
  readonly reason: string;
  readonly kind: MigrationKind;
}

/** A move some policy wanted but no destination could take. */
export interface BlockedMove {
  readonly vm: VmId;
  readonly policy: string;
  readonly reason: string;
}
