import { describe, expect, it } from "vitest";
import { GUARDS, SMOKE_CASES, runCase, seedFor, summarise, type RunResult } from "../../bench/convergence.js";

const [converging, outpaced] = SMOKE_CASES;

describe("bench/convergence core", () => {
  it("runs one converging and one non-converging case per guard with sane numbers", async () => {
    if (!converging || !outpaced) throw new Error("smoke cases missing");
    const rows: RunResult[] = [];
    for (const c of [converging, outpaced]) {
      const seed = seedFor(c);
      for (const g of GUARDS) rows.push(await runCase(c, g, seed));
    }
    expect(rows).toHaveLength(2 * GUARDS.length);
    for (const r of rows) {
      expect(r.clean, `${r.case}/${r.guard} ended on ${r.where}`).toBe(true);
      expect(r.timeS).toBeGreaterThan(0);
      expect(Number.isFinite(r.timeS)).toBe(true);
      if (r.outcome === "succeeded") {
        expect(r.downtimeMs).toBeGreaterThan(0);
        expect(r.passes).toBeGreaterThanOrEqual(1);
        expect(r.where).toBe("dst:running");
      } else {
        expect(r.where).toBe("src:running");
      }
    }
    const get = (c: string, g: string): RunResult | undefined => rows.find((r) => r.case === c && r.guard === g);
    // Converging pre-copy: every guard completes, the same way, within the budget.
    for (const g of GUARDS) expect(get(converging.name, g.name)?.outcome).toBe("succeeded");
    // Dirty rate above bandwidth: ballast forces completion, Nova aborts at its budget, no guard never ends.
    expect(get(outpaced.name, "ballast")?.actions).toContain("pause");
    expect(get(outpaced.name, "ballast")?.outcome).toBe("succeeded");
    expect(get(outpaced.name, "ballast+pc")?.actions).toContain("post-copy");
    expect(get(outpaced.name, "ballast+pc")?.outcome).toBe("succeeded");
    expect(get(outpaced.name, "nova")?.outcome).toBe("aborted");
    expect(get(outpaced.name, "none")?.outcome).toBe("never");

    const summary = summarise(rows);
    expect(summary.guards.map((g) => g.guard)).toEqual(GUARDS.map((g) => g.name));
    expect(summary.guards.find((g) => g.guard === "ballast")?.completionRate).toBe(1);
    expect(summary.nonConverging).toHaveLength(1);
    expect(summary.minSpeedup).toBeGreaterThan(1);
    expect(summary.targets.cleanWithinBudget).toBe(true);
  });

  it("is deterministic", async () => {
    if (!outpaced) throw new Error("smoke cases missing");
    const ballast = GUARDS.find((g) => g.name === "ballast");
    if (!ballast) throw new Error("no ballast guard");
    expect(await runCase(outpaced, ballast)).toEqual(await runCase(outpaced, ballast));
  });
});
