import { describe, expect, it } from "vitest";
import { enabledPolicies, policyConfigSchema, POLICIES } from "../../src/policies/registry.js";

describe("policy registry", () => {
  it("defaults: drain, hotspot relief and affinity on, balance and consolidation off, with their parameters", () => {
    expect(policyConfigSchema.parse({})).toEqual({
      "maintenance-drain": { enabled: true },
      "hotspot-relief": { enabled: true, sustainMinutes: 5, predictMinutes: 0 },
      affinity: {
        enabled: true,
        tags: { pin: "ballast.pin", ignore: "ballast.ignore", antiAffinity: "ballast.anti-affinity", affinity: "ballast.affinity", hostAffinity: "ballast.host-affinity" },
      },
      balance: { enabled: false, maxImbalance: 0.1, minImprovement: 0.002, cpuWeight: 0.5, memoryWeight: 0.5 },
      consolidation: { enabled: false },
    });
  });

  it.each([
    { name: "defaults, priority order", config: {}, expected: ["maintenance-drain", "hotspot-relief", "affinity"] },
    {
      name: "everything enabled, priority order",
      config: { balance: { enabled: true }, consolidation: { enabled: true } },
      expected: ["maintenance-drain", "hotspot-relief", "affinity", "balance", "consolidation"],
    },
    { name: "hotspot relief disabled", config: { "hotspot-relief": { enabled: false } }, expected: ["maintenance-drain", "affinity"] },
    { name: "drain disabled", config: { "maintenance-drain": { enabled: false } }, expected: ["hotspot-relief", "affinity"] },
    {
      name: "all disabled",
      config: { "maintenance-drain": { enabled: false }, "hotspot-relief": { enabled: false }, affinity: { enabled: false } },
      expected: [],
    },
  ])("$name", ({ config, expected }) => {
    expect(enabledPolicies(policyConfigSchema.parse(config)).map((p) => p.name)).toEqual(expected);
  });

  it.each([
    { name: "unknown policy", config: { "cell-boundaries": { enabled: false } } },
    { name: "unknown parameter", config: { "hotspot-relief": { sustain: 3 } } },
    { name: "bad parameter type", config: { "hotspot-relief": { sustainMinutes: "5" } }, path: ["hotspot-relief", "sustainMinutes"] },
    { name: "maxImbalance above 1", config: { balance: { maxImbalance: 2 } }, path: ["balance", "maxImbalance"] },
    { name: "both balance weights 0", config: { balance: { cpuWeight: 0, memoryWeight: 0 } }, path: ["balance", "cpuWeight"] },
    { name: "a tag name with '='", config: { affinity: { tags: { pin: "pin=yes" } } }, path: ["affinity", "tags", "pin"] },
    { name: "two rules on one tag name", config: { affinity: { tags: { pin: "keep", ignore: "keep" } } }, path: ["affinity", "tags", "ignore"] },
    { name: "unknown tag rule", config: { affinity: { tags: { colocate: "x" } } } },
  ])("rejects $name", ({ config, path }) => {
    const r = policyConfigSchema.safeParse(config);
    expect(r.success).toBe(false);
    if (path) expect(r.error?.issues[0]?.path).toEqual(path);
  });

  it("every definition has a unique name, a description and a defaultable schema", () => {
    expect(new Set(POLICIES.map((d) => d.name)).size).toBe(POLICIES.length);
    for (const d of POLICIES) {
      expect(d.description.length).toBeGreaterThan(10);
      expect(typeof (d.schema.parse({}) as { enabled: unknown }).enabled).toBe("boolean");
    }
  });
});
