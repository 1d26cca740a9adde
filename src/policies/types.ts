import type { z } from "zod";
import type { CellId, Host, HostId, Vm, VmId } from "../model/index.js";

/** Read-only, indexed view of a snapshot. The planner keeps it up to date as it accepts moves. */
export interface ClusterView {
  readonly takenAt: string;
  hosts(): readonly Host[];
  host(id: HostId): Host | undefined;
  vm(id: VmId): Vm | undefined;
  vmsOn(host: HostId): readonly Vm[];
  cells(): readonly CellId[];
  hostsInCell(cell: CellId): readonly Host[];
}

/** Hysteresis band shared by every policy and the capacity constraint. */
export interface Thresholds {
  readonly cpuHigh: number;
  readonly cpuLow: number;
  readonly memHigh: number;
  readonly memLow: number;
}

export interface LoadPoint {
  readonly atMs: number;
  readonly cpuLoad: number;
}

/** Everything a policy may look at: data only, no clock, no I/O (DESIGN rule 1). */
export interface PolicyInput {
  readonly view: ClusterView;
  readonly thresholds: Thresholds;
  readonly nowMs: number;
  /**
   * Recent smoothed CPU load per host, oldest first. Absent when planning on a snapshot file: its
   * loads are then taken as sustained.
   */
  readonly history?: ReadonlyMap<HostId, readonly LoadPoint[]>;
}

/** What a proposal asks of the move that serves it. */
export type Goal =
  /** Leave the host (maintenance): any destination that passes the constraints will do. */
  | { readonly kind: "evacuate" }
  /** Bring the source under these fractions; the destination must stay under the low band. */
  | { readonly kind: "relieve"; readonly cpuBelow: number; readonly memBelow: number };

/** A wish to move one of `candidates` (in preference order) off `source`; the planner finds the destination. */
export interface Proposal {
  readonly policy: string;
  /** Higher runs first: drain before hotspot relief. */
  readonly priority: number;
  readonly source: HostId;
  readonly candidates: readonly VmId[];
  readonly goal: Goal;
  readonly reason: string;
}

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly code: string; readonly reason: string };

export interface Policy {
  readonly name: string;
  propose(input: PolicyInput): readonly Proposal[];
}

/** Registry entry (DESIGN rule 7): name, parameter schema with defaults, factory. */
export interface PolicyDefinition<S extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly description: string;
  readonly priority: number;
  /** Parameters, every field defaulted; includes `enabled`. */
  readonly schema: S;
  create(params: z.output<S>): Policy;
}
