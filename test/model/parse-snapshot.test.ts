import { describe, expect, it } from "vitest";
import { EPOCH, jsonSyntaxError, parseSnapshot, SnapshotError } from "../../src/model/parse-snapshot.js";

type Json = Record<string, unknown>;

const host = (name: string, extra: Json = {}): Json => ({
  name,
  hypervisor: "kvm",
  cell: "a",
  pool: null,
  cpus: 32,
  memoryMiB: 131072,
  cpuLoad: 0.5,
  memoryUsedMiB: 65536,
  maintenance: false,
  reachable: true,
  sharedStorage: ["nfs-1"],
  ...extra,
});

const vm = (id: string, on: string, extra: Json = {}): Json => ({
  id,
  name: `${id}-name`,
  host: on,
  state: "running",
  vcpus: 4,
  memoryMiB: 8192,
  cpuLoad: 1.5,
  storage: { kind: "shared", id: "nfs-1" },
  volumes: 0,
  tags: ["web"],
  ...extra,
});

const snapshot = (over: Json = {}): Json => ({
  takenAt: "2024-05-01T12:00:00.000Z",
  hosts: [host("h1"), host("h2")],
  vms: [vm("v1", "h1"), vm("v2", "h2")],
  ...over,
});

function issuesOf(text: string, source = "snap.json"): readonly string[] {
  try {
    parseSnapshot(text, source);
  } catch (e) {
    expect(e).toBeInstanceOf(SnapshotError);
    return (e as SnapshotError).issues;
  }
  throw new Error("expected a SnapshotError");
}

describe("parseSnapshot: valid input", () => {
  it("keeps every field of DESIGN.md's format", () => {
    const s = parseSnapshot(
      JSON.stringify(
        snapshot({
          hosts: [host("h1", { maintenance: true, maintenanceReason: "disk swap", pool: "pool-1", hypervisor: "xen", disabled: true })],
          vms: [vm("v1", "h1", { dirtyRateMiBps: 12.5, diskMiB: 20480, volumes: 2, storage: { kind: "volume" }, state: "paused" })],
        }),
      ),
      "snap.json",
    );
    expect(s.takenAt).toBe("2024-05-01T12:00:00.000Z");
    expect(s.hosts[0]).toEqual({ ...host("h1", { maintenance: true, pool: "pool-1", hypervisor: "xen" }), maintenanceReason: "disk swap", disabled: true });
    expect(s.vms[0]).toEqual(vm("v1", "h1", { dirtyRateMiBps: 12.5, diskMiB: 20480, volumes: 2, storage: { kind: "volume" }, state: "paused" }));
  });

  it("applies the documented defaults and drops unknown fields", () => {
    const s = parseSnapshot(
      JSON.stringify({
        hosts: [{ name: "h1", hypervisor: "sim", cpus: 8, memoryMiB: 1024, cpuLoad: 0, memoryUsedMiB: 0, rack: "r7" }],
        vms: [{ id: "v1", host: "h1", state: "shutoff", vcpus: 1, memoryMiB: 512, cpuLoad: 0, storage: { kind: "local" }, owner: "x" }],
        generator: "test",
      }),
      "min.json",
    );
    expect(s).toEqual({
      takenAt: EPOCH,
      hosts: [
        {
          name: "h1",
          hypervisor: "sim",
          cell: "default",
          pool: null,
          cpus: 8,
          memoryMiB: 1024,
          cpuLoad: 0,
          memoryUsedMiB: 0,
          maintenance: false,
          reachable: true,
          sharedStorage: [],
        },
      ],
      vms: [
        { id: "v1", name: "v1", host: "h1", state: "shutoff", vcpus: 1, memoryMiB: 512, cpuLoad: 0, storage: { kind: "local" }, volumes: 0, tags: [] },
      ],
    });
  });

  it("accepts an empty cluster and a byte order mark", () => {
    expect(parseSnapshot('\ufeff{"hosts":[],"vms":[]}', "x").hosts).toEqual([]);
  });

  it("round-trips its own output", () => {
    const s = parseSnapshot(JSON.stringify(snapshot()), "a");
    expect(parseSnapshot(JSON.stringify(s), "b")).toEqual(s);
  });
});

interface Bad {
  readonly name: string;
  readonly text: string;
  readonly issue: string | RegExp;
}

const bad = (over: Json): string => JSON.stringify(snapshot(over));
const badVm = (extra: Json): string => bad({ vms: [vm("v1", "h1"), vm("v2", "h1", extra)] });
const badHost = (extra: Json): string => bad({ hosts: [host("h1"), host("h2", extra)] });

const CASES: readonly Bad[] = [
  { name: "bad JSON", text: '{"hosts": [}', issue: "snap.json:1:12: invalid JSON at position 11: unexpected \"}\", expected a value" },
  { name: "bad JSON on a later line", text: '{\n  "hosts": [],\n  "vms": [1,]\n}', issue: /^snap\.json:3:13: invalid JSON at position 29: unexpected "]"/ },
  { name: "truncated JSON", text: '{"hosts": [], "vms": [', issue: /^snap\.json:1:23: invalid JSON .*unexpected end of input/ },
  { name: "trailing garbage", text: '{"hosts": [], "vms": []} x', issue: /^snap\.json:1:26: invalid JSON .*expected end of input/ },
  { name: "empty input", text: "  \n", issue: /^snap\.json: the input is empty/ },
  { name: "not an object", text: "[1,2]", issue: "snap.json: got [1,2], expected a JSON object with hosts and vms" },
  { name: "hosts missing", text: '{"vms":[]}', issue: "snap.json: hosts: got nothing (field missing), expected a list of hosts" },
  { name: "vms not a list", text: '{"hosts":[],"vms":{}}', issue: "snap.json: vms: got {}, expected a list of VMs" },
  { name: "VM on an unknown host", text: badVm({ host: "h9" }), issue: 'snap.json: vms[1].host: got "h9", expected the name of a host listed in hosts[]' },
  { name: "negative VM memory", text: badVm({ memoryMiB: -1 }), issue: "snap.json: vms[1].memoryMiB: got -1, expected a number > 0" },
  { name: "zero vCPUs", text: badVm({ vcpus: 0 }), issue: "snap.json: vms[1].vcpus: got 0, expected an integer > 0" },
  { name: "fractional vCPUs", text: badVm({ vcpus: 1.5 }), issue: "snap.json: vms[1].vcpus: got 1.5, expected an integer > 0" },
  { name: "negative VM load", text: badVm({ cpuLoad: -0.1 }), issue: "snap.json: vms[1].cpuLoad: got -0.1, expected a number ≥ 0" },
  { name: "VM state not in the enum", text: badVm({ state: "crashed" }), issue: 'snap.json: vms[1].state: got "crashed", expected one of running, paused, shutoff' },
  { name: "storage kind unknown", text: badVm({ storage: { kind: "nfs" } }), issue: 'snap.json: vms[1].storage.kind: got "nfs", expected one of shared, local, volume' },
  { name: "shared storage without id", text: badVm({ storage: { kind: "shared" } }), issue: "snap.json: vms[1].storage.id: got nothing (field missing), expected a non-empty string" },
  { name: "storage missing", text: badVm({ storage: undefined }), issue: /^snap\.json: vms\[1\]\.storage: got nothing \(field missing\), expected \{"kind":"shared"/ },
  { name: "negative volumes", text: badVm({ volumes: -2 }), issue: "snap.json: vms[1].volumes: got -2, expected an integer ≥ 0" },
  { name: "negative dirty rate", text: badVm({ dirtyRateMiBps: -5 }), issue: "snap.json: vms[1].dirtyRateMiBps: got -5, expected a number ≥ 0" },
  { name: "tags not strings", text: badVm({ tags: ["a", 7] }), issue: "snap.json: vms[1].tags[1]: got 7, expected a string" },
  { name: "VM id missing", text: badVm({ id: undefined }), issue: "snap.json: vms[1].id: got nothing (field missing), expected a non-empty string" },
  { name: "duplicate VM ids", text: bad({ vms: [vm("v1", "h1"), vm("v1", "h2")] }), issue: 'snap.json: vms[1].id: got "v1", expected a unique VM id (vms[0] has the same id)' },
  { name: "duplicate host names", text: bad({ hosts: [host("h1"), host("h1")], vms: [] }), issue: 'snap.json: hosts[1].name: got "h1", expected a unique host name (hosts[0] has the same name)' },
  { name: "hypervisor not in the enum", text: badHost({ hypervisor: "vmware" }), issue: 'snap.json: hosts[1].hypervisor: got "vmware", expected one of kvm, xen, sim' },
  { name: "host load above 1", text: badHost({ cpuLoad: 1.01 }), issue: "snap.json: hosts[1].cpuLoad: got 1.01, expected a number from 0 to 1" },
  { name: "host load as a string", text: badHost({ cpuLoad: "0.5" }), issue: 'snap.json: hosts[1].cpuLoad: got "0.5", expected a number from 0 to 1' },
  { name: "host memory zero", text: badHost({ memoryMiB: 0 }), issue: "snap.json: hosts[1].memoryMiB: got 0, expected a number > 0" },
  { name: "negative memory used", text: badHost({ memoryUsedMiB: -1 }), issue: "snap.json: hosts[1].memoryUsedMiB: got -1, expected a number ≥ 0" },
  { name: "maintenance not a boolean", text: badHost({ maintenance: "yes" }), issue: 'snap.json: hosts[1].maintenance: got "yes", expected true or false' },
  { name: "pool not a string", text: badHost({ pool: 3 }), issue: "snap.json: hosts[1].pool: got 3, expected a pool name or null" },
  { name: "infinite number", text: badHost({ cpus: 1 }).replace('"cpus":1', '"cpus":1e999'), issue: "snap.json: hosts[1].cpus: got Infinity, expected an integer > 0" },
  { name: "a host that is not an object", text: bad({ hosts: [host("h1"), "h2"], vms: [] }), issue: 'snap.json: hosts[1]: got "h2", expected a host object' },
  { name: "bad takenAt", text: bad({ takenAt: "yesterday" }), issue: 'snap.json: takenAt: got "yesterday", expected an ISO-8601 time such as 2024-05-01T12:00:00Z' },
  {
    name: "control characters in a value",
    text: badVm({ state: "\u001b[2J\u202e" }),
    issue: 'snap.json: vms[1].state: got "\\u001b[2J\\u202e", expected one of running, paused, shutoff',
  },
];

describe("parseSnapshot: invalid input", () => {
  it.each(CASES)("$name", ({ text, issue }) => {
    const issues = issuesOf(text);
    if (typeof issue === "string") expect(issues).toContain(issue);
    else expect(issues.some((i) => issue.test(i)), issues.join("\n")).toBe(true);
  });

  it("reports every problem at once, and counts what it does not list", () => {
    expect(issuesOf(bad({ vms: [vm("v1", "h1", { memoryMiB: -1, state: "x" })] }))).toHaveLength(2);
    const many = bad({ vms: Array.from({ length: 80 }, (_, i) => vm(`v${i}`, "nowhere")) });
    const issues = issuesOf(many);
    expect(issues).toHaveLength(51);
    expect(issues[50]).toBe("snap.json: … and 30 more");
  });

  it("its message names the source and lists the issues", () => {
    try {
      parseSnapshot("{", "in.json");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SnapshotError);
      expect((e as Error).message).toMatch(/^in\.json: invalid snapshot \(1 problem\)\nin\.json:1:2: invalid JSON/);
    }
  });
});

describe("jsonSyntaxError", () => {
  it.each([
    ['{"a": }', 6],
    ["[1,2", 4],
    ['{"a":1,}', 7],
    ['"abc', 4],
    ["{} x", 3],
    ['{"a" 1}', 5],
    ['["\\x"]', 2],
    ["[01]", 2],
    ["[tru]", 1],
    ["[\"a\u0001\"]", 3],
  ])("%j fails at %d", (text, offset) => {
    expect(() => {
      JSON.parse(text);
    }).toThrow();
    expect(jsonSyntaxError(text).offset).toBe(offset);
  });

  it("does not overflow the stack on deep nesting", () => {
    const deep = "[".repeat(200_000);
    expect(jsonSyntaxError(deep)).toEqual({ offset: 200_000, what: "unexpected end of input, expected a value" });
  });
});
