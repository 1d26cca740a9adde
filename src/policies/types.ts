import type { z } from "zod";
import type { CellId, Host, HostId, HostLoad, Prediction, Vm, VmId } from "../model/index.js";
import type { PlacementRules } from "./constraints/affinity.js";

/** Read-only, indexed view of a snapshot. The planner keeps it up to date as it accepts moves. */
export interface ClusterView {
  readonly takenAt: string;
  hosts(): readonly Host[];
  host(id: HostId): Host | undefined;
  vm(id: VmId): Vm | undefined;
  vmsOn(host: HostId): readonly Vm[];
  cells(): readonly CellId[];
  hostsInCell(cell: CellId): readonly Host[];
  /** Hosts with `maintenance: true`, in name order (indexed: the drain policy reads it after every move). */
  maintenanceHosts(): readonly Host[];
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
  /** Each VM's CPU load (host CPUs) at the previous sample, when the daemon has one: how fast a VM's load rises. */
  readonly vmLoadBefore?: ReadonlyMap<VmId, LoadPoint>;
  /** Expected cost and convergence of moving a VM (from memory, measured dirty rate and link bandwidth). */
  readonly predict?: (vm: Vm) => Prediction;
  /** Tag rules (pin, ignore, affinity groups), kept in step with the view. */
  readonly rules: PlacementRules;
  /** Whether storage and hypervisor allow the VM to migrate from source to dest at all (the migration config). */
  readonly compatible: (vm: Vm, source: Host, dest: Host) => boolean;
  /** An enabled policy parks empty hosts (consolidation): others use them only when nothing else fits. */
  readonly parkEmptyHosts: boolean;
}

/** What a proposal asks of the move that serves it. */
export type Goal =
  /** Leave the host (maintenance): any destination that passes the constraints will do. */
  | { readonly kind: "evacuate" }
  /**
   * Bring the source under these fractions; the destination must stay under the low band, or under the high band
   * (intoBand: true, tried when no host under the low band can take any candidate). intoBand: false forbids that
   * fallback (a hotspot only predicted is not worth filling another host into the band).
   */
  | {
      readonly kind: "relieve";
      readonly cpuBelow: number;
      readonly memBelow: number;
      /** The hot dimension(s): destinations are scored by their headroom in it. */
      readonly hot: "cpu" | "memory" | "both";
      readonly intoBand?: boolean;
    }
  /** A better placement (affinity, balance, consolidation): the destination must stay under the low band. */
  | { readonly kind: "place" };

/** A wish to move one of `candidates` (in preference order) off `source`; the planner finds the destination. */
export interface Proposal {
  readonly policy: string;
  /** Higher runs first: drain before hotspot relief. */
  readonly priority: number;
  readonly source: HostId;
  readonly candidates: readonly VmId[];
  readonly goal: Goal;
  readonly reason: string;
  /**
   * Identity for the planner: once a proposal with this key is blocked it is not retried in the same
   * plan. Defaults to policy, source and first candidate.
   */
  readonly key?: string;
  /** The policy's own condition on a destination (after = its load with the VM added), checked after the constraints. */
  readonly accept?: (vm: Vm, dest: Host, after: HostLoad) => Verdict;
  /** An improvement, not a need: when no candidate can move, nothing is reported as blocked. */
  readonly optional?: boolean;
}

/**
 * Something a policy reports about the planned end state that is not a move: a host emptied by
 * consolidation, or a move held back by an anti-flapping rule (`held`: counted in metrics by `code`).
 */
export interface PlanNote {
  readonly policy: string;
  /** A bounded code, e.g. "power-off-candidate", "not-sustained", "min-improvement". */
  readonly code: string;
  readonly host?: HostId;
  readonly cell?: CellId;
  readonly held: boolean;
  readonly message: string;
}

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly code: string; readonly reason: string };

export interface Policy {
  readonly name: string;
  /**
   * The highest priority of any proposal this policy makes. Lets the planner skip running lower
   * policies while a higher one still has work; absent means "unknown" (always run).
   */
  readonly priority?: number;
  /**
   * Proposals in the policy's preference order. May be lazy (a generator): the planner stops reading
   * once it has found the proposal it will serve, so a policy should yield its most urgent work first.
   */
  propose(input: PolicyInput): Iterable<Proposal>;
  /** While enabled, empty hosts are parked capacity (PolicyInput.parkEmptyHosts). */
  readonly parksEmptyHosts?: boolean;
  /** Notes on the end state of the plan (run once, after the last move). */
  report?(input: PolicyInput): Iterable<PlanNote>;
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

/** Whether the goal holds destinations under cpuHigh/memHigh (not the low band). */
export const fillsToHigh = (goal: Goal): boolean => goal.kind === "evacuate" || (goal.kind === "relieve" && goal.intoBand === true);
