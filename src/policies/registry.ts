import { z } from "zod";
import type { Policy, PolicyDefinition } from "./types.js";
import { maintenanceDrain } from "./maintenance-drain.js";
import { hotspotRelief } from "./hotspot-relief.js";
import { affinity } from "./affinity.js";
import { balance } from "./balance.js";
import { consolidation } from "./consolidation.js";

/**
 * Every placement policy ballast knows, by name (DESIGN rule 7), highest priority first. Cell
 * boundaries, capacity, destination state and storage are constraints (./constraints/), not listed:
 * they apply to every proposal and cannot be disabled. A new policy is added here and nowhere else.
 */
export const POLICIES = [maintenanceDrain, hotspotRelief, affinity, balance, consolidation] as const satisfies readonly PolicyDefinition[];

type Definitions = (typeof POLICIES)[number];
type PolicyName = Definitions["name"];
type ConfigShape = { [D in Definitions as D["name"]]: z.ZodPrefault<D["schema"]> };

export const policyConfigSchema = z.strictObject(
  Object.fromEntries(POLICIES.map((d) => [d.name, (d.schema as z.ZodType).prefault({})])) as unknown as ConfigShape,
);

export type PolicyConfig = z.output<typeof policyConfigSchema>;

export const policyNames = (): PolicyName[] => POLICIES.map((d) => d.name);

/** The enabled policies, in priority order (highest first). */
export function enabledPolicies(config: PolicyConfig): Policy[] {
  return [...POLICIES]
    .sort((a, b) => b.priority - a.priority)
    .flatMap((d) => {
      const params = config[d.name];
      // Each definition reads the parameters of its own schema; the mapped config type guarantees the pairing.
      return params.enabled ? [(d.create as (p: typeof params) => Policy)(params)] : [];
    });
}
