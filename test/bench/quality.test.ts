import { describe, expect, it } from "vitest";
import { ALGORITHMS, checkTargets, formatTable, runScenario } from "../../bench/quality.js";

describe("bench/quality", () => {
  it("runs one scenario through every algorithm into one table", async () => {
    const rows = await runScenario("config/scenarios/steady.yaml", { durationMs: 3_600_000, roundIntervalMs: 60_000 });
    expect(rows.map((r) => r.algorithm)).toEqual(ALGORITHMS.map((a) => a.name));
    expect(new Set(rows.map((r) => r.scenario))).toEqual(new Set(["steady"]));
    const by = new Map(rows.map((r) => [r.algorithm, r]));
    // (a) moves nothing, and so leaves the starting hot hosts hot for the whole hour.
    expect(by.get("none")?.migrations).toBe(0);
    expect(by.get("none")?.gibCopied).toBe(0);
    expect(by.get("none")?.hotspotHostMinutes).toBeGreaterThanOrEqual(2 * 60);
    for (const name of ["proxlb-cpu", "xo-perf", "ballast"]) {
      const r = by.get(name);
      expect(r?.migrations, name).toBeGreaterThan(0);
      expect(r?.hotspotHostMinutes, name).toBeLessThan(by.get("none")?.hotspotHostMinutes ?? 0);
    }
    for (const r of rows) {
      // Baselines check cells and free memory themselves: the simulated hypervisor never has to refuse one.
      expect(Object.keys(r.blocked).filter((k) => k.includes("refused-")), r.algorithm).toEqual([]);
      expect(r.maxImbalanceCpu).toBeGreaterThanOrEqual(r.meanImbalanceCpu);
    }

    const lines = formatTable(rows).split("\n");
    expect(lines[0]).toMatch(/^scenario\s+algorithm\s+migr\s+failed\s+GiB\s+hot host-min\s+imb cpu mean\/max\s+imb mem mean\/max\s+ping-pong\s+blocked\s+conv fail$/);
    expect(lines).toHaveLength(2 + ALGORITHMS.length);

    const targets = checkTargets(rows);
    expect(targets.map((t) => t.target)).toEqual([
      "hotspot ≥ 90 % below none",
      "≤ ½ migrations of proxlb-mem, hotspot no worse",
      "≤ ½ migrations of proxlb-cpu, hotspot no worse",
      "fewer migrations than xo-perf, hotspot ≤",
      "zero ping-pongs",
    ]);
    const b = by.get("ballast");
    expect(targets[4]?.met).toBe(b?.pingPongs === 0);
  });
});
