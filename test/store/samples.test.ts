import { describe, expect, it } from "vitest";
import { cellId, hostId, vmId, type HostId } from "../../src/model/index.js";
import type { HostSampleInput } from "../../src/store/index.js";
import { tempStores } from "./helpers.js";

const t = tempStores();

function hosts(n: number, load: (i: number) => number = (i) => (i % 100) / 100): HostSampleInput[] {
  return Array.from({ length: n }, (_, i) => ({
    host: hostId(`host-${String(i).padStart(4, "0")}`),
    cell: cellId(`cell-${i % 4}`),
    cpuLoad: load(i),
    memoryUsedMiB: 100_000 + i,
    memoryMiB: 262_144,
    maintenance: i % 97 === 0,
  }));
}

describe("host samples", () => {
  it("records, reads back per host oldest first, and replaces a repeated (at, host)", () => {
    const s = t.open();
    const h = (n: string): HostId => hostId(n);
    s.recordSamples(3_000, [
      { host: h("a"), cell: cellId("c1"), cpuLoad: 0.9, memoryUsedMiB: 10, memoryMiB: 100, maintenance: false },
      { host: h("b"), cell: cellId("c1"), cpuLoad: 0.2, memoryUsedMiB: 20, memoryMiB: 100, maintenance: true },
    ]);
    s.recordSamples(1_000, [{ host: h("a"), cell: cellId("c1"), cpuLoad: 0.7, memoryUsedMiB: 10, memoryMiB: 100, maintenance: false }]);
    s.recordSamples(2_000, [{ host: h("a"), cell: cellId("c1"), cpuLoad: 0.8, memoryUsedMiB: 10, memoryMiB: 100, maintenance: false }]);
    s.recordSamples(2_000, [{ host: h("a"), cell: cellId("c1"), cpuLoad: 0.85, memoryUsedMiB: 10, memoryMiB: 100, maintenance: false }]);

    const all = s.hostLoadHistory(0);
    expect([...all.keys()].sort()).toEqual(["a", "b"]);
    expect(all.get(h("a"))).toEqual([
      { atMs: 1_000, cpuLoad: 0.7 },
      { atMs: 2_000, cpuLoad: 0.85 },
      { atMs: 3_000, cpuLoad: 0.9 },
    ]);
    expect(s.hostLoadHistory(2_000).get(h("a"))?.map((p) => p.atMs)).toEqual([2_000, 3_000]);
    expect(s.hostLoadHistory(3_001).size).toBe(0);
    expect(s.hostSamples(h("b"), 0)).toEqual([
      { atMs: 3_000, host: "b", cell: "c1", cpuLoad: 0.2, memoryUsedMiB: 20, memoryMiB: 100, maintenance: true },
    ]);
  });

  it("prunes samples older than the retention and reports rows deleted", () => {
    const s = t.open();
    for (let at = 0; at < 10; at++) s.recordSamples(at * 60_000, hosts(5));
    s.recordImbalance(0, [{ cell: cellId("c"), cpu: 0.1, memory: 0.2 }]);
    s.recordImbalance(9 * 60_000, [{ cell: cellId("c"), cpu: 0.1, memory: 0.2 }]);
    expect(s.stats().rows.hostSamples).toBe(50);
    // Older than minute 4: minutes 0..3 go (20 host rows + 1 imbalance row).
    expect(s.pruneSamples(4 * 60_000)).toBe(21);
    expect(s.stats().rows.hostSamples).toBe(30);
    expect(s.stats().rows.imbalanceSamples).toBe(1);
    expect(s.pruneSamples(4 * 60_000)).toBe(0);
    const history = s.hostLoadHistory(0);
    expect(history.size).toBe(5);
    expect(history.get(hostId("host-0000"))?.[0]?.atMs).toBe(4 * 60_000);
  });

  it("records a per-cell imbalance series", () => {
    const s = t.open();
    s.recordImbalance(2_000, [
      { cell: cellId("c1"), cpu: 0.12, memory: 0.05 },
      { cell: cellId("c2"), cpu: 0.3, memory: 0.1 },
    ]);
    s.recordImbalance(1_000, [{ cell: cellId("c1"), cpu: 0.2, memory: 0.06 }]);
    const h = s.imbalanceHistory(0);
    expect(h.get(cellId("c1"))).toEqual([
      { atMs: 1_000, cpu: 0.2, memory: 0.06 },
      { atMs: 2_000, cpu: 0.12, memory: 0.05 },
    ]);
    expect(h.get(cellId("c2"))).toEqual([{ atMs: 2_000, cpu: 0.3, memory: 0.1 }]);
    expect(s.imbalanceHistory(1_500).get(cellId("c1"))).toHaveLength(1);
  });

  it("inserts 1,000 hosts per call in a few ms (timing printed, not asserted)", () => {
    const s = t.open();
    const rows = hosts(1_000);
    const times: number[] = [];
    const rounds = 50;
    for (let r = 0; r < rounds; r++) {
      const t0 = process.hrtime.bigint();
      s.recordSamples(r * 30_000, rows);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const sorted = [...times].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? NaN;
    const p95 = sorted[Math.floor(sorted.length * 0.95)] ?? NaN;
    const t1 = process.hrtime.bigint();
    const history = s.hostLoadHistory((rounds - 10) * 30_000);
    const readMs = Number(process.hrtime.bigint() - t1) / 1e6;
    const st = s.stats();
    console.log(
      `[store] recordSamples(1,000 hosts): first ${times[0]?.toFixed(2)} ms, median ${median.toFixed(2)} ms, ` +
        `p95 ${p95.toFixed(2)} ms, max ${sorted.at(-1)?.toFixed(2)} ms over ${rounds} calls; ` +
        `hostLoadHistory(10 samples × 1,000 hosts) ${readMs.toFixed(2)} ms; ` +
        `db ${st.fileBytes} B + wal ${st.walBytes} B for ${st.rows.hostSamples} rows`,
    );
    expect(st.rows.hostSamples).toBe(rounds * 1_000);
    expect(history.size).toBe(1_000);
    expect(history.get(hostId("host-0042"))).toHaveLength(10);
  });
});

describe("stats", () => {
  it("counts rows in every table and reports file sizes", () => {
    const s = t.open();
    const r = s.startRound({ startedAt: 1, trigger: "startup" });
    s.recordDecision({ roundId: r, at: 1, outcome: "blocked", policy: "p", vm: vmId("v"), reason: "x" });
    const m = s.recordIntent({
      roundId: r,
      vm: vmId("v"),
      from: hostId("a"),
      to: hostId("b"),
      kind: "cold",
      policy: "p",
      reason: "x",
      flags: ["OFFLINE"],
      startedAt: 2,
    });
    s.appendMigrationEvent(m, { at: 3, kind: "note", data: { x: 1 } });
    s.recordSamples(4, hosts(3));
    s.recordImbalance(4, [{ cell: cellId("c"), cpu: 0, memory: 0 }]);
    s.recordEvent({ at: 5, kind: "started", message: "m" });
    const st = s.stats();
    expect(st.rows).toEqual({
      rounds: 1,
      decisions: 1,
      migrations: 1,
      migrationEvents: 1,
      hostSamples: 3,
      imbalanceSamples: 1,
      events: 1,
    });
    expect(st.schemaVersion).toBeGreaterThanOrEqual(1);
    expect(st.fileBytes + st.walBytes).toBeGreaterThan(0);
    expect(st.pageSize).toBeGreaterThan(0);
    expect(st.pageCount).toBeGreaterThan(0);
  });
});
