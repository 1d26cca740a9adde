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

/** Relative weight of CPU and memory in a combined figure; normalised to sum 1 where used. */
export interface LoadWeights {
  readonly cpu: number;
  readonly memory: number;
}

type Loadish = Pick<Host, "cpuLoad" | "memoryUsedMiB" | "memoryMiB">;

/**
 * The weighted spread of a set of hosts, w.cpu·σ(cpu load) + w.memory·σ(memory use) (population standard
 * deviations of fractions, as cellImbalance), with sums kept so the spread after changing two hosts (a move)
 * is O(1): balancing policies evaluate many candidate moves per round.
 */
export class LoadSpread {
  private readonly n: number;
  private readonly w: LoadWeights;
  /** Sums of cpu and memory fractions and of their squares. */
  private readonly s: Sums = { cpu: 0, cpuSq: 0, mem: 0, memSq: 0 };

  constructor(hosts: readonly Loadish[], weights: LoadWeights) {
    const total = weights.cpu + weights.memory;
    this.w = total > 0 ? { cpu: weights.cpu / total, memory: weights.memory / total } : { cpu: 0.5, memory: 0.5 };
    this.n = hosts.length;
    for (const h of hosts) shift(this.s, h, 1);
  }

  /** The spread now. */
  get value(): number {
    return this.spread(this.s);
  }

  /** The spread with each host's figures replaced (`before` must be counted in the set). */
  with(changes: readonly { readonly before: Loadish; readonly after: Loadish }[]): number {
    const s = { ...this.s };
    for (const { before, after } of changes) {
      shift(s, before, -1);
      shift(s, after, 1);
    }
    return this.spread(s);
  }

  /** The weighted load of one host, w.cpu·cpu + w.memory·memory, on the same scale as the spread. */
  load(h: Loadish): number {
    return this.w.cpu * h.cpuLoad + this.w.memory * memoryFraction(h);
  }

  private spread(s: Sums): number {
    if (this.n === 0) return 0;
    const sd = (sum: number, sq: number): number => Math.sqrt(Math.max(0, sq / this.n - (sum / this.n) ** 2));
    return this.w.cpu * sd(s.cpu, s.cpuSq) + this.w.memory * sd(s.mem, s.memSq);
  }
}

interface Sums {
  cpu: number;
  cpuSq: number;
  mem: number;
  memSq: number;
}

function shift(s: Sums, h: Loadish, sign: 1 | -1): void {
  const m = memoryFraction(h);
  s.cpu += sign * h.cpuLoad;
  s.cpuSq += sign * h.cpuLoad * h.cpuLoad;
  s.mem += sign * m;
  s.memSq += sign * m * m;
}
