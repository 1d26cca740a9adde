import { z } from "zod";
import type { Policy, PolicyDefinition } from "./types.js";
import { maintenanceDrain } from "./maintenance-drain.js";
import { hotspotRelief } from "./hotspot-relief.js";

/** Every placement policy ballast knows, by name (DESIGN rule 7). Cell boundaries are a constraint, not listed: they cannot be disabled. */
export const POLICIES = [maintenanceDrain, hotspotRelief] as const satisfies readonly PolicyDefinition[];

export const policyConfigSchema = z.strictObject({
  "maintenance-drain": maintenanceDrain.schema.prefault({}),
  "hotspot-relief": hotspotRelief.schema.prefault({}),
});

export type PolicyConfig = z.output<typeof policyConfigSchema>;

/** The enabled policies, in priority order (highest first). */
export function enabledPolicies(config: PolicyConfig): Policy[] {
  return [
    config["maintenance-drain"].enabled ? maintenanceDrain.create(config["maintenance-drain"]) : undefined,
    config["hotspot-relief"].enabled ? hotspotRelief.create(config["hotspot-relief"]) : undefined,
  ].filter((p): p is Policy => p !== undefined);
}
