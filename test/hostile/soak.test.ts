import { beforeAll, describe, expect, it } from "vitest";
import { runSoak, type Resources, type SoakReport } from "../../bench/soak.js";

/**
 * The soak bench on a smaller cluster (200 hosts, 6,000 VMs, 300 rounds over 10 simulated hours): what must
 * stay bounded is asserted structurally — rows kept by retention, handles and listeners — never times or
 * byte counts that depend on the machine. `npm run bench:soak` runs the full 2,000-host figures.
 */

const O = { cells: 4, hostsPerCell: 50, vmsPerHost: 30, rounds: 300, intervalMin: 2, retentionHours: 2, roundRetentionDays: 3 / 24, sampleEvery: 25 };

/** Requests in flight (an fs call's FSReqPromise, a close's CloseReq) come and go; handles must not accumulate. */
const REQUESTS = new Set(["FSReqPromise", "FSReqCallback", "CloseReq", "FileHandleCloseReq"]);
const handles = (r: Resources): Record<string, number> => Object.fromEntries(Object.entries(r.handles).filter(([k]) => !REQUESTS.has(k)));

describe("soak: the daemon over 300 rounds of a 200-host, 6,000-VM simulated cluster", () => {
  let report: SoakReport;
  beforeAll(async () => {
    report = await runSoak(O);
  }, 600_000);

  it("runs every round, migrates, and both drains happen", () => {
    expect(report.rounds).toBeGreaterThanOrEqual(O.rounds);
    expect(report.migrations.succeeded ?? 0).toBeGreaterThan(0);
    const end = report.points.at(-1);
    // flag-set for both drains and flag-cleared for the first: the flag watcher saw every change.
    expect(end?.rows.events).toBeGreaterThanOrEqual(1 + 3);
  });

  it("host samples: never more than the retention window, every kept time has every host", () => {
    for (const p of report.points) {
      expect(p.sampleSpanHours, `round ${p.round}`).toBeLessThanOrEqual(O.retentionHours);
      expect(p.rows.hostSamples, `round ${p.round}`).toBe(p.sampleTimes * report.hosts);
    }
    // Retention was reached (the run is 5× the window), so the bound above was exercised, not vacuous.
    const full = report.points.filter((p) => p.simHours > O.retentionHours + 1);
    expect(full.length).toBeGreaterThan(3);
    for (const p of full) expect(p.sampleSpanHours).toBeGreaterThan(O.retentionHours - 0.2);
  });

  it("rounds and decisions: pruned after history.roundRetentionDays", () => {
    const hours = O.roundRetentionDays * 24;
    for (const p of report.points) expect(p.roundSpanHours, `round ${p.round}`).toBeLessThanOrEqual(hours);
    const end = report.points.at(-1);
    expect(end?.rows.rounds).toBeLessThan(report.rounds / 2);
  });

  it("the database stops growing once retention is reached (freed pages are reused)", () => {
    const full = report.points.filter((p) => p.simHours > Math.max(O.retentionHours, O.roundRetentionDays * 24) + 1);
    const first = full[0];
    const last = full.at(-1);
    if (!first || !last) throw new Error("run too short to reach retention");
    // Row counts are bounded above; the file may still take a few pages for the journal and the odd decision.
    expect(last.dbBytes).toBeLessThanOrEqual(first.dbBytes * 1.25);
  });

  it("no handle or listener is left behind: no more handles of any kind and the same process listeners at the end as at the start", () => {
    const { start, end, afterStop } = report.resources;
    // Not more of any kind: a timer of the test runner's that was pending at the start may have fired since.
    const grown = (r: Resources): Record<string, number> =>
      Object.fromEntries(Object.entries(handles(r)).filter(([k, n]) => n > (handles(start)[k] ?? 0)));
    expect(grown(end)).toEqual({});
    expect(grown(afterStop)).toEqual({});
    expect(end.processListeners).toBe(start.processListeners);
    expect(afterStop.processListeners).toBe(start.processListeners);
  });
});
