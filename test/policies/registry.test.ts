import { describe, expect, it } from "vitest";
import { enabledPolicies, policyConfigSchema, POLICIES } from "../../src/policies/registry.js";

describe("policy registry", () => {
  it("defaults: every policy enabled with its parameters", () => {
    expect(policyConfigSchema.parse({})).toEqual({
      "maintenance-drain": { enabled: true },
      "hotspot-relief": { enabled: true, sustainMinutes: 5 },
    });
  });

  it.each([
    { name: "all enabled, priority order", config: {}, expected: ["maintenance-drain", "hotspot-relief"] },
    { name: "hotspot relief disabled", config: { "hotspot-relief": { enabled: false } }, expected: ["maintenance-drain"] },
    { name: "drain disabled", config: { "maintenance-drain": { enabled: false } }, expected: ["hotspot-relief"] },
    { name: "both disabled", config: { "maintenance-drain": { enabled: false }, "hotspot-relief": { enabled: false } }, expected: [] },
  ])("$name", ({ config, expected }) => {
    expect(enabledPolicies(policyConfigSchema.parse(config)).map((p) => p.name)).toEqual(expected);
  });

  it.each([
    { name: "unknown policy", config: { "cell-boundaries": { enabled: false } } },
    { name: "unknown parameter", config: { "hotspot-relief": { sustain: 3 } } },
    { name: "bad parameter type", config: { "hotspot-relief": { sustainMinutes: "5" } } },
  ])("rejects $name", ({ config }) => {
    expect(policyConfigSchema.safeParse(config).success).toBe(false);
  });

  it("every definition has a unique name, a description and a defaultable schema", () => {
    expect(new Set(POLICIES.map((d) => d.name)).size).toBe(POLICIES.length);
    for (const d of POLICIES) {
      expect(d.description.length).toBeGreaterThan(10);
      expect(d.schema.parse({})).toMatchObject({ enabled: true });
    }
  });
});
