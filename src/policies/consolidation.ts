import { z } from "zod";
import { footprint, hostWith, loadTotals, memoryFraction, type CellId, type Host, type HostId, type HostLoad, type Vm } from "../model/index.js";
import type { PlanNote, Policy, PolicyDefinition, PolicyInput, Proposal, Thresholds } from "./types.js";
import { compareStrings, pct } from "./text.js";

export const CONSOLIDATION = "consolidation";
export const CONSOLIDATION_PRIORITY = 10;
/** Hosts tried as the one to empty, least loaded first: bounds the work of a round on a large cell. */
const MAX_TRIED = 3;

export const consolidationSchema = z.strictObject({
  enabled: z.boolean().default(false),
});
export type ConsolidationParams = z.output<typeof consolidationSchema>;

/** A host can take VMs: reachable, not in maintenance, not disabled on the hypervisor. */
export const placeable = (h: Host): boolean => h.reachable && !h.maintenance && h.disabled !== true;

/** How full a host is against the low band: 1 = at cpuLow or memLow. */
const fullness = (h: HostLoad, t: Thresholds): number => Math.max(h.cpuLoad / t.cpuLow, memoryFraction(h) / t.memLow);

export interface ConsolidationTarget {
  readonly host: Host;
  /** Where each VM of the host goes, in move order (largest memory first). */
  readonly placement: readonly { readonly vm: Vm; readonly to: HostId }[];
  /** Hosts left in use once it is empty. */
  readonly remaining: number;
}

/**
 * The host a cell can do without: the least loaded (against the low band) of its placeable hosts in use
 * whose VMs all fit, first-fit decreasing onto the fullest others, with every destination kept under
 * cpuLow/memLow, compatible storage and the tag rules (anti-affinity tracked across the placement). A host
 * holding a pinned or ignored VM, or an affinity group kept together on it, is never chosen. Undefined when
 * none qualifies: then the cell's load does not fit on fewer hosts. Balance uses it too (not to refill it).
 */
export function consolidationTarget(input: PolicyInput, cell: CellId): ConsolidationTarget | undefined {
  const { view, thresholds: t } = input;
  const active = view.hostsInCell(cell).filter((h) => placeable(h) && view.vmsOn(h.name).length > 0);
  if (active.length < 2) return undefined;
  const { cpuDemand, cpus, memoryUsedMiB: memUsed, memoryMiB: mem } = loadTotals(active);
  const byFullness = [...active].sort((a, b) => fullness(a, t) - fullness(b, t) || compareStrings(a.name, b.name));
  for (const source of byFullness.slice(0, MAX_TRIED)) {
    // In total first: the others under the low band must hold their load and the source's VMs (not its own overhead).
    let vmCpus = 0;
    let vmMem = 0;
    for (const vm of view.vmsOn(source.name)) {
      const fp = footprint(vm);
      vmCpus += fp.cpus;
      vmMem += fp.memoryMiB;
    }
    const othersCpu = cpuDemand - source.cpuLoad * source.cpus + vmCpus;
    const othersMem = memUsed - source.memoryUsedMiB + vmMem;
    if (othersCpu >= t.cpuLow * (cpus - source.cpus) || othersMem >= t.memLow * (mem - source.memoryMiB)) continue;
    const placement = pack(input, source, byFullness.filter((h) => h !== source).reverse());
    if (placement) return { host: source, placement, remaining: active.length - 1 };
  }
  return undefined;
}

/** First-fit decreasing of the source's VMs onto `bins` (in order), or undefined when one does not fit. */
function pack(input: PolicyInput, source: Host, bins: readonly Host[]): { vm: Vm; to: HostId }[] | undefined {
  const { view, thresholds: t, rules } = input;
  const loads = new Map<HostId, Host>(bins.map((b) => [b.name, b]));
  const taken = new Set<string>();
  const out: { vm: Vm; to: HostId }[] = [];
  const vms = [...view.vmsOn(source.name)].sort((a, b) => b.memoryMiB - a.memoryMiB || compareStrings(a.id, b.id));
  for (const vm of vms) {
    if (!rules.movable(vm).ok) return undefined;
    const fp = footprint(vm);
    const rule = rules.forVm(vm, source);
    const groups = rules.rule(vm.id)?.antiAffinity ?? [];
    let to: Host | undefined;
    for (const b of bins) {
      const after = hostWith(loads.get(b.name) ?? b, fp, 1);
      const fits = after.cpuLoad < t.cpuLow && memoryFraction(after) < t.memLow;
      if (fits && input.compatible(vm, source, b) && (rule?.(b, false).ok ?? true) && !groups.some((g) => taken.has(`${b.name}\u0000${g}`))) {
        to = after;
        break;
      }
    }
    if (!to) return undefined;
    loads.set(to.name, to);
    for (const g of groups) taken.add(`${to.name}\u0000${g}`);
    out.push({ vm, to: to.name });
  }
  return out;
}

/**
 * Per cell, when its load fits on fewer hosts under the low band: one proposal, the next VM of the host
 * being emptied, to the host the packing chose for it (so VMs go to the fullest hosts, never to another
 * host about to be emptied). One VM at a time: the planner re-runs the policy after every move. A blocked
 * move stops the cell's consolidation for this plan (reported), rather than leaving a host half emptied.
 */
export function* proposeConsolidation(input: PolicyInput): Generator<Proposal, void, undefined> {
  for (const cell of input.view.cells()) {
    const target = consolidationTarget(input, cell);
    const next = target?.placement[0];
    if (!target || !next) continue;
    const to = next.to;
    yield {
      policy: CONSOLIDATION,
      priority: CONSOLIDATION_PRIORITY,
      source: target.host.name,
      candidates: [next.vm.id],
      goal: { kind: "place" },
      reason: `cell ${cell} fits on ${target.remaining} hosts under cpuLow ${pct(input.thresholds.cpuLow)}/memLow ${pct(input.thresholds.memLow)}: emptying ${target.host.name}`,
      key: `${CONSOLIDATION}:${next.vm.id}`,
      accept: (_vm, dest) => (dest.name === to ? { ok: true } : { ok: false, code: "consolidation", reason: `consolidation packs ${next.vm.id} onto ${to}` }),
    };
  }
}

/** Empty placeable hosts: parked capacity the operator may power off (ballast never does). */
export function* reportEmptyHosts(input: PolicyInput): Generator<PlanNote, void, undefined> {
  for (const h of input.view.hosts()) {
    if (!placeable(h) || input.view.vmsOn(h.name).length > 0) continue;
    yield { policy: CONSOLIDATION, code: "power-off-candidate", host: h.name, cell: h.cell, held: false, message: `${h.name} empty — can be powered off (ballast does not power hosts off)` };
  }
}

export const consolidation = {
  name: CONSOLIDATION,
  description:
    "When a cell's load fits on fewer hosts under cpuLow/memLow, empties its least-loaded host one VM at a time and reports it as empty — can be powered off; while enabled, empty hosts are parked (used by other policies only when nothing else fits).",
  priority: CONSOLIDATION_PRIORITY,
  schema: consolidationSchema,
  create: (): Policy => ({
    name: CONSOLIDATION,
    priority: CONSOLIDATION_PRIORITY,
    parksEmptyHosts: true,
    propose: proposeConsolidation,
    report: reportEmptyHosts,
  }),
} as const satisfies PolicyDefinition<typeof consolidationSchema>;
