import { z } from "zod";
import type { HostId, Vm, VmId } from "../model/index.js";
import type { Policy, PolicyDefinition, PolicyInput, Proposal } from "./types.js";
import { DEFAULT_TAG_NAMES } from "./constraints/affinity.js";
import { compareStrings } from "./text.js";

export const AFFINITY = "affinity";
export const AFFINITY_PRIORITY = 40;

const tagName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^=\s]+$/, "expected a tag name without '=' or whitespace (the group or glob follows '=' on the VM)");

export const affinitySchema = z.strictObject({
  /** Corrective proposals (fix anti-affinity violations, gather split groups, leave disallowed hosts). The rules themselves always constrain every move. */
  enabled: z.boolean().default(true),
  tags: z
    .strictObject({
      pin: tagName.default(DEFAULT_TAG_NAMES.pin),
      ignore: tagName.default(DEFAULT_TAG_NAMES.ignore),
      antiAffinity: tagName.default(DEFAULT_TAG_NAMES.antiAffinity),
      affinity: tagName.default(DEFAULT_TAG_NAMES.affinity),
      hostAffinity: tagName.default(DEFAULT_TAG_NAMES.hostAffinity),
    })
    .superRefine((t, ctx) => {
      const seen = new Map<string, string>();
      for (const [field, name] of Object.entries(t)) {
        const first = seen.get(name);
        if (first !== undefined) ctx.addIssue({ code: "custom", path: [field], input: name, message: `expected a tag name different from ${first}'s` });
        else seen.set(name, field);
      }
    })
    .prefault({}),
});
export type AffinityParams = z.output<typeof affinitySchema>;

const byMemory = (a: Vm, b: Vm): number => a.memoryMiB - b.memoryMiB || compareStrings(a.id, b.id);

/**
 * Corrective proposals for tag rules already broken (the constraints keep every new move within them):
 * a host with several VMs of an anti-affinity group moves all but one (the one that cannot or is dearest to
 * move stays; cheapest first); an affinity group spread over hosts gathers on the host holding most of it;
 * a VM on a host its host-affinity glob excludes leaves it. Hosts in maintenance are left to the drain.
 * Pinned and ignored VMs are never candidates. When no destination fits, the proposal is reported
 * blocked with the reasons (e.g. the group's host lacks memory).
 */
export function* proposeAffinity(input: PolicyInput): Generator<Proposal, void, undefined> {
  const { view, rules } = input;
  const active = (host: HostId): boolean => {
    const h = view.host(host);
    return h !== undefined && h.reachable && !h.maintenance;
  };
  const vmsOf = (host: HostId, ids: readonly VmId[]): Vm[] => view.vmsOn(host).filter((v) => ids.includes(v.id));
  const proposal = (source: HostId, candidates: VmId[], reason: string, key: string): Proposal => ({
    policy: AFFINITY,
    priority: AFFINITY_PRIORITY,
    source,
    candidates,
    goal: { kind: "place" },
    reason,
    key: `${AFFINITY}:${key}`,
  });
  for (const v of rules.antiAffinityViolations()) {
    if (!active(v.host)) continue;
    const members = vmsOf(v.host, v.members).sort(byMemory);
    const movable = members.filter((m) => rules.movable(m).ok);
    // Keep one: an immovable member if there is one, else the dearest to move.
    const candidates = (movable.length === members.length ? movable.slice(0, -1) : movable).map((m) => m.id);
    if (candidates.length === 0) continue;
    yield proposal(v.host, candidates, `anti-affinity group ${v.group}: ${members.length} VMs on ${v.host}`, `anti:${v.group}:${v.host}`);
  }
  for (const g of rules.splitGroups()) {
    for (const s of g.strays) {
      if (!active(s.host)) continue;
      const [vm] = vmsOf(s.host, [s.vm]);
      if (!vm || !rules.movable(vm).ok) continue;
      yield proposal(s.host, [s.vm], `affinity group ${g.group} is split: gathering on ${g.home}`, `together:${s.vm}`);
    }
  }
  for (const v of rules.hostAffinityViolations()) {
    if (!active(v.host)) continue;
    const [vm] = vmsOf(v.host, [v.vm]);
    if (!vm || !rules.movable(vm).ok) continue;
    yield proposal(v.host, [v.vm], `${v.vm} is on ${v.host}, outside ${rules.names.hostAffinity}=${v.globs.join(" or ")}`, `host:${v.vm}`);
  }
}

export const affinity = {
  name: AFFINITY,
  description:
    "Tag rules (pin, ignore, anti-affinity, affinity, host-affinity; tag names configurable) constrain every policy's moves; when enabled, existing violations get corrective moves.",
  priority: AFFINITY_PRIORITY,
  schema: affinitySchema,
  create: (): Policy => ({ name: AFFINITY, priority: AFFINITY_PRIORITY, propose: proposeAffinity }),
} as const satisfies PolicyDefinition<typeof affinitySchema>;
