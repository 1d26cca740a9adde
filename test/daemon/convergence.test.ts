import { describe, expect, it } from "vitest";
import type { DriverCapabilities, JobStats } from "../../src/drivers/driver.js";
import {
  ballastGuard,
  completionBudgetMs,
  downtimeAt,
  lastProgressMs,
  novaDefaultGuard,
  type ConvergenceConfig,
  type GuardDecision,
  type GuardInput,
  type TakenAction,
} from "../../src/daemon/convergence.js";

const CFG: ConvergenceConfig = {
  maxDowntimeMs: 500,
  downtimeSteps: 10,
  downtimeDelaySecPerGiB: 75,
  completionTimeoutSecPerGiB: 800,
  progressTimeoutSec: 150,
  permitPostCopy: false,
  permitAutoConverge: false,
  timeoutAction: "abort",
  escalateAfterSamples: 5,
};
const ALL: DriverCapabilities = { setDowntime: true, postCopy: true, pauseGuest: true, dirtyRate: true };
const XEN: DriverCapabilities = { setDowntime: false, postCopy: false, pauseGuest: false, dirtyRate: false };

/** One sample per second; `pass(i)` and `remaining(i)` describe the job at second i. */
function series(n: number, f: (i: number) => Partial<JobStats> & { remaining: number; pass: number }, t0 = 0): JobStats[] {
  return Array.from({ length: n }, (_, k) => {
    const i = t0 + k;
    const { remaining, pass, ...rest } = f(i);
    return {
      elapsedMs: i * 1000,
      phase: "precopy",
      dataTotalMiB: 4096,
      dataProcessedMiB: i * 100,
      dataRemainingMiB: remaining,
      memoryIteration: pass,
      maxDowntimeMs: 50,
      ...rest,
    } satisfies JobStats;
  });
}

function input(stats: JobStats[], over: Partial<GuardInput> = {}): GuardInput {
  return { stats, memoryMiB: 4096, diskMiB: 0, kind: "live-shared", config: CFG, capabilities: ALL, taken: [], ...over };
}

const kindOf = (d: GuardDecision): string => (d.kind === "continue" ? "continue" : d.action.kind);

describe("downtime schedule and budget (Nova's defaults)", () => {
  it.each([
    { name: "starts at max/steps", elapsed: 0, gib: 4, want: 50 },
    { name: "first step after 75 s × GiB", elapsed: 300_000, gib: 4, want: 95 },
    { name: "reaches max after steps × delay", elapsed: 3_000_000, gib: 4, want: 500 },
    { name: "never exceeds max", elapsed: 99_000_000, gib: 4, want: 500 },
  ])("$name", ({ elapsed, gib, want }) => {
    expect(downtimeAt(elapsed, gib * 1024, 0, CFG)).toBe(want);
  });

  it.each([
    { name: "RAM only", mem: 2048, disk: 0, want: 1_600_000 },
    { name: "RAM + copied disk", mem: 2048, disk: 2048, want: 3_200_000 },
    { name: "tiny guests get at least one GiB of budget", mem: 128, disk: 0, want: 800_000 },
  ])("completion budget scales with RAM + disk: $name", ({ mem, disk, want }) => {
    expect(completionBudgetMs(mem, disk, CFG)).toBe(want);
  });

  it("the guard aborts at the budget, which grows with copied disk", () => {
    const at = (sec: number): JobStats[] => series(1, () => ({ remaining: 100, pass: 1, dataRemainingMiB: 100 }), sec);
    // 4 GiB RAM: 3,200 s budget.
    expect(kindOf(ballastGuard(input(at(3199))))).not.toBe("abort");
    expect(kindOf(ballastGuard(input(at(3200))))).toBe("abort");
    // Same RAM plus 4 GiB of disk in a block migration: 6,400 s.
    expect(kindOf(ballastGuard(input(at(3200), { kind: "live-block", diskMiB: 4096 })))).not.toBe("abort");
    expect(kindOf(ballastGuard(input(at(6400), { kind: "live-block", diskMiB: 4096 })))).toBe("abort");
  });
});

describe("progress is judged per memory pass", () => {
  it("saw-tooth remaining with falling pass peaks is progress, not a stall", () => {
    // Each pass lasts 60 s: remaining jumps up at the pass start, then falls; peaks fall 1000 → 900 → 800 …
    const stats = series(600, (i) => {
      const pass = Math.floor(i / 60) + 1;
      const peak = 1100 - pass * 100;
      return { pass, remaining: peak - (i % 60) * 10, dirtyRateMiBps: 50, bandwidthMiBps: 100 };
    });
    expect(lastProgressMs(stats)).toBe(599_000); // every pass starts at a new low: progress throughout
    for (let n = 10; n <= stats.length; n += 10) {
      expect(kindOf(ballastGuard(input(stats.slice(0, n), { capabilities: { ...ALL, setDowntime: false } })))).toBe("continue");
    }
  });

  it("a real stall: pass peaks stop making new lows for progressTimeoutSec", () => {
    const stats = series(400, (i) => {
      const pass = Math.floor(i / 30) + 1;
      return { pass, remaining: 700 - (i % 30) * 5, dirtyRateMiBps: 80, bandwidthMiBps: 100 };
    });
    // Pass peaks are all 700: the last progress is the last drop within the first pass (29 s).
    expect(lastProgressMs(stats)).toBe(29_000);
    const before = ballastGuard(input(stats.slice(0, 179), { capabilities: XEN }));
    expect(kindOf(before)).toBe("continue");
    const after = ballastGuard(input(stats.slice(0, 181), { capabilities: XEN }));
    expect(kindOf(after)).toBe("abort");
    expect(after.kind === "act" && after.reason).toMatch(/no new low/);
  });

  it("a later pass longer than progressTimeoutSec that started at a new low is progress", () => {
    // 32 GiB over 100 MiB/s, dirtying 50 MiB/s: pass 2 starts at 330 s with 16 GiB and runs ~164 s.
    const stats = series(500, (i) =>
      i < 330 ? { pass: 1, remaining: 32768 - i * 100, dirtyRateMiBps: 50, bandwidthMiBps: 100 } : { pass: 2, remaining: 16302 - (i - 330) * 100, dirtyRateMiBps: 50, bandwidthMiBps: 100 },
    );
    for (let n = 400; n <= 500; n += 20) {
      const d = ballastGuard(input(stats.slice(0, n), { memoryMiB: 32768, config: { ...CFG, timeoutAction: "force-complete" } }));
      expect(d.kind === "continue" || (d.action.kind === "raise-downtime" && d.reason.startsWith("downtime schedule"))).toBe(true);
    }
  });

  it("a long first pass that keeps copying is progress", () => {
    const stats = series(300, (i) => ({ pass: 1, remaining: 60_000 - i * 100 }));
    expect(kindOf(ballastGuard(input(stats, { memoryMiB: 65536 })))).not.toBe("abort");
  });
});

describe("dirty rate above bandwidth climbs the ladder at once, in order", () => {
  // Guest dirties 250 MiB/s over a 100 MiB/s link: the dirty set never shrinks below ~3 GiB.
  const outpaced = (n: number, t0 = 0): JobStats[] =>
    series(n, (i) => ({ pass: Math.floor(i / 10) + 2, remaining: 3000 - (i % 10) * 50, dirtyRateMiBps: 250, bandwidthMiBps: 100 }), t0);

  it.each([
    { name: "post-copy when permitted", cfg: { permitPostCopy: true }, want: "post-copy" },
    { name: "post-copy preferred over pausing", cfg: { permitPostCopy: true, timeoutAction: "force-complete" as const }, want: "post-copy" },
    { name: "pause when force-complete", cfg: { timeoutAction: "force-complete" as const }, want: "pause" },
    { name: "abort otherwise", cfg: {}, want: "abort" },
  ])("$name", ({ cfg, want }) => {
    const config = { ...CFG, ...cfg };
    expect(kindOf(ballastGuard(input(outpaced(4), { config })))).toBe("continue"); // 4 samples: not yet
    const d = ballastGuard(input(outpaced(5), { config }));
    expect(kindOf(d)).toBe(want);
    expect(d.kind === "act" && d.reason).toMatch(/dirty rate 250 MiB\/s ≥ bandwidth 100 MiB\/s/);
  });

  it("raises downtime first when the dirty set would fit within maxDowntimeMs", () => {
    // A small hot working set: 40 MiB dirty per pass at 100 MiB/s needs 400 ms (500 with margin).
    const stats = series(5, (i) => ({ pass: i + 2, remaining: 40, dirtyRateMiBps: 150, bandwidthMiBps: 100 }));
    const d = ballastGuard(input(stats, { config: { ...CFG, permitPostCopy: true } }));
    expect(d).toMatchObject({ kind: "act", action: { kind: "raise-downtime", ms: 500 } });
  });

  it("after raising downtime it waits escalateAfterSamples before the next rung", () => {
    const stats = series(8, (i) => ({ pass: i + 2, remaining: 40, dirtyRateMiBps: 150, bandwidthMiBps: 100, maxDowntimeMs: i >= 5 ? 500 : 50 }));
    const taken: TakenAction[] = [{ action: { kind: "raise-downtime", ms: 500 }, atSample: 5 }];
    const config = { ...CFG, permitPostCopy: true };
    expect(kindOf(ballastGuard(input(stats.slice(0, 8), { taken, config })))).toBe("continue");
    const more = series(11, (i) => ({ pass: i + 2, remaining: 40, dirtyRateMiBps: 150, bandwidthMiBps: 100, maxDowntimeMs: i >= 5 ? 500 : 50 }));
    expect(kindOf(ballastGuard(input(more, { taken, config })))).toBe("post-copy");
  });

  it("a driver without downtime, post-copy or pause controls (XAPI) goes from wait to cancel", () => {
    const d = ballastGuard(input(outpaced(5), { capabilities: XEN, config: { ...CFG, permitPostCopy: true, timeoutAction: "force-complete" } }));
    expect(kindOf(d)).toBe("abort");
  });

  it("the Nova-default guard only waits for its budget", () => {
    expect(kindOf(novaDefaultGuard(input(outpaced(100))))).toBe("continue");
    expect(kindOf(novaDefaultGuard(input(outpaced(1, 3200))))).toBe("abort");
  });
});

describe("never harmful", () => {
  it("post-copy is never aborted once started, even far over budget", () => {
    const stats = series(3, () => ({ pass: 5, remaining: 3000, phase: "postcopy", dirtyRateMiBps: 999, bandwidthMiBps: 1 }), 99_999);
    expect(kindOf(ballastGuard(input(stats)))).toBe("continue");
    const taken: TakenAction[] = [{ action: { kind: "post-copy" }, atSample: 1 }];
    expect(kindOf(ballastGuard(input(series(3, () => ({ pass: 5, remaining: 3000 }), 99_999), { taken })))).toBe("continue");
  });

  it("does not act twice after an abort", () => {
    const taken: TakenAction[] = [{ action: { kind: "abort", reason: "x" }, atSample: 1 }];
    expect(kindOf(ballastGuard(input(series(3, () => ({ pass: 1, remaining: 1 }), 9_999), { taken })))).toBe("continue");
  });

  it("a converging pre-copy only follows the downtime schedule", () => {
    // Pass peaks halve: 4096 → 2048 → 1024 …; dirty rate well below bandwidth.
    const stats = series(40, (i) => {
      const pass = Math.floor(i / 8) + 1;
      return { pass, remaining: 4096 / 2 ** (pass - 1) - (i % 8) * 10, dirtyRateMiBps: 30, bandwidthMiBps: 1000 };
    });
    for (let n = 1; n <= stats.length; n++) expect(kindOf(ballastGuard(input(stats.slice(0, n))))).toBe("continue");
  });

  it("cold migrations are not second-guessed within their completion budget, and aborted once it is spent", () => {
    // 4 GiB × 800 s = 3,200 s. No progress for most of it (a slow clean shutdown) is no reason to act.
    const cold = (from: number, n: number) => series(n, () => ({ pass: 1, remaining: 4096, dataProcessedMiB: 0, phase: "offline" }), from);
    expect(kindOf(ballastGuard(input(cold(3_000, 2), { kind: "cold" })))).toBe("continue");
    const over = ballastGuard(input(cold(3_199, 2), { kind: "cold", capabilities: XEN }));
    expect(over).toMatchObject({ kind: "act", action: { kind: "abort", reason: "cold move over its completion budget" } });
    expect(over.kind === "act" && over.reason).toBe("cold move not finished after 3200 s (budget 3200 s): aborting");
    // Asked once: after the abort the guard waits for the driver to end the job.
    expect(kindOf(ballastGuard(input(cold(3_199, 3), { kind: "cold", taken: [{ action: { kind: "abort", reason: "x" }, atSample: 2 }] })))).toBe("continue");
  });
});
