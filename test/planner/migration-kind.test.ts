import { describe, expect, it } from "vitest";
import { flagsFor, migrationKind, type MigrationFlagConfig, type MigrationPolicy } from "../../src/daemon/migration-kind.js";
import type { Host, MigrationKind, Vm } from "../../src/model/index.js";
import type { MigrationFlag } from "../../src/drivers/driver.js";
import { host, MIG, vm } from "./fixtures.js";

const BLOCK: MigrationPolicy = { allowBlockMigration: true, allowColdForTags: [] };
const COLD_TAG: MigrationPolicy = { allowBlockMigration: false, allowColdForTags: ["batch", "ci"] };
const xen = (name: string, pool: string): Host => host(name, { hypervisor: "xen", pool, sharedStorage: ["sr-1"] });

describe("migrationKind", () => {
  const cases: { name: string; vm: Vm; from?: Host; to?: Host; cfg?: MigrationPolicy; expected: MigrationKind | { code: string; reason?: string } }[] = [
    { name: "shared storage both mount → live-shared", vm: vm("v", "a"), expected: "live-shared" },
    {
      name: "shared storage the destination does not mount → impossible",
      vm: vm("v", "a"),
      to: host("b", { sharedStorage: ["other"] }),
      expected: { code: "storage-not-mounted", reason: "b does not mount shared storage nfs" },
    },
    { name: "shut-off VM on shared storage the destination does not mount → impossible", vm: vm("v", "a", { state: "shutoff" }), to: host("b", { sharedStorage: [] }), expected: { code: "storage-not-mounted" } },
    { name: "shut off → cold", vm: vm("v", "a", { state: "shutoff" }), expected: "cold" },
    { name: "shut off with local disk → cold even with block migration off", vm: vm("v", "a", { state: "shutoff", storage: { kind: "local" } }), expected: "cold" },
    { name: "volume-backed → live-volume", vm: vm("v", "a", { storage: { kind: "volume" }, volumes: 2 }), to: host("b", { sharedStorage: [] }), expected: "live-volume" },
    { name: "paused migrates like running", vm: vm("v", "a", { state: "paused" }), expected: "live-shared" },
    { name: "local disk, block migration on → live-block", vm: vm("v", "a", { storage: { kind: "local" } }), cfg: BLOCK, expected: "live-block" },
    {
      name: "local disk, block migration off → blocked",
      vm: vm("v", "a", { storage: { kind: "local" } }),
      expected: { code: "block-disabled", reason: "local disk and block migration is disabled (migration.allowBlockMigration)" },
    },
    { name: "local disk, block off, cold allowed by tag → cold", vm: vm("v", "a", { storage: { kind: "local" }, tags: ["web", "batch"] }), cfg: COLD_TAG, expected: "cold" },
    { name: "local disk, paused, cold tag → cold", vm: vm("v", "a", { state: "paused", storage: { kind: "local" }, tags: ["ci"] }), cfg: COLD_TAG, expected: "cold" },
    { name: "local disk, block off, tag not in the list → blocked", vm: vm("v", "a", { storage: { kind: "local" }, tags: ["web"] }), cfg: COLD_TAG, expected: { code: "block-disabled" } },
    { name: "block migration preferred over cold when both allowed", vm: vm("v", "a", { storage: { kind: "local" }, tags: ["batch"] }), cfg: { ...BLOCK, allowColdForTags: ["batch"] }, expected: "live-block" },
    { name: "different hypervisors → impossible", vm: vm("v", "a"), to: host("b", { hypervisor: "xen" }), expected: { code: "hypervisor" } },
    { name: "XenServer shared storage, same pool → live-shared", vm: vm("v", "a", { storage: { kind: "shared", id: "sr-1" } }), from: xen("a", "p1"), to: xen("b", "p1"), expected: "live-shared" },
    { name: "XenServer shared storage, other pool → impossible", vm: vm("v", "a", { storage: { kind: "shared", id: "sr-1" } }), from: xen("a", "p1"), to: xen("b", "p2"), expected: { code: "pool" } },
    { name: "XenServer local disk with volumes, block on → impossible", vm: vm("v", "a", { storage: { kind: "local" }, volumes: 1 }), from: xen("a", "p1"), to: xen("b", "p1"), cfg: BLOCK, expected: { code: "block-volumes" } },
    { name: "XenServer local disk, no volumes, block on → live-block", vm: vm("v", "a", { storage: { kind: "local" } }), from: xen("a", "p1"), to: xen("b", "p2"), cfg: BLOCK, expected: "live-block" },
    { name: "XenServer volume-backed → impossible", vm: vm("v", "a", { storage: { kind: "volume" } }), from: xen("a", "p1"), to: xen("b", "p1"), expected: { code: "volume-unsupported" } },
  ];
  it.each(cases)("$name", ({ vm: v, from, to, cfg, expected }) => {
    const r = migrationKind(v, from ?? host("a"), to ?? host("b"), cfg ?? MIG);
    if (typeof expected === "string") expect(r).toEqual({ ok: true, kind: expected });
    else expect(r).toMatchObject({ ok: false, ...expected });
  });
});

describe("flagsFor", () => {
  const live = { mode: "live" as const, flags: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"] as MigrationFlag[] };
  const suspend = { ...live, mode: "suspend" as const };
  const cases: { name: string; kind: MigrationKind; cfg: MigrationFlagConfig; expected: MigrationFlag[] }[] = [
    { name: "live-shared: the configured set", kind: "live-shared", cfg: live, expected: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"] },
    { name: "live-volume: the configured set", kind: "live-volume", cfg: live, expected: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"] },
    { name: "live-block adds NON_SHARED_DISK", kind: "live-block", cfg: live, expected: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE", "NON_SHARED_DISK"] },
    { name: "suspend mode drops LIVE", kind: "live-shared", cfg: suspend, expected: ["PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"] },
    { name: "suspend mode, block", kind: "live-block", cfg: suspend, expected: ["PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE", "NON_SHARED_DISK"] },
    { name: "cold: offline, persistent, undefine source, never LIVE", kind: "cold", cfg: live, expected: ["PERSIST_DEST", "UNDEFINE_SOURCE", "OFFLINE"] },
    { name: "extra configured flags kept (auto-converge)", kind: "live-shared", cfg: { ...live, flags: [...live.flags, "AUTO_CONVERGE"] }, expected: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE", "AUTO_CONVERGE"] },
    { name: "permitPostCopy adds POSTCOPY (needed at start to switch later)", kind: "live-shared", cfg: { ...live, permitPostCopy: true }, expected: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE", "POSTCOPY"] },
    { name: "permitAutoConverge adds AUTO_CONVERGE", kind: "live-volume", cfg: { ...live, permitAutoConverge: true }, expected: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE", "AUTO_CONVERGE"] },
    { name: "suspend mode has no post-copy or auto-converge", kind: "live-shared", cfg: { ...suspend, permitPostCopy: true, permitAutoConverge: true, flags: [...live.flags, "POSTCOPY"] }, expected: ["PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"] },
    { name: "NON_SHARED_DISK configured by mistake is not used for shared storage", kind: "live-shared", cfg: { ...live, flags: [...live.flags, "NON_SHARED_DISK"] }, expected: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"] },
  ];
  it.each(cases)("$name", ({ kind, cfg, expected }) => {
    expect(flagsFor(kind, cfg)).toEqual(expected);
  });

  it("suspend mode can be chosen per cell", () => {
    const cfg = { ...live, modeByCell: { legacy: "suspend" as const } };
    expect(flagsFor("live-shared", cfg, "legacy")).not.toContain("LIVE");
    expect(flagsFor("live-shared", cfg, "modern")).toContain("LIVE");
    expect(flagsFor("live-shared", { ...suspend, modeByCell: { modern: "live" as const } }, "modern")).toContain("LIVE");
  });
});
