import { z } from "zod";
import type { HostId, Vm } from "../model/index.js";
import type { Policy, PolicyDefinition, PolicyInput, Proposal } from "./types.js";
import { cleanText, compareStrings } from "./text.js";

export const MAINTENANCE_DRAIN = "maintenance-drain";
export const MAINTENANCE_DRAIN_PRIORITY = 100;

export const maintenanceDrainSchema = z.strictObject({
  enabled: z.boolean().default(true),
});
export type MaintenanceDrainParams = z.output<typeof maintenanceDrainSchema>;

/** Largest memory first (first-fit decreasing packs best), then by id for determinism. */
const byMemoryDesc = (a: Vm, b: Vm): number => b.memoryMiB - a.memoryMiB || compareStrings(a.id, b.id);

/** "host c1-h3 in maintenance: <cleaned flag-file text>" */
export function drainReason(host: { readonly name: HostId; readonly maintenanceReason?: string }): string {
  const why = host.maintenanceReason === undefined ? "" : cleanText(host.maintenanceReason);
  return why ? `host ${host.name} in maintenance: ${why}` : `host ${host.name} in maintenance`;
}

/**
 * Every VM on a host in maintenance is proposed for evacuation, one proposal per VM, hosts by name and
 * each host's VMs largest memory first. Only maintenance hosts' VM lists are read and proposals are
 * yielded lazily, so re-running it after every accepted move is cheap. That such hosts are never
 * destinations is a constraint (constraints/destination-state.ts) applied to every policy.
 */
export function* proposeDrain(input: PolicyInput): Generator<Proposal, void, undefined> {
  const { view } = input;
  for (const host of view.maintenanceHosts()) {
    const vms = view.vmsOn(host.name);
    if (vms.length === 0) continue;
    const reason = drainReason(host);
    for (const vm of [...vms].sort(byMemoryDesc)) {
      yield {
        policy: MAINTENANCE_DRAIN,
        priority: MAINTENANCE_DRAIN_PRIORITY,
        source: host.name,
        candidates: [vm.id],
        goal: { kind: "evacuate" },
        reason,
        key: `${MAINTENANCE_DRAIN}:${vm.id}`,
      };
    }
  }
}

export const maintenanceDrain = {
  name: MAINTENANCE_DRAIN,
  description: "Evacuates every VM of a host whose maintenance flag file exists; highest priority.",
  priority: MAINTENANCE_DRAIN_PRIORITY,
  schema: maintenanceDrainSchema,
  create: (): Policy => ({ name: MAINTENANCE_DRAIN, priority: MAINTENANCE_DRAIN_PRIORITY, propose: proposeDrain }),
} as const satisfies PolicyDefinition<typeof maintenanceDrainSchema>;
