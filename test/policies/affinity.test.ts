import { describe, expect, it } from "vitest";
import { plan } from "../../src/daemon/planner.js";
import { globMatch } from "../../src/policies/glob.js";
import { parseVmRule, DEFAULT_TAG_NAMES } from "../../src/policies/constraints/affinity.js";
import { affinity, affinitySchema } from "../../src/policies/affinity.js";
import { maintenanceDrain } from "../../src/policies/maintenance-drain.js";
import { hotspotRelief, hotspotReliefSchema } from "../../src/policies/hotspot-relief.js";
import { cluster, host, planOpts, vm } from "../planner/fixtures.js";

const drainOnly = planOpts({ policies: [maintenanceDrain.create()] });
const withAffinity = planOpts({ policies: [maintenanceDrain.create(), hotspotRelief.create(hotspotReliefSchema.parse({})), affinity.create()] });
const moves = (p: ReturnType<typeof plan>): string[] => p.moves.map((m) => `${m.vm}:${m.from}>${m.to}`);

describe("globMatch", () => {
  it.each([
    { pattern: "rack1-*", name: "rack1-h3", expected: true },
    { pattern: "rack1-*", name: "rack2-h3", expected: false },
    { pattern: "h?", name: "h7", expected: true },
    { pattern: "h?", name: "h17", expected: false },
    { pattern: "*-h*1", name: "c1-h21", expected: true },
    { pattern: "*", name: "", expected: true },
    { pattern: "", name: "h1", expected: false },
    { pattern: "a*b*c", name: "aXbYbZc", expected: true },
    // Regex syntax is literal: nothing is injected.
    { pattern: "h.", name: "h1", expected: false },
    { pattern: "h[0-2]", name: "h1", expected: false },
    { pattern: "h[0-2]", name: "h[0-2]", expected: true },
    { pattern: "(a+)+$", name: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", expected: false },
  ])("$pattern ~ $name → $expected", ({ pattern, name, expected }) => {
    expect(globMatch(pattern, name)).toBe(expected);
  });

  it("stays fast on a pathological pattern", () => {
    const name = "a".repeat(5_000);
    expect(globMatch(`${"*a".repeat(50)}b`, name)).toBe(false);
  });
});

describe("parseVmRule", () => {
  it.each([
    { tags: ["web"], expected: undefined },
    { tags: ["ballast.pin"], expected: { pin: true, ignore: false, antiAffinity: [], hostGlobs: [] } },
    { tags: ["ballast.ignore=yes"], expected: { pin: false, ignore: true, antiAffinity: [], hostGlobs: [] } },
    { tags: ["ballast.anti-affinity=db", "ballast.anti-affinity=zone"], expected: { pin: false, ignore: false, antiAffinity: ["db", "zone"], hostGlobs: [] } },
    { tags: ["ballast.affinity=app", "ballast.host-affinity=rack1-*"], expected: { pin: false, ignore: false, antiAffinity: [], affinity: "app", hostGlobs: ["rack1-*"] } },
    { tags: ["ballast.anti-affinity", "ballast.affinity="], expected: undefined },
  ])("$tags", ({ tags, expected }) => {
    expect(parseVmRule(tags, DEFAULT_TAG_NAMES)).toEqual(expected);
  });
});

describe("pin and ignore", () => {
  const drained = (tag: string) => cluster([host("h1", { maintenance: true }), host("h2")], [vm("a", "h1", { tags: [tag] }), vm("b", "h1")]);

  it("a drain blocks a pinned VM with the reason and moves the rest", () => {
    const p = plan(drained("ballast.pin"), drainOnly);
    expect(moves(p)).toEqual(["b:h1>h2"]);
    expect(p.blocked).toEqual([{ vm: "a", policy: "maintenance-drain", reason: "a pinned by tag ballast.pin; unpin or move it by hand" }]);
  });

  it("a drain blocks an ignored VM too (the host is not empty), saying ballast never moves it", () => {
    const p = plan(drained("ballast.ignore"), drainOnly);
    expect(moves(p)).toEqual(["b:h1>h2"]);
    expect(p.blocked[0]?.reason).toMatch(/^a ignored by tag ballast\.ignore: ballast never moves it/);
  });

  it("hotspot relief passes over pinned and ignored VMs (shown as skipped in explain)", () => {
    const s = cluster(
      [host("h1", { cpuLoad: 0.3 }), host("h2")],
      [vm("big", "h1", { cpuLoad: 4, tags: ["ballast.pin"] }), vm("odd", "h1", { cpuLoad: 3, tags: ["ballast.ignore"] }), vm("ok", "h1", { cpuLoad: 2 })],
    );
    const p = plan(s, { ...withAffinity, explain: true });
    expect(p.moves.map((m) => m.vm)).toEqual(["ok"]);
    const skipped = p.explain?.[0]?.candidates.filter((c) => c.skipped).map((c) => c.skipped);
    expect(skipped?.some((r) => /pinned by tag/.test(r ?? ""))).toBe(true);
  });

  it("tag names are configurable", () => {
    const s = cluster([host("h1", { maintenance: true }), host("h2")], [vm("a", "h1", { tags: ["keep-here"] })]);
    const tags = affinitySchema.parse({ tags: { pin: "keep-here" } }).tags;
    expect(plan(s, { ...drainOnly, tags }).blocked[0]?.reason).toBe("a pinned by tag keep-here; unpin or move it by hand");
    expect(moves(plan(s, drainOnly))).toEqual(["a:h1>h2"]);
  });
});

describe("anti-affinity", () => {
  it("a drain never puts two VMs of a group on one host, even the emptiest", () => {
    const s = cluster(
      [host("h1", { maintenance: true }), host("h2", { cpuLoad: 0 }), host("h3", { cpuLoad: 0.3 })],
      [vm("db1", "h1", { tags: ["ballast.anti-affinity=db"] }), vm("db2", "h2", { tags: ["ballast.anti-affinity=db"] })],
    );
    expect(moves(plan(s, drainOnly))).toEqual(["db1:h1>h3"]);
  });

  it("blocks with the reason when every host already runs one", () => {
    const s = cluster(
      [host("h1", { maintenance: true }), host("h2")],
      [vm("db1", "h1", { tags: ["ballast.anti-affinity=db"] }), vm("db2", "h2", { tags: ["ballast.anti-affinity=db"] })],
    );
    expect(plan(s, drainOnly).blocked[0]?.reason).toMatch(/h2 already runs db2 of anti-affinity group db/);
  });

  it("an existing violation is fixed by moving the cheaper VM; the same group in another cell is another group", () => {
    const s = cluster(
      [host("h1"), host("h2"), host("x1", { cell: "c2" })],
      [
        vm("db1", "h1", { memoryMiB: 16_000, tags: ["ballast.anti-affinity=db"] }),
        vm("db2", "h1", { memoryMiB: 4_000, tags: ["ballast.anti-affinity=db"] }),
        vm("db3", "x1", { tags: ["ballast.anti-affinity=db"] }),
      ],
    );
    const p = plan(s, withAffinity);
    expect(moves(p)).toEqual(["db2:h1>h2"]);
    expect(p.moves[0]?.reason).toBe("anti-affinity group db: 2 VMs on h1");
  });

  it("a pinned member stays; the other moves", () => {
    const s = cluster([host("h1"), host("h2")], [vm("db1", "h1", { memoryMiB: 1_000, tags: ["ballast.anti-affinity=db", "ballast.pin"] }), vm("db2", "h1", { tags: ["ballast.anti-affinity=db"] })]);
    expect(moves(plan(s, withAffinity))).toEqual(["db2:h1>h2"]);
  });
});

describe("affinity groups", () => {
  const g = ["ballast.affinity=app"];

  it("a split group gathers on the host holding most of it", () => {
    const s = cluster([host("h1"), host("h2"), host("h3")], [vm("a", "h1", { tags: g }), vm("b", "h2", { tags: g }), vm("c", "h2", { tags: g })]);
    const p = plan(s, withAffinity);
    expect(moves(p)).toEqual(["a:h1>h2"]);
    expect(p.moves[0]?.reason).toBe("affinity group app is split: gathering on h2");
  });

  it("when the group's host cannot take it, the gathering is blocked with why", () => {
    const s = cluster([host("h1"), host("h2", { memoryUsedMiB: 60_000 })], [vm("a", "h1", { tags: g }), vm("b", "h2", { tags: g }), vm("c", "h2", { tags: g })]);
    const p = plan(s, withAffinity);
    expect(p.moves).toEqual([]);
    expect(p.blocked[0]).toMatchObject({ vm: "a", policy: "affinity" });
    expect(p.blocked[0]?.reason).toBe("no destination in cell c1: 1 host would reach memLow 80%");
  });

  it("a drain moves the group together: the first goes to the best host, the rest follow it", () => {
    const s = cluster([host("h1", { maintenance: true }), host("h2", { cpuLoad: 0.1 }), host("h3", { cpuLoad: 0.15 })], [vm("a", "h1", { tags: g }), vm("b", "h1", { tags: g })]);
    expect(plan(s, drainOnly).moves.map((m) => m.to)).toEqual(["h2", "h2"]);
  });

  it("a drain splits the group only when its host cannot take the VM", () => {
    const s = cluster(
      [host("h1", { maintenance: true }), host("h2", { memoryUsedMiB: 80_000 }), host("h3", { cpuLoad: 0.5 })],
      [vm("a", "h1", { tags: g, memoryMiB: 10_000 }), vm("b", "h2", { tags: g })],
    );
    expect(moves(plan(s, drainOnly))).toEqual(["a:h1>h3"]);
  });

  it("hotspot relief does not take a VM away from its group", () => {
    const s = cluster([host("h1", { cpuLoad: 0.4 }), host("h2")], [vm("a", "h1", { cpuLoad: 3, tags: g }), vm("b", "h1", { cpuLoad: 3, tags: g }), vm("free", "h1", { cpuLoad: 1 })]);
    expect(plan(s, withAffinity).moves.map((m) => m.vm)).toEqual(["free"]);
  });
});

describe("host affinity", () => {
  it("only matching hosts are destinations; a VM outside them is moved in", () => {
    const s = cluster(
      [host("rack1-a", { maintenance: true }), host("rack2-a", { cpuLoad: 0 }), host("rack1-b", { cpuLoad: 0.4 }), host("rack2-b")],
      [vm("v", "rack1-a", { tags: ["ballast.host-affinity=rack1-*"] }), vm("w", "rack2-b", { tags: ["ballast.host-affinity=rack1-?"] })],
    );
    expect(moves(plan(s, withAffinity)).sort()).toEqual(["v:rack1-a>rack1-b", "w:rack2-b>rack1-b"]);
  });
});
