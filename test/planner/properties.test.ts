import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { plan } from "../../src/daemon/planner.js";
import { applyMove, memoryFraction, type ClusterSnapshot } from "../../src/model/index.js";
import type { MigrationPolicy } from "../../src/daemon/migration-kind.js";
import { arbitraryCluster, planOpts, T } from "./fixtures.js";

/** Random small clusters: 1–3 cells, 2–8 hosts, 0–24 VMs of every state and storage kind. */
const arbCluster: fc.Arbitrary<ClusterSnapshot> = fc
  .record({
    hosts: fc.array(
      fc.record({
        cell: fc.constantFrom("c1", "c2", "c3"),
        cpus: fc.integer({ min: 4, max: 32 }),
        memoryMiB: fc.integer({ min: 16_000, max: 128_000 }),
        baseCpu: fc.double({ min: 0, max: 0.5, noNaN: true }),
        baseMem: fc.double({ min: 0, max: 0.4, noNaN: true }),
        maintenance: fc.boolean(),
        reachable: fc.integer({ min: 0, max: 4 }).map((n) => n > 0),
        mounts: fc.subarray(["nfs", "ceph"]),
      }),
      { minLength: 2, maxLength: 8 },
    ),
    vms: fc.array(
      fc.record({
        at: fc.nat(),
        state: fc.constantFrom("running", "running", "running", "paused", "shutoff"),
        vcpus: fc.integer({ min: 1, max: 8 }),
        util: fc.double({ min: 0, max: 1, noNaN: true }),
        memoryMiB: fc.integer({ min: 512, max: 24_000 }),
        storage: fc.constantFrom("nfs", "ceph", "local", "volume"),
        tags: fc.subarray(["batch", "web"]),
      }),
      { maxLength: 24 },
    ),
  })
  .map(arbitraryCluster);

const arbMigration: fc.Arbitrary<MigrationPolicy> = fc.record({
  allowBlockMigration: fc.boolean(),
  allowColdForTags: fc.subarray(["batch"]),
});

describe("planner properties (random small clusters)", () => {
  it("never crosses a cell, never overcommits memory, never targets maintenance/unreachable hosts; drains are complete; plans are stable", () => {
    fc.assert(
      fc.property(arbCluster, arbMigration, (s, migration) => {
        const p = plan(s, planOpts({ migration }));
        const hostByName = new Map(s.hosts.map((h) => [h.name, h]));
        const movedVms = new Set<string>();
        let cur = s;
        for (const m of p.moves) {
          const from = hostByName.get(m.from);
          const to = hostByName.get(m.to);
          expect(from && to).toBeTruthy();
          if (!from || !to) return;
          expect(to.cell).toBe(from.cell);
          expect(to.maintenance).toBe(false);
          expect(to.reachable).toBe(true);
          expect(from.reachable).toBe(true);
          expect(m.to).not.toBe(m.from);
          expect(movedVms.has(m.vm)).toBe(false);
          movedVms.add(m.vm);
          // Execution order is coherent: each move applies to the result of the previous ones.
          cur = applyMove(cur, m);
          const dest = cur.hosts.find((h) => h.name === m.to);
          expect(dest && memoryFraction(dest)).toBeLessThan(T.memHigh);
          expect(dest && dest.memoryUsedMiB).toBeLessThanOrEqual(to.memoryMiB);
          expect(dest && dest.cpuLoad).toBeLessThan(m.policy === "hotspot-relief" ? T.cpuLow : T.cpuHigh);
        }
        // Every VM of a host in maintenance is moved or blocked.
        const blocked = new Set(p.blocked.map((b) => b.vm));
        for (const v of s.vms) {
          if (hostByName.get(v.host)?.maintenance) expect(movedVms.has(v.id) || blocked.has(v.id)).toBe(true);
        }
        // Planning again on the result moves nothing: no drain moves, no ping-pong.
        const again = plan(cur, planOpts({ migration }));
        expect(again.moves).toEqual([]);
        expect(again.moves.filter((m) => m.policy === "maintenance-drain")).toEqual([]);
      }),
      { numRuns: 400, seed: 20260101 },
    );
  });

  it("is deterministic, and the pruned destination search chooses exactly what a full scan chooses", () => {
    fc.assert(
      fc.property(arbCluster, (s) => {
        const full = plan(s, planOpts({ explain: true }));
        expect(plan(s, planOpts({ explain: true }))).toEqual(full);
        const pruned = plan(s, planOpts());
        expect(pruned.moves).toEqual(full.moves);
        expect(pruned.blocked).toEqual(full.blocked);
      }),
      { numRuns: 100, seed: 7 },
    );
  });
});
