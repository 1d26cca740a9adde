import { describe, expect, it } from "vitest";
import { diskClass, mapPool, type LoadView } from "../../src/drivers/xenserver/mapping.js";
import type { PoolRecords } from "../../src/drivers/xenserver/records.js";
import { parseRrdUpdates, RrdParseError, SmoothedLoad } from "../../src/drivers/xenserver/rrd.js";
import { validateSnapshot } from "../../src/model/parse-snapshot.js";

const MiB = 1024 * 1024;
const NULL = "OpaqueRef:NULL";

/** A pool as XAPI records (int64 as strings, as XML-RPC sends them): two hosts, NFS default SR, local ext on h1, iSCSI. */
function records(): PoolRecords {
  const host = (uuid: string, name: string, metrics: string, pbds: string[], extra: object = {}) => ({
    uuid,
    name_label: name,
    enabled: true,
    metrics,
    PBDs: pbds,
    host_CPUs: Array.from({ length: 16 }, (_, i) => `OpaqueRef:cpu-${name}-${i}`),
    other_config: {},
    ...extra,
  });
  const vm = (uuid: string, name: string, extra: object = {}) => ({
    uuid,
    name_label: name,
    power_state: "Running",
    is_a_template: false,
    is_control_domain: false,
    is_a_snapshot: false,
    resident_on: "OpaqueRef:h1",
    affinity: NULL,
    memory_static_max: String(4096 * MiB),
    VCPUs_max: "4",
    VCPUs_at_startup: "2",
    VBDs: [],
    tags: [],
    ...extra,
  });
  const disk = (vbd: string, vdi: string, sr: string, sizeMiB: number, extra: object = {}) => ({
    vbd: [vbd, { VM: "", VDI: vdi, type: "Disk", userdevice: "0", other_config: {}, ...extra }] as const,
    vdi: [vdi, { SR: sr, virtual_size: String(sizeMiB * MiB) }] as const,
  });
  const disks = [
    disk("OpaqueRef:vbd-s", "OpaqueRef:vdi-s", "OpaqueRef:nfs", 8192),
    disk("OpaqueRef:vbd-l1", "OpaqueRef:vdi-l1", "OpaqueRef:local1", 4096),
    disk("OpaqueRef:vbd-l2", "OpaqueRef:vdi-l2", "OpaqueRef:local1", 1024, { userdevice: "1" }),
    disk("OpaqueRef:vbd-v", "OpaqueRef:vdi-v", "OpaqueRef:iscsi", 10240, { userdevice: "2", other_config: { osvol: "True" } }),
    disk("OpaqueRef:vbd-h", "OpaqueRef:vdi-h", "OpaqueRef:local1", 2048),
  ];
  return {
    poolRef: "OpaqueRef:pool",
    pool: { name_label: "xs", master: "OpaqueRef:h1", default_SR: "OpaqueRef:nfs" },
    host: new Map([
      ["OpaqueRef:h1", host("uuid-h1", "h1", "OpaqueRef:m1", ["OpaqueRef:pbd-nfs-1", "OpaqueRef:pbd-local-1", "OpaqueRef:pbd-iscsi-1"])],
      ["OpaqueRef:h2", host("uuid-h2", "h2", "OpaqueRef:m2", ["OpaqueRef:pbd-nfs-2", "OpaqueRef:pbd-iscsi-2"], { enabled: false })],
      ["OpaqueRef:h3", host("uuid-h3", "h3", "OpaqueRef:m3", ["OpaqueRef:pbd-nfs-3"], { enabled: false, other_config: { "ballast-disabled": "true" } })],
      ["OpaqueRef:h4", host("uuid-h4", "h4", "OpaqueRef:m4", [])],
    ]),
    host_metrics: new Map([
      ["OpaqueRef:m1", { memory_total: String(65536 * MiB), memory_free: String(49152 * MiB), live: true }],
      ["OpaqueRef:m2", { memory_total: 65536 * MiB, memory_free: 65536 * MiB, live: true }],
      ["OpaqueRef:m3", { memory_total: 65536 * MiB, memory_free: 60000 * MiB, live: true }],
      ["OpaqueRef:m4", { memory_total: 65536 * MiB, memory_free: 60000 * MiB, live: false }],
    ]),
    VM: new Map([
      ["OpaqueRef:dom0", vm("uuid-dom0", "Control domain on host: h1", { is_control_domain: true })],
      ["OpaqueRef:tpl", vm("uuid-tpl", "Debian template", { is_a_template: true, power_state: "Halted", resident_on: NULL })],
      ["OpaqueRef:snap", vm("uuid-snap", "shared snapshot", { is_a_snapshot: true, power_state: "Halted", resident_on: NULL })],
      ["OpaqueRef:shared", vm("uuid-shared", "shared", { VBDs: ["OpaqueRef:vbd-s", "OpaqueRef:vbd-cd"], tags: ["web", "prod"] })],
      ["OpaqueRef:local", vm("uuid-local", "local", { VBDs: ["OpaqueRef:vbd-l1", "OpaqueRef:vbd-l2", "OpaqueRef:vbd-v"] })],
      ["OpaqueRef:haff", vm("uuid-haff", "halted-affinity", { power_state: "Halted", resident_on: NULL, affinity: "OpaqueRef:h2", VBDs: [] })],
      ["OpaqueRef:hloc", vm("uuid-hloc", "halted-local", { power_state: "Halted", resident_on: NULL, VBDs: ["OpaqueRef:vbd-h"] })],
      ["OpaqueRef:lost", vm("uuid-lost", "on-dead-host", { resident_on: "OpaqueRef:h4" })],
    ]),
    VBD: new Map<string, object>([...disks.map((d) => d.vbd), ["OpaqueRef:vbd-cd", { VM: "", VDI: NULL, type: "CD", userdevice: "3" }]]),
    VDI: new Map(disks.map((d) => d.vdi)),
    SR: new Map([
      ["OpaqueRef:nfs", { uuid: "sr-nfs", name_label: "NFS VHD", type: "nfs", shared: true, PBDs: ["OpaqueRef:pbd-nfs-1", "OpaqueRef:pbd-nfs-2", "OpaqueRef:pbd-nfs-3"] }],
      ["OpaqueRef:local1", { uuid: "sr-local1", name_label: "Local storage h1", type: "ext", shared: false, PBDs: ["OpaqueRef:pbd-local-1"] }],
      ["OpaqueRef:iscsi", { uuid: "sr-iscsi", name_label: "volumes", type: "lvmoiscsi", shared: true, PBDs: ["OpaqueRef:pbd-iscsi-1", "OpaqueRef:pbd-iscsi-2"] }],
    ]),
    PBD: new Map([
      ["OpaqueRef:pbd-nfs-1", { host: "OpaqueRef:h1", SR: "OpaqueRef:nfs", currently_attached: true }],
      ["OpaqueRef:pbd-nfs-2", { host: "OpaqueRef:h2", SR: "OpaqueRef:nfs", currently_attached: true }],
      ["OpaqueRef:pbd-nfs-3", { host: "OpaqueRef:h3", SR: "OpaqueRef:nfs", currently_attached: false }],
      ["OpaqueRef:pbd-local-1", { host: "OpaqueRef:h1", SR: "OpaqueRef:local1", currently_attached: true }],
      ["OpaqueRef:pbd-iscsi-1", { host: "OpaqueRef:h1", SR: "OpaqueRef:iscsi", currently_attached: true }],
      ["OpaqueRef:pbd-iscsi-2", { host: "OpaqueRef:h2", SR: "OpaqueRef:iscsi", currently_attached: true }],
    ]),
    network: new Map(),
    VIF: new Map(),
  } as unknown as PoolRecords;
}

const load = (hosts: Record<string, number>, vms: Record<string, number>): LoadView => ({ host: (u) => hosts[u], vm: (u) => vms[u] });

describe("XenServer record → snapshot mapping", () => {
  const s = mapPool(records(), { pool: "xs", cell: "east", hostCells: { h2: "west" }, reachable: true, load: load({ "uuid-h1": 0.4, "uuid-h2": 1.7 }, { "uuid-shared": 1.5, "uuid-local": 9 }) });
  const host = (n: string) => s.hosts.find((h) => h.name === n);
  const vm = (n: string) => s.vms.find((v) => v.name === n);

  it("maps hosts: pool, cells (host override, pool cell), CPUs, memory from host_metrics, clamped load", () => {
    expect(host("h1")).toEqual({
      name: "h1",
      hypervisor: "xen",
      cell: "east",
      pool: "xs",
      cpus: 16,
      memoryMiB: 65536,
      cpuLoad: 0.4,
      memoryUsedMiB: 16384,
      maintenance: false,
      reachable: true,
      sharedStorage: ["sr-iscsi", "sr-nfs"],
    });
    expect(host("h2")).toMatchObject({ cell: "west", cpuLoad: 1, memoryUsedMiB: 0, disabled: true });
  });

  it("counts only attached PBDs of shared SRs as shared storage", () => {
    expect(host("h3")?.sharedStorage).toEqual([]);
  });

  it("reports a host disabled in XAPI as disabled, whoever disabled it; an enabled host carries no field", () => {
    expect(host("h2")?.disabled).toBe(true);
    expect(host("h3")?.disabled).toBe(true);
    expect(host("h1")?.disabled).toBeUndefined();
  });

  it("marks a host whose metrics are not live unreachable and leaves its VMs out", () => {
    expect(host("h4")?.reachable).toBe(false);
    expect(vm("on-dead-host")).toBeUndefined();
  });

  it("leaves out templates, snapshots and control domains", () => {
    expect(s.vms.map((v) => v.name).sort()).toEqual(["halted-affinity", "halted-local", "local", "shared"]);
  });

  it("maps a VM on shared storage with its tags; CD drives are not disks", () => {
    expect(vm("shared")).toEqual({
      id: "uuid-shared",
      name: "shared",
      host: "h1",
      state: "running",
      vcpus: 2,
      memoryMiB: 4096,
      cpuLoad: 1.5,
      storage: { kind: "shared", id: "sr-nfs" },
      volumes: 0,
      tags: ["web", "prod"],
    });
  });

  it("local ext disks make a VM local (diskMiB = their sizes); an osvol VBD is a volume; load clamped to vCPUs", () => {
    expect(vm("local")).toMatchObject({ storage: { kind: "local" }, volumes: 1, diskMiB: 5120, cpuLoad: 2 });
  });

  it("places halted VMs by affinity, else on the host of their local SR; they use no CPU", () => {
    expect(vm("halted-affinity")).toMatchObject({ host: "h2", state: "shutoff", cpuLoad: 0 });
    expect(vm("halted-local")).toMatchObject({ host: "h1", state: "shutoff", storage: { kind: "local" }, diskMiB: 2048 });
  });

  it("an unreachable pool reports its known hosts unreachable and no VMs", () => {
    const u = mapPool(records(), { pool: "xs", hostCells: {}, reachable: false, load: load({}, {}) });
    expect(u.hosts.every((h) => !h.reachable && h.cell === "xs")).toBe(true);
    expect(u.vms).toEqual([]);
  });

  it("classifies disks: osvol VBD → volume whatever the SR; shared SR → shared; otherwise local", () => {
    const sr = (shared: boolean) => ({ uuid: "u", name_label: "n", type: "nfs", shared });
    expect(diskClass(sr(true), { osvol: "True" })).toBe("volume");
    expect(diskClass(sr(false), { osvol: "true" })).toBe("volume");
    expect(diskClass(sr(true), {})).toBe("shared");
    expect(diskClass(sr(false))).toBe("local");
  });
});

describe("rrd_updates parsing and smoothing", () => {
  const legend = [
    "AVERAGE:host:H:cpu_avg",
    "AVERAGE:host:H:cpu0",
    "AVERAGE:host:H:memory_free_kib",
    "AVERAGE:host:G:cpu0",
    "AVERAGE:host:G:cpu1",
    "AVERAGE:vm:V:cpu0",
    "AVERAGE:vm:V:cpu1",
    "AVERAGE:vm:V:memory",
  ];

  it("reads current XAPI JSON (values as strings, newest row first): cpu_avg, else the mean of cpuN; VM = sum of cpuN", () => {
    const text = JSON.stringify({
      meta: { start: 100, step: 5, end: 110, rows: 2, columns: legend.length, legend },
      data: [
        { t: 110, values: ["0.5", "0.9", "1000.0", "0.2", "0.4", "0.75", "0.5", "4096.0"] },
        { t: 105, values: ["0.25", "0.9", "1000.0", "0.0", "0.2", "0.5", "NaN", "4096.0"] },
      ],
    });
    const u = parseRrdUpdates(text);
    expect(u.end).toBe(110);
    expect(u.rows.map((r) => r.t)).toEqual([105, 110]);
    expect(Object.fromEntries(u.rows[1]!.hosts)).toEqual({ H: 0.5, G: expect.closeTo(0.3, 9) as number });
    expect(u.rows[1]!.vms.get("V")).toBe(1.25);
    // A NaN cell (no data) is skipped, not summed as zero or NaN.
    expect(u.rows[0]!.vms.get("V")).toBe(0.5);
  });

  it("reads older XAPI's JavaScript output (bare keys, NaN literals)", () => {
    const text = `{meta: {start: 100, step: 5, end: 105, rows: 1, columns: 2, legend: ["AVERAGE:host:H:cpu_avg", "AVERAGE:vm:V:cpu0"]}, data: [{t: 105, values: [0.125, NaN]}]}`;
    const u = parseRrdUpdates(text);
    expect(u.rows[0]?.hosts.get("H")).toBe(0.125);
    expect(u.rows[0]?.vms.has("V")).toBe(false);
  });

  it("rejects text that is not an rrd_updates document", () => {
    expect(() => parseRrdUpdates("<html>")).toThrow(RrdParseError);
    expect(() => parseRrdUpdates('{"meta":{}}')).toThrow(/legend/);
  });

  it("smooths with an EMA weighted by the time between rows (τ = 60 s); the first value is taken as is; rows seen twice count once", () => {
    const row = (t: number, v: number) => ({ t, hosts: new Map([["H", v]]), vms: new Map([["V", v * 4]]) });
    const sm = new SmoothedLoad();
    sm.add({ end: 0, rows: [row(0, 0)] });
    expect(sm.host("H")).toBe(0);
    sm.add({ end: 60, rows: [row(60, 1)] });
    const w = 1 - Math.exp(-1);
    expect(sm.host("H")).toBeCloseTo(w, 12);
    expect(sm.vm("V")).toBeCloseTo(4 * w, 12);
    sm.add({ end: 60, rows: [row(60, 1)] });
    expect(sm.host("H")).toBeCloseTo(w, 12);
    expect(sm.host("unknown")).toBeUndefined();
  });
});

describe("malformed XAPI records (hostile or broken pool)", () => {
  type Mutable = { -readonly [K in keyof PoolRecords]: PoolRecords[K] };
  const set = (m: ReadonlyMap<string, object>, ref: string, patch: object): void => {
    (m as Map<string, object>).set(ref, { ...(m.get(ref) ?? {}), ...patch });
  };
  const cases: [string, (r: Mutable) => void][] = [
    ["a VBD pointing at a VDI that does not exist", (r) => (r.VDI as Map<string, object>).delete("OpaqueRef:vdi-s")],
    ["a VDI on an SR that does not exist", (r) => set(r.VDI, "OpaqueRef:vdi-l1", { SR: "OpaqueRef:gone" })],
    ["a VM whose VBD list names missing VBDs", (r) => set(r.VM, "OpaqueRef:shared", { VBDs: ["OpaqueRef:nope", 42, null] })],
    ["a host without metrics", (r) => (r.host_metrics as Map<string, object>).delete("OpaqueRef:m1")],
    ["memory as garbage text", (r) => set(r.host_metrics, "OpaqueRef:m1", { memory_total: "lots", memory_free: "-5" })],
    ["memory beyond 2^53", (r) => set(r.VM, "OpaqueRef:shared", { memory_static_max: "1e999" })],
    ["negative vCPUs", (r) => set(r.VM, "OpaqueRef:local", { VCPUs_max: "-4", VCPUs_at_startup: "NaN" })],
    ["a VM resident on a host that does not exist", (r) => set(r.VM, "OpaqueRef:shared", { resident_on: "OpaqueRef:h99" })],
    ["an unknown power state", (r) => set(r.VM, "OpaqueRef:shared", { power_state: "Exploded" })],
    ["tags that are not a list", (r) => set(r.VM, "OpaqueRef:local", { tags: "web;rm -rf /" })],
    ["names with shell syntax, newlines and 4 KiB", (r) => set(r.VM, "OpaqueRef:shared", { name_label: `$(reboot)\n\`id\`;'"${"x".repeat(4096)}` })],
    ["no default SR and no master", (r) => (r.pool = { name_label: "xs" } as PoolRecords["pool"])],
    ["a host with no CPUs listed", (r) => set(r.host, "OpaqueRef:h1", { host_CPUs: undefined })],
  ];
  it.each(cases)("%s: a valid snapshot, or a clear error — never NaN, a crash or a stack of TypeErrors", (_name, mutate) => {
    const r = records() as Mutable;
    mutate(r);
    let snap: ReturnType<typeof mapPool> | undefined;
    try {
      snap = mapPool(r, { pool: "xs", hostCells: {}, reachable: true, load: load({}, {}) });
    } catch (e) {
      expect(e).toBeInstanceOf(Error);
      expect(e).not.toBeInstanceOf(TypeError);
      expect((e as Error).message).toMatch(/xs|OpaqueRef|record/);
      return;
    }
    // The model's own strict validator accepts exactly what the planner may see.
    expect(() => validateSnapshot({ takenAt: new Date(0).toISOString(), hosts: snap.hosts, vms: snap.vms }, "xapi")).not.toThrow();
  });
});
