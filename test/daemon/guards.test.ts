import { describe, expect, it } from "vitest";
import { guardsSchema } from "../../src/config/schema.js";
import { moveGuards } from "../../src/daemon/guards.js";
import { plan } from "../../src/daemon/planner.js";
import { migrationSchema, thresholdsSchema } from "../../src/config/schema.js";
import { maintenanceDrain } from "../../src/policies/maintenance-drain.js";
import { hostId, vmId, type HostId } from "../../src/model/index.js";
import { IN_MEMORY, openHistory, type HistoryStore } from "../../src/store/index.js";
import { cluster, host, vm } from "../planner/fixtures.js";

const MIN = 60_000;
const NOW = Date.UTC(2026, 5, 1, 12);
const cfg = guardsSchema.parse({ vmCooldownMinutes: 30, failureCooldownMinutes: 120, maxMigrationsPerHour: 3, hostFailureLimit: 2, hostBackoffMinutes: 30 });

function migrated(store: HistoryStore, v: string, from: string, to: string, status: "succeeded" | "failed" | "aborted" | "open", minutesAgo: number): void {
  const id = store.recordIntent({ roundId: null, vm: vmId(v), from: hostId(from), to: hostId(to), kind: "live-shared", policy: "hotspot-relief", reason: "t", flags: [], startedAt: NOW - minutesAgo * MIN - 1000 });
  if (status !== "open") store.finishMigration(id, { status, finishedAt: NOW - minutesAgo * MIN });
}

describe("move guards read from history", () => {
  const cases: { name: string; history: [string, string, string, "succeeded" | "failed" | "aborted" | "open", number][]; policy: string; ok: boolean; code?: string }[] = [
    { name: "never moved: allowed", history: [], policy: "hotspot-relief", ok: true },
    { name: "moved 10 min ago: cooldown", history: [["v1", "h1", "h2", "succeeded", 10]], policy: "hotspot-relief", ok: false, code: "cooldown" },
    { name: "moved 40 min ago: cooldown over", history: [["v1", "h1", "h2", "succeeded", 40]], policy: "hotspot-relief", ok: true },
    { name: "a drain overrides the ordinary cooldown", history: [["v1", "h1", "h2", "succeeded", 10]], policy: "maintenance-drain", ok: true },
    { name: "failed 60 min ago: failure back-off", history: [["v1", "h1", "h2", "failed", 60]], policy: "hotspot-relief", ok: false, code: "failure-backoff" },
    { name: "a drain does not override the failure back-off", history: [["v1", "h1", "h2", "aborted", 60]], policy: "maintenance-drain", ok: false, code: "failure-backoff" },
    { name: "aborted 3 h ago: back-off over", history: [["v1", "h1", "h2", "aborted", 180]], policy: "hotspot-relief", ok: true },
    { name: "an open record: unreconciled", history: [["v1", "h1", "h2", "open", 5]], policy: "maintenance-drain", ok: false, code: "unreconciled" },
  ];
  it.each(cases)("$name", ({ history, policy, ok, code }) => {
    const store = openHistory(IN_MEMORY);
    for (const h of history) migrated(store, ...h);
    const v = moveGuards(store, cfg, NOW).exclude(vmId("v1"), policy);
    expect(v.ok).toBe(ok);
    if (!v.ok) expect(v.code).toBe(code);
    store.close();
  });

  it("the hourly limit counts every migration started in the last hour", () => {
    const store = openHistory(IN_MEMORY);
    migrated(store, "a", "h1", "h2", "succeeded", 50);
    migrated(store, "b", "h1", "h2", "failed", 20);
    expect(moveGuards(store, cfg, NOW).hourlyLimitReached()).toBeUndefined();
    migrated(store, "c", "h1", "h3", "succeeded", 5);
    expect(moveGuards(store, cfg, NOW).hourlyLimitReached()).toMatch(/3 migrations in the last hour \(limit 3\)/);
    store.close();
  });

  it("a host in repeated failures is backed off as source and destination; the planner routes around it", () => {
    const store = openHistory(IN_MEMORY);
    migrated(store, "a", "h1", "h2", "failed", 10);
    migrated(store, "b", "h3", "h2", "aborted", 5);
    const guards = moveGuards(store, cfg, NOW);
    expect(guards.excludeHost(hostId("h2"))).toMatchObject({ ok: false, code: "host-backoff" });
    expect(guards.excludeHost(hostId("h3")).ok).toBe(true);

    // h1 is drained; h2 would be the best destination (emptiest) but is backed off.
    const snap = cluster(
      [host("h1", { maintenance: true }), host("h2"), host("h3", { cpuLoad: 0.3 })],
      [vm("x", "h1"), vm("y", "h3", { cpuLoad: 3 })],
    );
    const p = plan(snap, {
      policies: [maintenanceDrain.create()],
      thresholds: thresholdsSchema.parse({}),
      migration: migrationSchema.parse({}),
      nowMs: NOW,
      exclude: guards.exclude,
      excludeHost: guards.excludeHost,
    });
    expect(p.moves.map((m) => m.to)).toEqual<HostId[]>([hostId("h3")]);
    // Later the back-off expires.
    expect(moveGuards(store, cfg, NOW + 40 * MIN).excludeHost(hostId("h2")).ok).toBe(true);
    store.close();
  });
});
