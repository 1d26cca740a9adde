import { describe, expect, it } from "vitest";
import { guardsSchema } from "../../src/config/schema.js";
import { moveGuards } from "../../src/daemon/guards.js";
import { plan } from "../../src/daemon/planner.js";
import { migrationSchema, thresholdsSchema } from "../../src/config/schema.js";
import { maintenanceDrain } from "../../src/policies/maintenance-drain.js";
import { hostId, vmId, type HostId } from "../../src/model/index.js";
import { IN_MEMORY, openHistory, type HistoryStore } from "../../src/store/index.js";
import { cluster, host, vm } from "../planner/fixtures.js";
import { hotspotRelief, hotspotReliefSchema } from "../../src/policies/hotspot-relief.js";
import { tempStores } from "../store/helpers.js";

const MIN = 60_000;
const NOW = Date.UTC(2026, 5, 1, 12);
const cfg = guardsSchema.parse({
  vmCooldownMinutes: 30,
  failureCooldownMinutes: 120,
  maxMigrationsPerHour: 3,
  hostFailureLimit: 2,
  hostBackoffMinutes: 30,
  maxMigrationsPerHostPerHour: 2,
  returnCooldownMinutes: 360,
});
const stores = tempStores();

function migrated(store: HistoryStore, v: string, from: string, to: string, status: "succeeded" | "failed" | "aborted" | "interrupted" | "open", minutesAgo: number): void {
  const id = store.recordIntent({ roundId: null, vm: vmId(v), from: hostId(from), to: hostId(to), kind: "live-shared", policy: "hotspot-relief", reason: "t", flags: [], startedAt: NOW - minutesAgo * MIN - 1000 });
  if (status !== "open") store.finishMigration(id, { status, finishedAt: NOW - minutesAgo * MIN });
}

describe("move guards read from history", () => {
  const cases: { name: string; history: [string, string, string, "succeeded" | "failed" | "aborted" | "interrupted" | "open", number][]; policy: string; ok: boolean; code?: string }[] = [
    { name: "never moved: allowed", history: [], policy: "hotspot-relief", ok: true },
    { name: "moved 10 min ago: cooldown", history: [["v1", "h1", "h2", "succeeded", 10]], policy: "hotspot-relief", ok: false, code: "cooldown" },
    { name: "moved 40 min ago: cooldown over", history: [["v1", "h1", "h2", "succeeded", 40]], policy: "hotspot-relief", ok: true },
    { name: "a drain overrides the ordinary cooldown", history: [["v1", "h1", "h2", "succeeded", 10]], policy: "maintenance-drain", ok: true },
    { name: "failed 60 min ago: failure back-off", history: [["v1", "h1", "h2", "failed", 60]], policy: "hotspot-relief", ok: false, code: "failure-backoff" },
    { name: "a drain does not override the failure back-off", history: [["v1", "h1", "h2", "aborted", 60]], policy: "maintenance-drain", ok: false, code: "failure-backoff" },
    { name: "aborted 3 h ago: back-off over", history: [["v1", "h1", "h2", "aborted", 180]], policy: "hotspot-relief", ok: true },
    { name: "interrupted (ballast stopped) 10 min ago: ordinary cooldown, no failure back-off", history: [["v1", "h1", "h2", "interrupted", 10]], policy: "hotspot-relief", ok: false, code: "cooldown" },
    { name: "a drain resumes a VM whose migration was interrupted at once", history: [["v1", "h1", "h2", "interrupted", 1]], policy: "maintenance-drain", ok: true },
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
    expect(guards.excludeHost(hostId("h2"), "hotspot-relief")).toMatchObject({ ok: false, code: "host-backoff" });
    expect(guards.excludeHost(hostId("h3"), "hotspot-relief").ok).toBe(true);

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
    // Later the back-off expires (for the drain: the per-host hourly limit does not apply to it).
    expect(moveGuards(store, cfg, NOW + 40 * MIN).excludeHost(hostId("h2"), "maintenance-drain").ok).toBe(true);
    store.close();
  });

  it("per-host hourly limit: a host in two migrations this hour is neither source nor destination, except for a drain", () => {
    const store = openHistory(IN_MEMORY);
    migrated(store, "a", "h1", "h2", "succeeded", 50);
    migrated(store, "b", "h3", "h2", "succeeded", 20);
    migrated(store, "c", "h1", "h3", "succeeded", 70);
    const guards = moveGuards(store, cfg, NOW);
    expect(guards.excludeHost(hostId("h2"), "hotspot-relief")).toMatchObject({ ok: false, code: "host-hourly-limit", reason: "h2 took part in 2 migrations in the last hour (limit 2 per host)" });
    expect(guards.excludeHost(hostId("h1"), "hotspot-relief").ok).toBe(true);
    expect(guards.excludeHost(hostId("h2"), "maintenance-drain").ok).toBe(true);
    expect(guards.refusals()).toEqual(["host-hourly-limit"]);
    store.close();
  });

  it("return cooldown: a VM does not go back to a host it left within it; the planner picks another host", () => {
    const store = openHistory(IN_MEMORY);
    migrated(store, "x", "h2", "h1", "succeeded", 120);
    const guards = moveGuards(store, cfg, NOW);
    expect(guards.excludeDestination(vmId("x"), hostId("h2"), "hotspot-relief")).toMatchObject({ ok: false, code: "return-cooldown", reason: "x left h2 120 min ago (return cooldown 360 min)" });
    expect(guards.excludeDestination(vmId("x"), hostId("h3"), "hotspot-relief").ok).toBe(true);
    expect(guards.excludeDestination(vmId("x"), hostId("h2"), "maintenance-drain")).toMatchObject({ ok: false, code: "return-cooldown" });
    expect(moveGuards(store, cfg, NOW + 241 * MIN).excludeDestination(vmId("x"), hostId("h2"), "hotspot-relief").ok).toBe(true);
    expect(moveGuards(store, { ...cfg, returnCooldownMinutes: 0 }, NOW).excludeDestination(vmId("x"), hostId("h2"), "hotspot-relief").ok).toBe(true);

    // h1 is hot; h2 (emptiest) is where x came from, so x goes to h3.
    const snap = cluster([host("h1", { cpuLoad: 0.6 }), host("h2", { cpuLoad: 0 }), host("h3", { cpuLoad: 0.2 })], [vm("x", "h1", { cpuLoad: 3 })]);
    const p = plan(snap, {
      policies: [hotspotRelief.create(hotspotReliefSchema.parse({}))],
      thresholds: thresholdsSchema.parse({}),
      migration: migrationSchema.parse({}),
      nowMs: NOW,
      excludeDestination: guards.excludeDestination,
    });
    expect(p.moves.map((m) => m.to)).toEqual<HostId[]>([hostId("h3")]);
    store.close();
  });

  it("a drain sends a VM back to a host it just left only when no other host can take it", () => {
    const store = openHistory(IN_MEMORY);
    migrated(store, "x", "h2", "h1", "succeeded", 60);
    const guards = moveGuards(store, cfg, NOW);
    const drain = (hosts: ReturnType<typeof host>[]) =>
      plan(cluster(hosts, [vm("x", "h1", { cpuLoad: 1 })]), {
        policies: [maintenanceDrain.create()],
        thresholds: thresholdsSchema.parse({}),
        migration: migrationSchema.parse({}),
        nowMs: NOW,
        exclude: guards.exclude,
        excludeDestination: guards.excludeDestination,
      }).moves.map((m) => m.to);
    // h2 is the emptiest, but x left it an hour ago: h3 takes it.
    expect(drain([host("h1", { maintenance: true }), host("h2", { cpuLoad: 0 }), host("h3", { cpuLoad: 0.4 })])).toEqual<HostId[]>([hostId("h3")]);
    // No other host: the drain still empties h1.
    expect(drain([host("h1", { maintenance: true }), host("h2", { cpuLoad: 0 }), host("h3", { maintenance: true })])).toEqual<HostId[]>([hostId("h2")]);
    store.close();
  });

  it("every limit holds across a restart: the same SQLite file opened in a new store gives the same refusals", () => {
    const first = stores.open("history.db");
    migrated(first, "v1", "h1", "h2", "succeeded", 10); // cooldown; h1 left by v1 (return)
    migrated(first, "v2", "h3", "h2", "aborted", 15); // failure back-off of v2
    migrated(first, "v3", "h4", "h2", "failed", 5); // h2: 2 failures → host back-off
    migrated(first, "v4", "h5", "h6", "succeeded", 30);
    migrated(first, "v5", "h5", "h6", "succeeded", 40); // h5, h6: per-host limit; 5 this hour: overall limit
    first.close();
    const second = stores.open("history.db");
    const g = moveGuards(second, cfg, NOW);
    expect(g.exclude(vmId("v1"), "hotspot-relief")).toMatchObject({ ok: false, code: "cooldown" });
    expect(g.exclude(vmId("v2"), "hotspot-relief")).toMatchObject({ ok: false, code: "failure-backoff" });
    expect(g.excludeHost(hostId("h2"), "hotspot-relief")).toMatchObject({ ok: false, code: "host-backoff" });
    expect(g.excludeHost(hostId("h6"), "hotspot-relief")).toMatchObject({ ok: false, code: "host-hourly-limit" });
    expect(g.excludeDestination(vmId("v1"), hostId("h1"), "hotspot-relief")).toMatchObject({ ok: false, code: "return-cooldown" });
    expect(g.hourlyLimitReached()).toMatch(/5 migrations in the last hour \(limit 3\)/);
  });
});
