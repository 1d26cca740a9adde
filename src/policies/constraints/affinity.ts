import type { CellId, Host, HostId, Vm, VmId } from "../../model/index.js";
import type { ClusterView, Verdict } from "../types.js";
import { globMatch } from "../glob.js";
import { compareStrings } from "../text.js";

/** The VM tags placement rules are read from (configurable: `policies.affinity.tags`). */
export interface TagNames {
  /** Never moved, except that a drain reports it blocked with a reason. */
  readonly pin: string;
  /** Never moved, by any policy; a drain reports it blocked so the host is not mistaken for empty. */
  readonly ignore: string;
  /** `NAME=GROUP`: no two VMs of the group on one host. */
  readonly antiAffinity: string;
  /** `NAME=GROUP`: the group's VMs kept together on one host when they fit. */
  readonly affinity: string;
  /** `NAME=GLOB`: only hosts whose name matches (`*`, `?`); several tags allow any of them. */
  readonly hostAffinity: string;
}

export const DEFAULT_TAG_NAMES: TagNames = Object.freeze({
  pin: "ballast.pin",
  ignore: "ballast.ignore",
  antiAffinity: "ballast.anti-affinity",
  affinity: "ballast.affinity",
  hostAffinity: "ballast.host-affinity",
});

export interface VmRule {
  readonly pin: boolean;
  readonly ignore: boolean;
  readonly antiAffinity: readonly string[];
  readonly affinity?: string;
  readonly hostGlobs: readonly string[];
}

const OK: Verdict = Object.freeze({ ok: true });

/** The rule a VM's tags set, or undefined when they set none (most VMs: the fast path). A value-less group tag is ignored. */
export function parseVmRule(tags: readonly string[], names: TagNames): VmRule | undefined {
  let pin = false;
  let ignore = false;
  let affinity: string | undefined;
  const anti: string[] = [];
  const globs: string[] = [];
  for (const t of tags) {
    const eq = t.indexOf("=");
    const key = eq < 0 ? t : t.slice(0, eq);
    const value = eq < 0 ? "" : t.slice(eq + 1);
    if (key === names.pin) pin = true;
    else if (key === names.ignore) ignore = true;
    else if (value === "") continue;
    else if (key === names.antiAffinity) anti.push(value);
    else if (key === names.affinity) affinity ??= value;
    else if (key === names.hostAffinity) globs.push(value);
  }
  if (!pin && !ignore && anti.length === 0 && affinity === undefined && globs.length === 0) return undefined;
  return { pin, ignore, antiAffinity: anti, ...(affinity !== undefined && { affinity }), hostGlobs: globs };
}

/** Members of one group, per host (only hosts holding at least one). */
type Members = Map<HostId, VmId[]>;

const groupKey = (cell: CellId, group: string): string => `${cell}\u0000${group}`;

/** A host can hold a group only if it can take VMs: reachable, not in maintenance, not disabled. */
const placeable = (h: Host | undefined): h is Host => h !== undefined && h.reachable && !h.maintenance && h.disabled !== true;

export interface AntiAffinityViolation {
  readonly group: string;
  readonly host: HostId;
  readonly members: readonly VmId[];
}

export interface SplitGroup {
  readonly group: string;
  /** Where the group gathers: the placeable host holding most of it (ties by name). */
  readonly home: HostId;
  /** Members elsewhere, with their hosts. */
  readonly strays: readonly { readonly vm: VmId; readonly host: HostId }[];
}

/** A destination check for one VM leaving one source; `relaxAffinity` lets an evacuation split its group. */
export type DestinationRule = (dest: Host, relaxAffinity: boolean) => Verdict;

/**
 * Placement rules from VM tags, indexed once per plan (one pass over the VMs; only tagged VMs are kept)
 * and kept up to date by `onMove` as the planner accepts moves. Groups are per cell: migrations never
 * cross cells, so a group name reused in two cells is two groups. Every check is O(1) map lookups or
 * O(hosts holding the group), never a scan of all VMs.
 */
export class PlacementRules {
  private readonly ruleOf = new Map<VmId, VmRule>();
  private readonly hostOf = new Map<VmId, HostId>();
  private readonly anti = new Map<string, Members>();
  private readonly together = new Map<string, Members>();

  constructor(
    private readonly view: ClusterView,
    readonly names: TagNames = DEFAULT_TAG_NAMES,
  ) {
    for (const h of view.hosts()) {
      for (const vm of view.vmsOn(h.name)) {
        if (vm.tags.length === 0) continue;
        const r = parseVmRule(vm.tags, names);
        if (!r) continue;
        this.ruleOf.set(vm.id, r);
        this.hostOf.set(vm.id, h.name);
        for (const g of r.antiAffinity) add(this.anti, groupKey(h.cell, g), h.name, vm.id);
        if (r.affinity !== undefined) add(this.together, groupKey(h.cell, r.affinity), h.name, vm.id);
      }
    }
  }

  rule(vm: VmId): VmRule | undefined {
    return this.ruleOf.get(vm);
  }

  /** Whether any policy may move the VM at all (pin and ignore tags). */
  movable(vm: Vm): Verdict {
    const r = this.ruleOf.get(vm.id);
    if (r?.ignore) return { ok: false, code: "ignored", reason: `${vm.id} ignored by tag ${this.names.ignore}: ballast never moves it; move it by hand` };
    if (r?.pin) return { ok: false, code: "pinned", reason: `${vm.id} pinned by tag ${this.names.pin}; unpin or move it by hand` };
    return OK;
  }

  /** The destination rule for moving `vm` off `source`, or undefined when its tags set none (no check needed). */
  forVm(vm: Vm, source: Host): DestinationRule | undefined {
    const r = this.ruleOf.get(vm.id);
    if (!r || (r.antiAffinity.length === 0 && r.affinity === undefined && r.hostGlobs.length === 0)) return undefined;
    const home = r.affinity === undefined ? undefined : this.home(source.cell, r.affinity);
    return (dest, relax) => {
      for (const g of r.antiAffinity) {
        const there = this.anti.get(groupKey(dest.cell, g))?.get(dest.name)?.find((id) => id !== vm.id);
        if (there !== undefined) {
          return { ok: false, code: "anti-affinity", reason: `${dest.name} already runs ${there} of anti-affinity group ${g}` };
        }
      }
      if (r.hostGlobs.length > 0 && !r.hostGlobs.some((g) => globMatch(g, dest.name))) {
        return { ok: false, code: "host-affinity", reason: `${dest.name} does not match ${this.names.hostAffinity}=${r.hostGlobs.join(" or ")}` };
      }
      if (home && !relax) {
        if (home.host === source.name) {
          return { ok: false, code: "affinity", reason: `${vm.id} stays with affinity group ${r.affinity ?? ""} on ${source.name}` };
        }
        if (dest.name !== home.host) {
          return { ok: false, code: "affinity", reason: `affinity group ${r.affinity ?? ""} is on ${home.host}` };
        }
      }
      return OK;
    };
  }

  /**
   * The placeable host holding most of the group (ties by name); undefined when the group has a single
   * member (nothing to keep together) or none on a placeable host.
   */
  private home(cell: CellId, group: string): { host: HostId } | undefined {
    const members = this.together.get(groupKey(cell, group));
    if (!members) return undefined;
    let total = 0;
    let best: HostId | undefined;
    let bestN = 0;
    for (const [host, ids] of members) {
      total += ids.length;
      if (!placeable(this.view.host(host))) continue;
      if (ids.length > bestN || (ids.length === bestN && best !== undefined && compareStrings(host, best) < 0)) {
        best = host;
        bestN = ids.length;
      }
    }
    return total > 1 && best !== undefined ? { host: best } : undefined;
  }

  /** Keeps the group indices in step with the planner's working copy. */
  onMove(vm: VmId, from: HostId, to: HostId): void {
    const r = this.ruleOf.get(vm);
    if (!r) return;
    this.hostOf.set(vm, to);
    const cell = this.view.host(to)?.cell;
    if (cell === undefined) return;
    for (const g of r.antiAffinity) move(this.anti, groupKey(cell, g), vm, from, to);
    if (r.affinity !== undefined) move(this.together, groupKey(cell, r.affinity), vm, from, to);
  }

  /** Hosts holding two or more VMs of one anti-affinity group. */
  *antiAffinityViolations(): Generator<AntiAffinityViolation, void, undefined> {
    for (const [key, members] of this.anti) {
      const group = key.slice(key.indexOf("\u0000") + 1);
      for (const [host, ids] of members) if (ids.length > 1) yield { group, host, members: ids };
    }
  }

  /** Affinity groups spread over more than one host, with the host they should gather on. */
  *splitGroups(): Generator<SplitGroup, void, undefined> {
    for (const [key, members] of this.together) {
      if (members.size < 2) continue;
      const sep = key.indexOf("\u0000");
      const group = key.slice(sep + 1);
      const home = this.home(key.slice(0, sep) as CellId, group);
      if (!home) continue;
      const strays: { vm: VmId; host: HostId }[] = [];
      for (const [host, ids] of members) if (host !== home.host) for (const id of ids) strays.push({ vm: id, host });
      yield { group, home: home.host, strays };
    }
  }

  /** Tagged VMs on a host their host-affinity globs do not match. */
  *hostAffinityViolations(): Generator<{ readonly vm: VmId; readonly host: HostId; readonly globs: readonly string[] }, void, undefined> {
    for (const [vm, r] of this.ruleOf) {
      if (r.hostGlobs.length === 0) continue;
      const host = this.hostOf.get(vm);
      if (host !== undefined && !r.hostGlobs.some((g) => globMatch(g, host))) yield { vm, host, globs: r.hostGlobs };
    }
  }
}

function add(index: Map<string, Members>, key: string, host: HostId, vm: VmId): void {
  let members = index.get(key);
  if (!members) index.set(key, (members = new Map<HostId, VmId[]>()));
  const ids = members.get(host);
  if (ids) ids.push(vm);
  else members.set(host, [vm]);
}

function move(index: Map<string, Members>, key: string, vm: VmId, from: HostId, to: HostId): void {
  const members = index.get(key);
  const ids = members?.get(from);
  if (!members || !ids) return;
  const at = ids.indexOf(vm);
  if (at >= 0) ids.splice(at, 1);
  if (ids.length === 0) members.delete(from);
  add(index, key, to, vm);
}
