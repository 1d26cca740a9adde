import { footprint, loadWith, type Footprint, type Host, type HostLoad, type MigrationKind, type Vm } from "../../model/index.js";
import type { MigrationPolicy } from "../../daemon/migration-kind.js";
import type { Goal, Thresholds } from "../types.js";
import { cellBoundary } from "./cell.js";
import { destinationState } from "./destination-state.js";
import { storageCompatible } from "./storage.js";
import { capacity } from "./capacity.js";

export { cellBoundary } from "./cell.js";
export { destinationState, sourceState } from "./destination-state.js";
export { storageCompatible } from "./storage.js";
export { capacity } from "./capacity.js";

export interface DestinationContext {
  readonly vm: Vm;
  readonly source: Host;
  readonly goal: Goal;
  readonly thresholds: Thresholds;
  readonly migration: MigrationPolicy;
  /** The VM's footprint, when the caller has it already (computed otherwise). */
  readonly footprint?: Footprint;
  /** The caller already checked what does not depend on the destination (vmMigrationVerdict). */
  readonly vmChecked?: boolean;
}

export type DestinationVerdict =
  | { readonly ok: true; readonly kind: MigrationKind }
  | { readonly ok: false; readonly code: string; readonly reason: string };

/**
 * Every built-in constraint on one destination, in order (the first refusal is the one reported): cell
 * boundary, destination state, storage/migration kind, capacity. `after` is the destination's load with
 * the VM added (the model's `loadWith`; the caller computes it once and scores with it). On success, the
 * migration kind.
 */
export function checkDestination(
  ctx: DestinationContext,
  dest: Host,
  after: HostLoad = loadWith(dest, ctx.footprint ?? footprint(ctx.vm), 1),
): DestinationVerdict {
  const cell = cellBoundary(ctx.source, dest);
  if (!cell.ok) return cell;
  const state = destinationState(ctx.source, dest);
  if (!state.ok) return state;
  const kind = storageCompatible(ctx.vm, ctx.source, dest, ctx.migration, ctx.vmChecked === true);
  if (!kind.ok) return kind;
  const cap = capacity(dest, after, (ctx.footprint ?? footprint(ctx.vm)).memoryMiB, ctx.goal, ctx.thresholds);
  if (!cap.ok) return cap;
  return kind;
}
