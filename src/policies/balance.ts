import { z } from "zod";
import { footprint, loadTotals, loadWith, LoadSpread, type CellId, type Host, type HostLoad, type Vm, type VmId } from "../model/index.js";
import type { PlanNote, Policy, PolicyDefinition, PolicyInput, Proposal, Verdict } from "./types.js";
import { consolidationTarget, placeable } from "./consolidation.js";
import { compareStrings } from "./text.js";

export const BALANCE = "balance";
export const BALANCE_PRIORITY = 20;
/** Destinations a candidate is evaluated against when ranking (the least loaded): bounds a round's work. */
const DEST_SAMPLE = 4;
/** Sources whose VMs are ranked (the most loaded, where moves lower the spread most): bounds it too. */
const SOURCE_SAMPLE = 8;

export const balanceSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** A cell is balanced while its weighted spread (cpuWeight·σcpu + memoryWeight·σmemory) is at or below this. */
    maxImbalance: z.number().min(0).max(1).default(0.1),
    /**
     * A move must lower the cell's spread by at least this much. A move changes the spread of a cell of n hosts
     * by roughly 1/n of the load it shifts: lower this for cells of many hosts.
     */
    minImprovement: z.number().min(0).max(1).default(0.002),
    cpuWeight: z.number().min(0).default(0.5),
    memoryWeight: z.number().min(0).default(0.5),
  })
  .superRefine((p, ctx) => {
    if (p.cpuWeight + p.memoryWeight <= 0) {
      ctx.addIssue({ code: "custom", path: ["cpuWeight"], input: p.cpuWeight, message: "expected cpuWeight and memoryWeight not both 0" });
    }
  });
export type BalanceParams = z.output<typeof balanceSchema>;

/** One cell as balance sees it: the hosts it counts, their spread and the target every host tends to. */
interface CellState {
  readonly cell: CellId;
  readonly hosts: readonly Host[];
  readonly spread: LoadSpread;
  /** The cell's utilisation (total demand over total capacity, per dimension, weighted): moves do not change it. */
  readonly target: number;
}

/**
 * The hosts balance counts in a cell: placeable ones; while consolidation parks empty hosts, not the empty
 * ones nor the one being emptied (balance would otherwise refill what consolidation empties). Undefined while
 * consolidation still has a host to empty in the cell: packing first, then balancing what is left.
 */
function cellState(input: PolicyInput, cell: CellId, w: { cpu: number; memory: number }): CellState | undefined {
  const { view } = input;
  if (input.parkEmptyHosts && consolidationTarget(input, cell)) return undefined;
  const hosts = view.hostsInCell(cell).filter((h) => placeable(h) && (!input.parkEmptyHosts || view.vmsOn(h.name).length > 0));
  if (hosts.length < 2) return undefined;
  const { cpuDemand, cpus, memoryUsedMiB, memoryMiB } = loadTotals(hosts);
  const spread = new LoadSpread(hosts, w);
  const target = spread.load({ cpuLoad: cpus > 0 ? cpuDemand / cpus : 0, memoryUsedMiB, memoryMiB });
  return { cell, hosts, spread, target };
}

/** How much moving `vm` from `source` to `dest` (its load `after`) lowers the spread; -Infinity when the destination would pass the target. */
function gain(c: CellState, vm: Vm, source: Host, dest: Host, after: HostLoad): number {
  if (c.spread.load(after) > c.target + 1e-12) return Number.NEGATIVE_INFINITY;
  return c.spread.value - c.spread.with([{ before: source, after: loadWith(source, footprint(vm), -1) }, { before: dest, after }]);
}

/**
 * Per cell whose spread exceeds maxImbalance (worst first): one proposal per host above the cell's target
 * load (the most loaded few), its candidates the VMs whose move lowers the spread by at least minImprovement, ranked by that
 * reduction per unit of migration cost (predicted time, else memory to copy); guests predicted not to converge
 * are left alone. The planner picks, among destinations the proposal accepts, the one with most headroom:
 * a destination must end at or below the target (so a host that received never becomes a source, and a
 * balanced cell stays still: stability) and under cpuLow/memLow (the place goal), and the move must keep
 * the reduction. Proposals are optional: a host whose candidates cannot move is not reported blocked.
 */
export function* proposeBalance(input: PolicyInput, params: BalanceParams): Generator<Proposal, void, undefined> {
  const w = { cpu: params.cpuWeight, memory: params.memoryWeight };
  const cells = input.view
    .cells()
    .map((cell) => cellState(input, cell, w))
    .filter((c): c is CellState => c !== undefined && c.spread.value > params.maxImbalance)
    .sort((a, b) => b.spread.value - a.spread.value || compareStrings(a.cell, b.cell));
  for (const c of cells) {
    const byLoad = [...c.hosts].sort((a, b) => c.spread.load(a) - c.spread.load(b) || compareStrings(a.name, b.name));
    const dests = byLoad.filter((h) => c.spread.load(h) < c.target).slice(0, DEST_SAMPLE);
    const ranked: { source: Host; candidates: VmId[]; best: number }[] = [];
    for (const source of byLoad.filter((h) => c.spread.load(h) > c.target).reverse().slice(0, SOURCE_SAMPLE)) {
      const scored: { id: VmId; rate: number }[] = [];
      for (const vm of input.view.vmsOn(source.name)) {
        const r = rate(input, c, vm, source, dests, params.minImprovement);
        if (r !== undefined) scored.push({ id: vm.id, rate: r });
      }
      if (scored.length === 0) continue;
      scored.sort((a, b) => b.rate - a.rate || compareStrings(a.id, b.id));
      ranked.push({ source, candidates: scored.map((s) => s.id), best: scored[0]?.rate ?? 0 });
    }
    ranked.sort((a, b) => b.best - a.best || compareStrings(a.source.name, b.source.name));
    const reason = `cell ${c.cell} imbalance ${c.spread.value.toFixed(3)} > maxImbalance ${params.maxImbalance}`;
    for (const r of ranked) {
      yield {
        policy: BALANCE,
        priority: BALANCE_PRIORITY,
        source: r.source.name,
        candidates: r.candidates,
        goal: { kind: "place" },
        reason,
        key: `${BALANCE}:${r.source.name}`,
        optional: true,
        accept: (vm, dest, after): Verdict => {
          const g = gain(c, vm, r.source, dest, after);
          if (g === Number.NEGATIVE_INFINITY) return { ok: false, code: "balance-target", reason: `${dest.name} would end above the cell's mean load` };
          if (g < params.minImprovement) return { ok: false, code: "min-improvement", reason: `moving to ${dest.name} lowers the imbalance by ${g.toFixed(4)} < minImprovement ${params.minImprovement}` };
          return { ok: true };
        },
      };
    }
  }
}

/** Reduction per unit of cost of the VM's best move among `dests`, or undefined when none reaches minImprovement. */
function rate(input: PolicyInput, c: CellState, vm: Vm, source: Host, dests: readonly Host[], minImprovement: number): number | undefined {
  if (!input.rules.movable(vm).ok) return undefined;
  const fp = footprint(vm);
  if (fp.cpus <= 0 && fp.memoryMiB <= 0) return undefined;
  const t = input.thresholds;
  let best = Number.NEGATIVE_INFINITY;
  for (const dest of dests) {
    const after = loadWith(dest, fp, 1);
    if (after.cpuLoad >= t.cpuLow || after.memoryUsedMiB >= t.memLow * after.memoryMiB) continue;
    best = Math.max(best, gain(c, vm, source, dest, after));
  }
  if (best < minImprovement) return undefined;
  // Predicted only for VMs worth moving: the prediction is the dearest part.
  const p = input.predict?.(vm);
  if (p && !p.converges) return undefined;
  return best / Math.max(1, p?.timeMs ?? vm.memoryMiB);
}

/** Cells left above maxImbalance with no move worth its cost: a move held back by minImprovement (counted in metrics). */
export function* reportBalance(input: PolicyInput, params: BalanceParams): Generator<PlanNote, void, undefined> {
  const w = { cpu: params.cpuWeight, memory: params.memoryWeight };
  for (const cell of input.view.cells()) {
    const c = cellState(input, cell, w);
    if (!c || c.spread.value <= params.maxImbalance) continue;
    yield {
      policy: BALANCE,
      code: "min-improvement",
      cell,
      held: true,
      message: `cell ${cell} imbalance ${c.spread.value.toFixed(3)} > maxImbalance ${params.maxImbalance}, but no allowed move lowers it by minImprovement ${params.minImprovement}`,
    };
  }
}

export const balance = {
  name: BALANCE,
  description:
    "Keeps each cell's weighted spread of host CPU and memory load under maxImbalance, one move at a time, the largest reduction per unit of migration cost first, each reducing it by at least minImprovement; destinations stay at or below the cell's mean and under cpuLow/memLow.",
  priority: BALANCE_PRIORITY,
  schema: balanceSchema,
  create: (params: BalanceParams): Policy => ({
    name: BALANCE,
    priority: BALANCE_PRIORITY,
    propose: (input) => proposeBalance(input, params),
    report: (input) => reportBalance(input, params),
  }),
} as const satisfies PolicyDefinition<typeof balanceSchema>;
