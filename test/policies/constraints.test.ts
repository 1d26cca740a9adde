import { describe, expect, it } from "vitest";
import { capacity, cellBoundary, checkDestination, destinationState, sourceState } from "../../src/policies/constraints/index.js";
import { footprint, loadWith, type Host } from "../../src/model/index.js";
import type { Goal } from "../../src/policies/types.js";
import { host, MIG, T, vm } from "../planner/fixtures.js";

const evacuate: Goal = { kind: "evacuate" };
const relieve: Goal = { kind: "relieve", cpuBelow: T.cpuHigh, memBelow: T.memHigh, hot: "cpu" };

describe("cell boundary", () => {
  it.each([
    { name: "same cell", a: host("a"), b: host("b"), ok: true },
    { name: "another cell", a: host("a"), b: host("b", { cell: "c2" }), ok: false },
    { name: "default cell on both", a: host("a", { cell: "default" }), b: host("b", { cell: "default" }), ok: true },
  ])("$name", ({ a, b, ok }) => {
    expect(cellBoundary(a, b).ok).toBe(ok);
  });
});

describe("destination state", () => {
  it.each([
    { name: "ordinary host", dest: host("b"), code: undefined },
    { name: "the source itself", dest: host("a"), code: "same-host" },
    { name: "in maintenance", dest: host("b", { maintenance: true }), code: "maintenance" },
    { name: "unreachable", dest: host("b", { reachable: false }), code: "unreachable" },
    { name: "disabled on the hypervisor", dest: host("b", { disabled: true }), code: "disabled" },
  ])("$name", ({ dest, code }) => {
    const v = destinationState(host("a"), dest);
    expect(v.ok ? undefined : v.code).toBe(code);
  });
  it("an unreachable source cannot give up VMs", () => {
    const v = sourceState(host("a", { reachable: false }));
    expect(v).toMatchObject({ ok: false, code: "source-unreachable" });
  });
});

describe("capacity", () => {
  const after = (d: Host, cpus: number, mem: number) => loadWith(d, { cpus, memoryMiB: mem }, 1);
  const cases: { name: string; dest: Host; cpus: number; mem: number; goal: Goal; code: string | undefined }[] = [
    { name: "evacuate: fits", dest: host("b"), cpus: 1, mem: 8000, goal: evacuate, code: undefined },
    { name: "evacuate: memory would reach memHigh", dest: host("b", { memoryUsedMiB: 85_000 }), cpus: 1, mem: 5000, goal: evacuate, code: "memory" },
    { name: "evacuate: memory just below memHigh", dest: host("b", { memoryUsedMiB: 85_000 }), cpus: 1, mem: 4999, goal: evacuate, code: undefined },
    { name: "evacuate: would reach cpuHigh", dest: host("b", { cpuLoad: 0.8 }), cpus: 0.5, mem: 10, goal: evacuate, code: "cpu-high" },
    { name: "evacuate: may go above cpuLow (only relieve keeps the low band)", dest: host("b", { cpuLoad: 0.7 }), cpus: 0.5, mem: 10, goal: evacuate, code: undefined },
    { name: "relieve: would reach cpuLow", dest: host("b", { cpuLoad: 0.65 }), cpus: 0.5, mem: 10, goal: relieve, code: "cpu-low" },
    { name: "relieve: would reach memLow", dest: host("b", { memoryUsedMiB: 75_000 }), cpus: 0.1, mem: 5000, goal: relieve, code: "mem-low" },
    { name: "relieve: memory overcommit is reported as memory first", dest: host("b", { memoryUsedMiB: 95_000, cpuLoad: 0.9 }), cpus: 1, mem: 8000, goal: relieve, code: "memory" },
    { name: "relieve: under both low marks", dest: host("b", { cpuLoad: 0.5, memoryUsedMiB: 60_000 }), cpus: 1, mem: 8000, goal: relieve, code: undefined },
  ];
  it.each(cases)("$name", ({ dest, cpus, mem, goal, code }) => {
    const v = capacity(dest, after(dest, cpus, mem), mem, goal, T);
    expect(v.ok ? undefined : v.code).toBe(code);
    if (!v.ok) expect(v.reason).toContain(dest.name);
  });
});

describe("checkDestination (all constraints, first refusal reported)", () => {
  const v = vm("v", "a", { cpuLoad: 1, memoryMiB: 8000 });
  const ctx = { vm: v, source: host("a"), goal: evacuate, thresholds: T, migration: MIG };
  it.each([
    { name: "feasible: kind and the load after the move", dest: host("b"), code: undefined },
    { name: "cell first", dest: host("b", { cell: "c2", maintenance: true }), code: "cell" },
    { name: "maintenance before storage", dest: host("b", { maintenance: true, sharedStorage: [] }), code: "maintenance" },
    { name: "storage before capacity", dest: host("b", { sharedStorage: [], memoryUsedMiB: 99_000 }), code: "storage-not-mounted" },
    { name: "capacity last", dest: host("b", { memoryUsedMiB: 99_000 }), code: "memory" },
  ])("$name", ({ dest, code }) => {
    const r = checkDestination(ctx, dest);
    expect(r.ok ? undefined : r.code).toBe(code);
    if (r.ok) expect(r.kind).toBe("live-shared");
    // The load passed in is what capacity judges.
    expect(checkDestination(ctx, dest, loadWith(dest, footprint(v), 1))).toEqual(r);
  });
});
