import {
  footprint,
  likelyKind,
  type Footprint,
  loadWith,
  memoryFraction,
  predictMigration,
  type BlockedMove,
  type ClusterSnapshot,
  type Host,
  type HostId,
  type MigrationKind,
  type Move,
  type Prediction,
  type Vm,
  type VmId,
} from "../model/index.js";
import type { Goal, LoadPoint, PlanNote, Policy, PolicyInput, Proposal, Thresholds, Verdict } from "../policies/types.js";
import { checkDestination, sourceState, type DestinationContext, type DestinationVerdict } from "../policies/constraints/index.js";
import { PlacementRules, type DestinationRule, type TagNames } from "../policies/constraints/affinity.js";
import { compareStrings, pct } from "../policies/text.js";
import { linkAssumptions, migrationKind, vmMigrationVerdict, type MigrationPolicy } from "./migration-kind.js";
import { PlanState } from "./plan-state.js";
import { DEFAULT_WEIGHTS, normaliseWeights, score, type ScoreWeights } from "./scoring.js";
import { DestinationOrder } from "./destination-order.js";

export { DEFAULT_WEIGHTS, score, type ScoreWeights } from "./scoring.js";

export interface PlanOptions {
  /** Enabled policies (any order: proposals are taken by priority, ties in this order). */
  readonly policies: readonly Policy[];
  readonly thresholds: Thresholds;
  /** The `migration` config section (only allowBlockMigration and allowColdForTags are read). */
  readonly migration: MigrationPolicy;
  /** Recent load per host; absent when planning on a snapshot file (loads then count as sustained). */
  readonly history?: ReadonlyMap<HostId, readonly LoadPoint[]>;
  /** Each VM's load at the sample before this one (for the trend of a VM). */
  readonly vmLoadBefore?: ReadonlyMap<VmId, LoadPoint>;
  readonly nowMs: number;
  /** Record, per proposal, candidates tried, destinations rejected with reasons, scores and the choice. */
  readonly explain?: boolean;
  /** Stop after this many moves (default: no limit; a drain is planned in full). */
  readonly maxMoves?: number;
  /** Guard hook (cooldowns, pins, …): a refused VM is not moved; when no candidate is left the proposal is blocked with this reason. */
  readonly exclude?: (vm: VmId, policy: string) => Verdict;
  /** Host guard (back-off after failures, per-host hourly limit): a refused host is neither source nor destination. */
  readonly excludeHost?: (host: HostId, policy: string) => Verdict;
  /** Destination guard (a VM does not return to a host it left recently): checked on destinations that pass everything else. */
  readonly excludeDestination?: (vm: VmId, dest: HostId, policy: string) => Verdict;
  /** Names of the placement-rule tags (pin, ignore, affinity groups); the defaults when absent. */
  readonly tags?: TagNames;
  readonly weights?: ScoreWeights;
}

export interface Rejection {
  readonly host: HostId;
  readonly code: string;
  readonly reason: string;
}

export interface ScoredDestination {
  readonly host: HostId;
  readonly kind: MigrationKind;
  readonly score: number;
  /** Destination CPU load and memory fraction after the move. */
  readonly cpuAfter: number;
  readonly memAfter: number;
}

export interface CandidateExplain {
  readonly vm: VmId;
  /** Set when the VM itself cannot move (excluded by a guard, storage, already moved in this plan…). */
  readonly skipped?: string;
  /** Expected migration time, passes and downtime, and whether pre-copy converges (with the chosen kind). */
  readonly prediction?: Prediction;
  readonly rejected: readonly Rejection[];
  /** Feasible destinations, best first. */
  readonly feasible: readonly ScoredDestination[];
  readonly chosen?: HostId;
}

export interface ExplainEntry {
  readonly policy: string;
  readonly priority: number;
  readonly source: HostId;
  readonly goal: Goal;
  readonly reason: string;
  readonly candidates: readonly CandidateExplain[];
  readonly outcome: { readonly kind: "moved"; readonly move: Move } | { readonly kind: "blocked"; readonly blocked: BlockedMove };
}

export interface Plan {
  /** In execution order; each was simulated on the result of the ones before it. */
  readonly moves: Move[];
  readonly blocked: BlockedMove[];
  readonly explain?: ExplainEntry[];
  /** What policies report on the end state (hosts emptied, moves held back); present when there is any. */
  readonly notes?: PlanNote[];
}

/** Predictions for ranking, before a destination (and so the exact kind) is known. */
function predictor(migration: MigrationPolicy): (vm: Vm) => Prediction {
  const link = linkAssumptions(migration);
  return (vm) => predictMigration(vm, likelyKind(vm), link);
}

const proposalKey = (p: Proposal): string => p.key ?? `${p.policy}|${p.source}|${p.candidates[0] ?? ""}`;

/**
 * Plans moves on a snapshot (DESIGN rules 2–3). Pure: the snapshot is not modified.
 *
 * Loop: run the enabled policies on the working copy; take the highest-priority proposal not yet
 * resolved; for each candidate VM in the proposal's order, filter the hosts of the source's cell through
 * every constraint (keeping each rejection's reason), score the feasible ones by normalised headroom and
 * accept the best (ties by host name). The accepted move is applied to the working copy before the next
 * iteration, so N moves are coherent. When no candidate can move, the proposal is recorded as blocked
 * with a summary of the rejections and not retried. A VM moves at most once per plan. Stops when no
 * proposal is left or `maxMoves` is reached.
 */
export function plan(snapshot: ClusterSnapshot, opts: PlanOptions): Plan {
  const state = new PlanState(snapshot);
  const rules = new PlacementRules(state, opts.tags);
  const input: PolicyInput = {
    view: state,
    thresholds: opts.thresholds,
    nowMs: opts.nowMs,
    predict: predictor(opts.migration),
    rules,
    compatible: (vm, source, dest) => migrationKind(vm, source, dest, opts.migration).ok,
    parkEmptyHosts: opts.policies.some((p) => p.parksEmptyHosts === true),
    ...(opts.history === undefined ? {} : { history: opts.history }),
    ...(opts.vmLoadBefore === undefined ? {} : { vmLoadBefore: opts.vmLoadBefore }),
  };
  const policies = opts.policies
    .map((p, i) => ({ p, i, max: p.priority ?? Number.POSITIVE_INFINITY }))
    .sort((a, b) => b.max - a.max || a.i - b.i);
  const weights = normaliseWeights(opts.weights ?? DEFAULT_WEIGHTS);
  const order = new DestinationOrder(state, opts.thresholds, weights);
  const maxMoves = opts.maxMoves ?? Number.POSITIVE_INFINITY;
  const resolved = new Set<string>();
  const moved = new Set<VmId>();
  const moves: Move[] = [];
  const blocked: BlockedMove[] = [];
  const explain: ExplainEntry[] | undefined = opts.explain ? [] : undefined;
  const iterationCap = 4 * (snapshot.vms.length + snapshot.hosts.length) + 100;

  for (let iteration = 0; moves.length < maxMoves && iteration < iterationCap; iteration++) {
    const proposal = nextProposal(policies, input, resolved);
    if (!proposal) break;
    const result = serve(proposal, { state, order, opts, weights, moved, rules, parkEmptyHosts: input.parkEmptyHosts, explain: explain !== undefined });
    if (result.move) {
      state.apply(result.move);
      rules.onMove(result.move.vm, result.move.from, result.move.to);
      order.update([result.move.from, result.move.to]);
      moved.add(result.move.vm);
      moves.push(result.move);
    } else {
      resolved.add(proposalKey(proposal));
      if (result.blocked) blocked.push(result.blocked);
    }
    if (explain && (result.move || result.blocked)) {
      explain.push({
        policy: proposal.policy,
        priority: proposal.priority,
        source: proposal.source,
        goal: proposal.goal,
        reason: proposal.reason,
        candidates: result.candidates,
        outcome: result.move ? { kind: "moved", move: result.move } : { kind: "blocked", blocked: result.blocked as BlockedMove },
      });
    }
  }
  const notes = policies.flatMap(({ p }) => (p.report ? [...p.report(input)] : []));
  return { moves, blocked, ...(explain && { explain }), ...(notes.length > 0 && { notes }) };
}

/**
 * The first unresolved proposal in priority order (stable: ties keep policy order, then the policy's
 * own order). A policy whose declared priority cannot beat the best proposal found so far is not run.
 */
function nextProposal(
  policies: readonly { readonly p: Policy; readonly max: number }[],
  input: PolicyInput,
  resolved: ReadonlySet<string>,
): Proposal | undefined {
  let best: Proposal | undefined;
  for (const { p, max } of policies) {
    if (best && best.priority >= max) break;
    for (const proposal of p.propose(input)) {
      if (best && proposal.priority <= best.priority) continue;
      if (resolved.has(proposalKey(proposal))) continue;
      best = proposal;
      // Nothing later from this policy can beat its declared maximum: stop reading (proposals may be lazy).
      if (proposal.priority >= max) break;
    }
  }
  return best;
}

interface Served {
  readonly move?: Move;
  readonly blocked?: BlockedMove;
  readonly candidates: CandidateExplain[];
}

interface CandidateResult {
  readonly move?: Move;
  /** Why this candidate could not move (for the blocked summary). */
  readonly why: string;
  readonly explain?: CandidateExplain;
}

/** What serving a proposal reads: the working copy, destination order, options and the plan so far. */
interface ServeContext {
  readonly state: PlanState;
  readonly order: DestinationOrder;
  readonly opts: PlanOptions;
  readonly weights: ScoreWeights;
  readonly moved: ReadonlySet<VmId>;
  readonly rules: PlacementRules;
  readonly parkEmptyHosts: boolean;
  readonly explain: boolean;
}

function serve(
  proposal: Proposal,
  ctx: ServeContext,
): Served {
  const { state, opts } = ctx;
  const candidates: CandidateExplain[] = [];
  const first = proposal.candidates[0];
  if (first === undefined) return { candidates };
  const source = state.host(proposal.source);
  const block = (reason: string): Served =>
    proposal.optional === true ? { candidates } : { blocked: { vm: first, policy: proposal.policy, reason }, candidates };
  if (!source) return block(`source ${proposal.source} is not in the snapshot`);
  const src = sourceState(source);
  if (!src.ok) return block(src.reason);
  const srcGuard = opts.excludeHost?.(source.name, proposal.policy);
  if (srcGuard && !srcGuard.ok) return block(srcGuard.reason);

  let whys: { vm: VmId; why: string }[] = [];
  // Explain and blocked reasons describe the last attempt (the one into the band, when it was needed).
  const attempt = (p: Proposal): Move | undefined => {
    whys = [];
    candidates.length = 0;
    for (const id of p.candidates) {
      const r = tryCandidate(id, p, source, ctx);
      if (r.explain) candidates.push(r.explain);
      if (r.move) return r.move;
      whys.push({ vm: id, why: r.why });
    }
    return undefined;
  };
  const goal = proposal.goal;
  // A hotspot no host under the low band can relieve goes to one that stays under the high band: better than hot
  // (unless the goal says intoBand: false).
  const move = attempt(proposal) ?? (goal.kind === "relieve" && goal.intoBand === undefined ? attempt({ ...proposal, goal: { ...goal, intoBand: true } }) : undefined);
  if (move) return { move, candidates };
  const [only] = whys;
  if (whys.length === 1 && only) return block(only.why);
  const shown = whys.slice(0, 3).map((w) => `${w.vm}: ${w.why}`);
  const more = whys.length > 3 ? `; … ${whys.length - 3} more` : "";
  return block(`${proposal.reason}; none of ${whys.length} candidates can move — ${shown.join("; ")}${more}`);
}

function tryCandidate(
  id: VmId,
  proposal: Proposal,
  source: Host,
  { state, order, opts, weights, moved, rules, parkEmptyHosts, explain }: ServeContext,
): CandidateResult {
  const skip = (why: string): CandidateResult => ({
    why,
    ...(explain ? { explain: { vm: id, skipped: why, rejected: [], feasible: [] } } : {}),
  });
  const vm = state.vmOn(source.name, id);
  if (!vm) {
    const elsewhere = state.vm(id);
    return skip(elsewhere ? `VM ${id} is on ${elsewhere.host}, not on ${source.name}` : `VM ${id} is not in the snapshot`);
  }
  if (moved.has(id)) return skip(`VM ${id} already moves in this plan`);
  const tagged = rules.movable(vm);
  if (!tagged.ok) return skip(tagged.reason);
  const excluded = opts.exclude?.(id, proposal.policy);
  if (excluded && !excluded.ok) return skip(excluded.reason);
  const movable = vmMigrationVerdict(vm, source, opts.migration);
  if (!movable.ok) return skip(movable.reason);

  const goal = proposal.goal;
  const fp = footprint(vm);
  const ctx: DestinationContext = {
    vm,
    source,
    goal,
    thresholds: opts.thresholds,
    migration: opts.migration,
    footprint: fp,
    vmChecked: true,
  };
  const counts = new Map<string, { n: number; reason: string }>();
  const rejected: Rejection[] = [];
  const feasible: ScoredDestination[] = [];
  const rule = rules.forVm(vm, source);
  const scanCtx: ScanContext = { ctx, fp, goal, proposal, source, vm, rule, counts, rejected, feasible, opts, weights, state, explain };
  // Branch and bound: hosts best bound first; stop once no remaining host can beat the best found.
  // Explaining scans every host (all rejections and scores are reported); so does a footprint with a
  // negative figure (bad data), for which the bound would not hold.
  const prune = !explain && fp.cpus >= 0 && fp.memoryMiB >= 0;
  const sorted = prune ? order.get(source.cell, goal) : undefined;
  const hosts = sorted ? sorted.hosts : state.hostsInCell(source.cell);
  const rescan = (pass: ScanPass): ScoredDestination | undefined => {
    counts.clear();
    rejected.length = 0;
    feasible.length = 0;
    return scan(scanCtx, hosts, sorted?.bound, pass);
  };
  let best = scan(scanCtx, hosts, sorted?.bound, { relaxAffinity: false, park: parkEmptyHosts });
  // Parked (empty) hosts are the fallback when no host in use can take the VM.
  if (!best && parkEmptyHosts) best = rescan({ relaxAffinity: false, park: false });
  // An evacuation must leave: a host the VM left recently is taken only when no other can (so a drain does not
  // send it straight back), and when the affinity group's host cannot take it, any host will do.
  if (!best && goal.kind === "evacuate" && opts.excludeDestination) best = rescan({ relaxAffinity: false, relaxReturn: true, park: false });
  if (!best && rule && goal.kind === "evacuate") best = rescan({ relaxAffinity: true, relaxReturn: true, park: false });
  if (!best) {
    const why = summarise(source, vm, counts, opts.thresholds);
    return explain ? { why, explain: { vm: id, prediction: predictMigration(vm, likelyKind(vm), linkAssumptions(opts.migration)), rejected, feasible } } : { why };
  }
  const move: Move = { vm: id, from: source.name, to: best.host, policy: proposal.policy, reason: proposal.reason, kind: best.kind };
  if (!explain) return { move, why: "" };
  feasible.sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0));
  const prediction = predictMigration(vm, best.kind, linkAssumptions(opts.migration));
  return { move, why: "", explain: { vm: id, prediction, rejected, feasible, chosen: best.host } };
}

interface ScanContext {
  readonly ctx: DestinationContext;
  readonly fp: Footprint;
  readonly goal: Goal;
  readonly proposal: Proposal;
  readonly source: Host;
  readonly vm: Vm;
  readonly rule: DestinationRule | undefined;
  readonly counts: Map<string, { n: number; reason: string }>;
  readonly rejected: Rejection[];
  readonly feasible: ScoredDestination[];
  readonly opts: PlanOptions;
  readonly weights: ScoreWeights;
  readonly state: PlanState;
  readonly explain: boolean;
}

interface ScanPass {
  /** Affinity groups may be split (an evacuation whose group host cannot take the VM). */
  readonly relaxAffinity: boolean;
  /** The destination guard (return cooldown) is skipped: an evacuation that no other host can take. */
  readonly relaxReturn?: boolean;
  /** Empty hosts are refused (parked by consolidation). */
  readonly park: boolean;
}

/**
 * The best destination among `hosts` (with `bound`, in bound order: stops once none left can win), every
 * refusal counted by code. Order of checks: host guard, built-in constraints, tag rules, the proposal's own
 * condition, the destination guard, parked hosts.
 */
function scan(c: ScanContext, hosts: readonly Host[], bound: readonly number[] | undefined, pass: ScanPass): ScoredDestination | undefined {
  const { ctx, fp, goal, proposal, source, vm, rule, counts, rejected, feasible, opts, weights, state, explain } = c;
  let best: ScoredDestination | undefined;
  for (let i = 0; i < hosts.length; i++) {
    if (bound && best && (bound[i] ?? 0) < best.score) break;
    const dest = hosts[i] as Host;
    const after = loadWith(dest, fp, 1);
    const guarded = dest.name === source.name ? undefined : opts.excludeHost?.(dest.name, proposal.policy);
    let v: DestinationVerdict = guarded && !guarded.ok ? guarded : checkDestination(ctx, dest, after);
    if (v.ok) {
      const tagged = rule?.(dest, pass.relaxAffinity);
      const own = tagged && !tagged.ok ? tagged : proposal.accept?.(vm, dest, after);
      const refusal = own && !own.ok ? own : pass.relaxReturn === true ? undefined : opts.excludeDestination?.(vm.id, dest.name, proposal.policy);
      if (refusal && !refusal.ok) v = refusal;
      else if (pass.park && state.vmsOn(dest.name).length === 0) v = { ok: false, code: "parked", reason: `${dest.name} is empty (parked while consolidation is enabled)` };
    }
    if (!v.ok) {
      if (v.code === "same-host") continue;
      const n = counts.get(v.code);
      if (n) n.n++;
      else counts.set(v.code, { n: 1, reason: v.reason });
      if (explain) rejected.push({ host: dest.name, code: v.code, reason: v.reason });
      continue;
    }
    const memAfter = memoryFraction(after);
    const s = score(after.cpuLoad, memAfter, goal, opts.thresholds, weights);
    // Only the best so far (or every one, when explaining) is materialised.
    if (!explain && best && (s < best.score || (s === best.score && compareStrings(dest.name, best.host) > 0))) continue;
    const scored: ScoredDestination = { host: dest.name, kind: v.kind, score: s, cpuAfter: after.cpuLoad, memAfter };
    if (explain) feasible.push(scored);
    if (!best || better(scored, best)) best = scored;
  }
  return best;
}

const better = (a: ScoredDestination, b: ScoredDestination): boolean =>
  a.score > b.score || (a.score === b.score && compareStrings(a.host, b.host) < 0);

const CODE_ORDER = ["cell", "maintenance", "unreachable", "disabled", "hypervisor", "storage-not-mounted", "pool", "memory", "cpu-high", "cpu-low", "mem-low"];
const codeRank = (code: string): number => {
  const i = CODE_ORDER.indexOf(code);
  return i < 0 ? CODE_ORDER.length : i;
};

const plural = (n: number): string => (n === 1 ? "1 host" : `${n} hosts`);

/** "no destination in cell core: 3 hosts in maintenance, 4 hosts lack memory (need 8192 MiB), …" */
function summarise(source: Host, vm: Vm, counts: ReadonlyMap<string, { n: number; reason: string }>, t: Thresholds): string {
  const head = `no destination in cell ${source.cell}`;
  if (counts.size === 0) return `${head}: no other host in the cell`;
  const need = footprint(vm).memoryMiB;
  const parts: string[] = [];
  // Fixed order (the constraints' order), whatever order the hosts were scanned in.
  const codes = [...counts.keys()].sort((a, b) => codeRank(a) - codeRank(b) || compareStrings(a, b));
  for (const code of codes) {
    const { n, reason } = counts.get(code) ?? { n: 0, reason: "" };
    const h = plural(n);
    switch (code) {
      case "maintenance":
        parts.push(`${h} in maintenance`);
        break;
      case "unreachable":
        parts.push(`${h} unreachable`);
        break;
      case "disabled":
        parts.push(`${h} disabled on the hypervisor`);
        break;
      case "memory":
        parts.push(`${h} ${n === 1 ? "lacks" : "lack"} memory (need ${need} MiB below memHigh ${pct(t.memHigh)})`);
        break;
      case "cpu-high":
        parts.push(`${h} would reach cpuHigh ${pct(t.cpuHigh)}`);
        break;
      case "cpu-low":
        parts.push(`${h} would reach cpuLow ${pct(t.cpuLow)}`);
        break;
      case "mem-low":
        parts.push(`${h} would reach memLow ${pct(t.memLow)}`);
        break;
      case "storage-not-mounted":
        parts.push(vm.storage.kind === "shared" ? `${h} ${n === 1 ? "does" : "do"} not mount shared storage ${vm.storage.id}` : `${h}: ${reason}`);
        break;
      case "hypervisor":
        parts.push(`${h} ${n === 1 ? "runs" : "run"} another hypervisor`);
        break;
      case "pool":
        parts.push(`${h} in another XenServer pool`);
        break;
      default:
        parts.push(`${h}: ${reason}`);
    }
  }
  return `${head}: ${parts.join(", ")}`;
}
