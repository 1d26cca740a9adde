import type { CellId } from "./ids.js";
import { memoryFraction } from "./load.js";
import type { ClusterSnapshot, Host } from "./snapshot.js";

export interface CellImbalance {
  readonly cell: CellId;
  /** Population standard deviation of host CPU load (fractions). */
  readonly cpu: number;
  /** Population standard deviation of host memory use (fractions). */
  readonly memory: number;
  /** Hosts counted: reachable and not in maintenance (a draining host would skew the figure). */
  readonly hosts: number;
}

export function stddev(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
}

export function cellImbalance(cell: CellId, hosts: readonly Host[]): CellImbalance {
  const counted = hosts.filter((h) => h.reachable && !h.maintenance);
  return {
    cell,
    cpu: stddev(counted.map((h) => h.cpuLoad)),
    memory: stddev(counted.map(memoryFraction)),
    hosts: counted.length,
  };
}

/** Per-cell imbalance, cells in name order. */
export function imbalance(snapshot: ClusterSnapshot): CellImbalance[] {
  const byCell = new Map<CellId, Host[]>();
  for (const h of snapshot.hosts) {
    const list = byCell.get(h.cell);
    if (list) list.push(h);
    else byCell.set(h.cell, [h]);
  }
  return [...byCell.keys()].sort().map((c) => cellImbalance(c, byCell.get(c) ?? []));
}
