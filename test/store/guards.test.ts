import { beforeEach, describe, expect, it } from "vitest";
import { hostId, vmId } from "../../src/model/index.js";
import type { FailureFilter, FinalMigrationStatus, HistoryStore } from "../../src/store/index.js";
import { tempStores } from "./helpers.js";

const t = tempStores();

const T0 = Date.UTC(2025, 0, 1);
const min = (m: number): number => T0 + m * 60_000;

/** vm, from, to, started (min), final status or "running", finished (min). */
const HISTORY: readonly (readonly [string, string, string, number, FinalMigrationStatus | "running", number?])[] = [
  ["vm1", "a", "b", 0, "succeeded", 5], // m1
  ["vm2", "a", "c", 10, "failed", 12], // m2
  ["vm1", "b", "c", 20, "aborted", 25], // m3: vm1 stays on b
  ["vm3", "c", "a", 30, "succeeded", 31], // m4
  ["vm1", "b", "a", 40, "succeeded", 45], // m5
  ["vm4", "b", "c", 50, "running"], // m6: still open
  ["vm2", "a", "b", 55, "interrupted", 56], // m7
];

let s: HistoryStore;
const ids: number[] = [];

beforeEach(() => {
  s = t.open();
  ids.length = 0;
  for (const [vm, from, to, started, status, finished] of HISTORY) {
    const id = s.recordIntent({
      roundId: null,
      vm: vmId(vm),
      from: hostId(from),
      to: hostId(to),
      kind: "live-shared",
      policy: "hotspot-relief",
      reason: "test",
      flags: [],
      startedAt: min(started),
    });
    s.markRunning(id, min(started) + 1_000);
    if (status !== "running") s.finishMigration(id, { status, finishedAt: min(finished ?? started) });
    ids.push(id);
  }
});

describe("lastMigrationOfVm", () => {
  it.each([
    ["vm1", 5, "succeeded", 45, "b", "a"],
    ["vm2", 7, "interrupted", 56, "a", "b"],
    ["vm4", 6, "running", null, "b", "c"],
  ] as const)("%s → m%i %s", (vm, m, status, finished, from, to) => {
    const row = s.lastMigrationOfVm(vmId(vm));
    expect(row).toMatchObject({ id: ids[m - 1], status, finishedAt: finished === null ? null : min(finished), from, to });
  });

  it("undefined for a VM never migrated", () => {
    expect(s.lastMigrationOfVm(vmId("vm9"))).toBeUndefined();
  });
});

describe("migrationsSince", () => {
  it.each([
    [0, 7, { a: 5, b: 5, c: 4 }],
    [30, 4, { a: 3, b: 3, c: 2 }],
    [50, 2, { a: 1, b: 2, c: 1 }],
    [56, 0, {}],
  ] as const)("since minute %i: %i in total", (since, total, byHost) => {
    const r = s.migrationsSince(min(since));
    expect(r.total).toBe(total);
    expect(Object.fromEntries(r.byHost)).toEqual(byHost);
  });
});

describe("failuresSince", () => {
  const cases: readonly (readonly [string, number, FailureFilter, number, number | null])[] = [
    ["all", 0, {}, 2, 25],
    ["one VM", 0, { vm: vmId("vm1") }, 1, 25],
    ["host as source", 0, { host: hostId("a") }, 1, 12],
    ["host as source or destination", 0, { host: hostId("c") }, 2, 25],
    ["window excludes older", 13, { host: hostId("c") }, 1, 25],
    ["window past every failure", 26, {}, 0, null],
    ["interrupted is not a failure", 0, { vm: vmId("vm2"), host: hostId("b") }, 0, null],
    ["vm and host must both match", 0, { vm: vmId("vm1"), host: hostId("a") }, 0, null],
    ["vm and host both match", 0, { vm: vmId("vm2"), host: hostId("c") }, 1, 12],
    ["unknown host", 0, { host: hostId("zz") }, 0, null],
  ];
  it.each(cases)("%s", (_name, since, filter, count, lastAt) => {
    expect(s.failuresSince(min(since), filter)).toEqual({ count, lastAt: lastAt === null ? null : min(lastAt) });
  });
});

describe("vmLeftHostAt", () => {
  it.each([
    ["vm1", "a", 5],
    ["vm1", "b", 45], // the aborted b→c attempt did not leave b
    ["vm1", "c", undefined],
    ["vm2", "a", undefined], // failed and interrupted: never left
    ["vm3", "c", 31],
    ["vm4", "b", undefined], // still running
    ["vm9", "a", undefined],
  ] as const)("%s left %s at minute %s", (vm, host, at) => {
    expect(s.vmLeftHostAt(vmId(vm), hostId(host))).toBe(at === undefined ? undefined : min(at));
  });
});
