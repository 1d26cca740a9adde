import { memoryFraction, type CellId, type Host, type HostId } from "../model/index.js";
import { fillsToHigh, type Goal, type Thresholds } from "../policies/types.js";
import { compareStrings } from "../policies/text.js";
import { score, weightsFor, type ScoreWeights } from "./scoring.js";
import type { PlanState } from "./plan-state.js";

interface Order {
  readonly hosts: Host[];
  /** bound[i] = score of hosts[i] with nothing added: no move onto it can score higher. */
  readonly bound: number[];
}

/**
 * The hosts of each cell sorted by their score bound (best first, then by name), kept up to date as
 * moves are applied. Scanning destinations in this order, the planner can stop once the bound of the
 * next host is below the best feasible score found: no later host can win (scores only fall when a
 * footprint is added). Built lazily per (cell, band, score weights); one move re-positions two hosts.
 */
export class DestinationOrder {
  private readonly orders = new Map<string, { order: Order; goal: Goal }>();

  constructor(
    private readonly state: PlanState,
    private readonly thresholds: Thresholds,
    private readonly weights: ScoreWeights,
  ) {}

  /** Hosts of the cell, best bound first, with their bounds (live arrays: read, do not keep). */
  get(cell: CellId, goal: Goal): Order {
    // Bounds depend only on the band the goal holds destinations to and the dimensions it weighs.
    const w = weightsFor(goal, this.weights);
    const key = `${fillsToHigh(goal) ? "high" : "low"}\u0000${w.cpu}\u0000${w.memory}\u0000${cell}`;
    const hit = this.orders.get(key);
    if (hit) return hit.order;
    const hosts = [...this.state.hostsInCell(cell)];
    const bounds = new Map(hosts.map((h) => [h.name, this.boundOf(h, goal)]));
    hosts.sort((a, b) => (bounds.get(b.name) ?? 0) - (bounds.get(a.name) ?? 0) || compareStrings(a.name, b.name));
    const order: Order = { hosts, bound: hosts.map((h) => bounds.get(h.name) ?? 0) };
    this.orders.set(key, { order, goal });
    return order;
  }

  /** Re-positions hosts whose load changed (call after PlanState.apply). */
  update(changed: readonly HostId[]): void {
    for (const name of changed) {
      const h = this.state.host(name);
      if (!h) continue;
      for (const { order, goal } of this.orders.values()) {
        const at = order.hosts.findIndex((x) => x.name === name);
        if (at < 0) continue;
        order.hosts.splice(at, 1);
        order.bound.splice(at, 1);
        const b = this.boundOf(h, goal);
        let lo = 0;
        let hi = order.hosts.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          const mb = order.bound[mid] ?? 0;
          const before = mb > b || (mb === b && compareStrings((order.hosts[mid] as Host).name, h.name) < 0);
          if (before) lo = mid + 1;
          else hi = mid;
        }
        order.hosts.splice(lo, 0, h);
        order.bound.splice(lo, 0, b);
      }
    }
  }

  private boundOf(h: Host, goal: Goal): number {
    return score(h.cpuLoad, memoryFraction(h), goal, this.thresholds, this.weights);
  }
}
