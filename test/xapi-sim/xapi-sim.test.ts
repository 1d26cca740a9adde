/**
 * The simulator against the real, unmodified xen-api client over HTTP, on both transports: if these pass, a
 * driver built on xen-api sees what it would see from XAPI (wire types, events, tasks, errors).
 */
import { afterEach, describe, expect, it } from "vitest";
import { createClient, type Xapi, type XapiObject } from "xen-api";
import { ManualClock } from "../../src/util/clock.js";
import { startXapiSim, type PoolSpec, type Transport, type XapiSim, type XapiSimSpec } from "./index.js";

/** callAsync is missing from the driver's declaration of xen-api (it does not use it); tests do. */
type AsyncCaller = { callAsync(method: string, ...args: unknown[]): Promise<unknown> };
const callAsync = (x: Xapi, method: string, ...args: unknown[]): Promise<unknown> =>
  (x as unknown as AsyncCaller).callAsync(method, ...args);

const poolA: PoolSpec = {
  name: "pool-a",
  hosts: [
    { name: "a1", cpus: 8, memoryMiB: 16384 },
    { name: "a2", cpus: 8, memoryMiB: 16384 },
  ],
  srs: [
    { name: "nfs-a", type: "nfs", shared: true, default: true },
    { name: "local-a1", type: "ext", shared: false, host: "a1" },
    { name: "iscsi-vol", type: "iscsi", shared: true },
  ],
  networks: ["net0", "storage"],
  vms: [
    { name: "web-1", host: "a1", powerState: "Running", memoryMiB: 1024, vcpus: 2, cpuLoad: 0.5, disks: [{ sr: "nfs-a", sizeMiB: 1024 }] },
    { name: "db-1", host: "a1", powerState: "Running", memoryMiB: 2048, vcpus: 4, cpuLoad: 0.25, disks: [{ sr: "local-a1", sizeMiB: 256 }] },
    {
      name: "vol-1",
      host: "a1",
      powerState: "Running",
      memoryMiB: 512,
      vcpus: 1,
      disks: [
        { sr: "local-a1", sizeMiB: 128 },
        { sr: "iscsi-vol", sizeMiB: 512, volume: true },
      ],
    },
    { name: "off-1", host: "a2", powerState: "Halted", memoryMiB: 512, vcpus: 1, disks: [{ sr: "nfs-a", sizeMiB: 64 }] },
  ],
};

const poolB: PoolSpec = {
  name: "pool-b",
  hosts: [{ name: "b1", cpus: 4, memoryMiB: 8192 }],
  srs: [
    { name: "local-b1", type: "ext", shared: false, host: "b1" },
    { name: "nfs-b", type: "nfs", shared: true, default: true },
  ],
  networks: ["net0"],
  vms: [],
};

const open: { sims: XapiSim[]; clients: Xapi[] } = { sims: [], clients: [] };

afterEach(async () => {
  await Promise.all(open.clients.splice(0).map((c) => c.disconnect()));
  await Promise.all(open.sims.splice(0).map((s) => s.close()));
});

async function sim(spec: Partial<XapiSimSpec> = {}): Promise<XapiSim> {
  const s = await startXapiSim({ pools: [poolA, poolB], ...spec });
  open.sims.push(s);
  return s;
}

function client(s: XapiSim, transport: Transport | "auto", url = s.url(), password = s.password): Xapi {
  const x = createClient({
    url,
    auth: { user: s.user, password },
    allowUnauthorized: false,
    transport,
    debounce: 20,
    eventPollDelay: 100,
    watchEvents: true,
  });
  open.clients.push(x);
  return x;
}

async function connected(s: XapiSim, transport: Transport | "auto", url?: string): Promise<Xapi> {
  const x = client(s, transport, url);
  await x.connect();
  await x.objectsFetched;
  return x;
}

const objectsOf = (x: Xapi, type: string): XapiObject[] => Object.values(x.objects.all).filter((o) => o.$type === type);

function byName(x: Xapi, type: string, name: string): XapiObject {
  const o = objectsOf(x, type).find((r) => r.name_label === name);
  if (o === undefined) throw new Error(`no ${type} ${name} in the client cache`);
  return o;
}

/** Resolves when the client's cache satisfies pred (the event loop delivers asynchronously). */
async function until<T>(what: string, probe: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function rejection(p: Promise<unknown>): Promise<{ code?: unknown; params?: unknown; message?: unknown }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: unknown; params?: unknown };
  }
  throw new Error("expected a rejection");
}

describe.each(["json-rpc", "xml-rpc"] as const)("xen-api client over %s", (transport) => {
  it("logs in, fills the object cache and uses only this transport", async () => {
    const s = await sim();
    const x = await connected(s, transport);

    const guests = objectsOf(x, "VM").filter((v) => v.is_control_domain !== true && v.is_a_template !== true);
    expect(guests.map((v) => v.name_label).sort()).toEqual(["db-1", "off-1", "vol-1", "web-1"]);
    expect(objectsOf(x, "VM").filter((v) => v.is_control_domain === true)).toHaveLength(2);
    expect(objectsOf(x, "host").map((h) => h.name_label).sort()).toEqual(["a1", "a2"]);
    expect(x.pool?.name_label).toBe("pool-a");
    const web = byName(x, "VM", "web-1");
    expect(x.getObjectByRef(web.resident_on as string).name_label).toBe("a1");
    expect(web.power_state).toBe("Running");
    // int64 is a JSON number over JSON-RPC and a decimal string over XML-RPC, as in XAPI.
    expect(web.memory_static_max).toBe(transport === "json-rpc" ? 1073741824 : "1073741824");
    const metrics = x.getObjectByRef(byName(x, "host", "a1").metrics as string);
    expect(Number(metrics.memory_total)).toBe(16384 * 1048576);
    expect(Number(metrics.memory_free)).toBe((16384 - 1024 - 1024 - 2048 - 512) * 1048576);
    expect(x.getObjectByRef(x.pool?.default_SR as string).name_label).toBe("nfs-a");
    // datetime: a string over JSON-RPC, an XML-RPC dateTime (a Date in the client) over XML-RPC.
    expect(metrics.last_updated instanceof Date).toBe(transport === "xml-rpc");
    expect(new Set(s.calls.map((c) => c.transport))).toEqual(new Set([transport]));
  });

  it("refuses a wrong password with SESSION_AUTHENTICATION_FAILED", async () => {
    const s = await sim();
    const err = await rejection(client(s, transport, s.url(), "not-it").connect());
    expect(err.code).toBe("SESSION_AUTHENTICATION_FAILED");
    s.faults.wrongPassword = true;
    expect((await rejection(client(s, transport).connect())).code).toBe("SESSION_AUTHENTICATION_FAILED");
    expect(JSON.stringify(s.calls)).not.toContain(s.password);
  });

  it("event.inject gives a token after which event.from returns that object as 'mod', with valid_ref_counts", async () => {
    const s = await sim();
    const x = await connected(s, transport);
    const web = byName(x, "VM", "web-1").$ref;
    const token = (await x.call("event.inject", "VM", web)) as string;
    const batch = (await x.call("event.from", ["vm"], token, 5.1)) as {
      events: { class: string; operation: string; ref: string; snapshot: { name_label: string } }[];
      valid_ref_counts: Record<string, number>;
      token: string;
    };
    expect(batch.events.map((e) => [e.class, e.operation, e.ref, e.snapshot.name_label])).toEqual([["vm", "mod", web, "web-1"]]);
    expect(batch.valid_ref_counts).toEqual({ vm: 4 + 2 + 1 }); // guests, control domains, the template
    // Nothing new: a long-poll that ends at its timeout with no events.
    const started = Date.now();
    const empty = (await x.call("event.from", ["vm"], batch.token, 0.3)) as { events: unknown[] };
    expect(empty.events).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it("names with XML special characters survive both directions", async () => {
    const name = `q&a <"test"> 'vm' — ünï`;
    const s = await startXapiSim({
      pools: [{ name: "p", hosts: [{ name: "h", cpus: 1, memoryMiB: 4096 }], srs: [], vms: [{ name, host: "h", powerState: "Running", memoryMiB: 64, vcpus: 1 }] }],
    });
    open.sims.push(s);
    const x = await connected(s, transport);
    const [ref] = (await x.call("VM.get_by_name_label", name)) as string[];
    expect(ref).toBe(s.vm(name).ref);
    expect(byName(x, "VM", name).$ref).toBe(ref);
  });

  it("delivers a changed record through event.from", async () => {
    const s = await sim();
    const x = await connected(s, transport);
    s.setHostEnabled("a2", false);
    await until("a2 disabled in the cache", () => (byName(x, "host", "a2").enabled === false ? true : undefined));
    expect(s.calls.some((c) => c.method === "event.from")).toBe(true);
  });
});

describe.each(["json-rpc", "xml-rpc"] as const)("tasks and migrations over %s", (transport) => {
  const refOf = (x: Xapi, type: string, name: string): string => byName(x, type, name).$ref;

  it("pool_migrate: progress follows simulated time, then resident_on and memory move", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const s = await sim({ clock, migrationSpeedMiBps: 1024 });
    const x = await connected(s, transport);
    expect(s.host("a2").memoryFreeMiB).toBe(16384 - 1024); // dom0 only
    const task = (await x.call("Async.VM.pool_migrate", refOf(x, "VM", "web-1"), refOf(x, "host", "a2"), { live: "true" })) as string;
    const done = x.watchTask(task);
    expect(s.host("a2").memoryFreeMiB).toBe(16384 - 1024 - 1024); // reserved at the start, as XAPI does

    await clock.advance(500); // half of 1 GiB at 1 GiB/s
    await until("progress 0.5", () => (x.getObjectByRef(task, undefined)?.progress === 0.5 ? true : undefined));
    expect(s.vm("web-1").host).toBe("a1");
    await clock.advance(500);
    expect(await done).toBe(""); // void result: empty task.result
    expect(s.vm("web-1").host).toBe("a2");
    expect(s.host("a1").residentVms).not.toContain("web-1");
    expect(s.host("a2").memoryFreeMiB).toBe(16384 - 1024 - 1024);
    await until("resident_on a2 in the cache", () =>
      x.getObjectByRef(byName(x, "VM", "web-1").resident_on as string).name_label === "a2" ? true : undefined,
    );
    expect(s.callCount("VM.pool_migrate", "web-1")).toBe(1);
  });

  it("callAsync returns the result of a task as a value parsed from task.result", async () => {
    const s = await sim();
    const x = await connected(s, transport);
    const xb = await connected(s, transport, s.url("pool-b"));
    const dest = await xb.call("host.migrate_receive", refOf(xb, "host", "b1"), refOf(xb, "network", "net0"), {});
    const vm = byName(x, "VM", "db-1");
    const vdis = (vm.VBDs as string[]).map((vbd) => x.getObjectByRef(vbd).VDI as string);
    const vdiMap = Object.fromEntries(vdis.map((v) => [v, xb.pool?.default_SR as string]));
    const vifMap = Object.fromEntries((vm.VIFs as string[]).map((v) => [v, refOf(xb, "network", "net0")]));

    expect(await x.call("VM.assert_can_migrate", vm.$ref, dest, true, vdiMap, vifMap, {}, {})).toBe("");
    const task = (await x.call("Async.VM.migrate_send", vm.$ref, dest, true, vdiMap, vifMap, {}, {})) as string;
    const newRef = await x.watchTask(task);
    // task.result is XML-RPC value text on both transports; watchTask parsed it into the new VM's ref.
    expect(await x.call("task.get_result", task)).toBe(`<value>${String(newRef)}</value>`);

    const moved = s.vm("db-1");
    expect(moved).toMatchObject({ pool: "pool-b", host: "b1", powerState: "Running", uuid: vm.uuid, ref: newRef });
    expect(moved.vdis.map((d) => d.sr)).toEqual(["nfs-b"]);
    expect(s.host("a1").residentVms).not.toContain("db-1");
    await until("db-1 gone from pool-a's cache", () => (objectsOf(x, "VM").some((v) => v.name_label === "db-1") ? undefined : true));
    await until("db-1 in pool-b's cache", () => (objectsOf(xb, "VM").some((v) => v.name_label === "db-1") ? true : undefined));
    expect(s.callCount("VM.migrate_send")).toBe(1);
  });

  it("migrate_send refuses an unmapped VDI and a destination SR the host cannot see", async () => {
    const s = await sim();
    const x = await connected(s, transport);
    const xb = await connected(s, transport, s.url("pool-b"));
    const dest = await xb.call("host.migrate_receive", refOf(xb, "host", "b1"), refOf(xb, "network", "net0"), {});
    const vm = byName(x, "VM", "vol-1");
    const vifMap = Object.fromEntries((vm.VIFs as string[]).map((v) => [v, refOf(xb, "network", "net0")]));
    const vdis = (vm.VBDs as string[]).map((vbd) => x.getObjectByRef(vbd).VDI as string);

    const unmapped = await rejection(x.call("VM.assert_can_migrate", vm.$ref, dest, true, {}, vifMap, {}, {}));
    expect(unmapped.code).toBe("VDI_NOT_IN_MAP");
    // local-b1 belongs to b1, so this one is fine; pool-a's SR is not in pool-b at all.
    const wrong = Object.fromEntries(vdis.map((v) => [v, refOf(x, "SR", "nfs-a")]));
    expect((await rejection(x.call("VM.assert_can_migrate", vm.$ref, dest, true, wrong, vifMap, {}, {}))).code).toBe("HANDLE_INVALID");
    expect(s.vm("vol-1").vdis.map((d) => [d.sr, d.volume])).toEqual([
      ["local-a1", false],
      ["iscsi-vol", true],
    ]);
    const osvol = (vm.VBDs as string[]).map((vbd) => (x.getObjectByRef(vbd).other_config as Record<string, string>).osvol);
    expect(osvol).toEqual([undefined, "True"]);
  });

  it("a hung task is ended by task.cancel: cancelled, TASK_CANCELLED, VM and memory where they were", async () => {
    const s = await sim({ migrationSpeedMiBps: 4096 });
    const x = await connected(s, transport);
    s.faults.hangNextTask();
    const freeBefore = s.host("a2").memoryFreeMiB;
    const task = (await x.call("Async.VM.pool_migrate", refOf(x, "VM", "web-1"), refOf(x, "host", "a2"), {})) as string;
    const watched = rejection(x.watchTask(task));
    await until("progress stuck at 0.4", () => (x.getObjectByRef(task, undefined)?.progress === 0.4 ? true : undefined));
    await x.call("task.cancel", task);

    const err = await watched;
    expect(err.message).toBe("task canceled"); // the client's Cancel, not an XapiError
    const record = await x.call("task.get_record", task);
    expect(record).toMatchObject({ status: "cancelled", error_info: ["TASK_CANCELLED", task] });
    expect(s.vm("web-1").host).toBe("a1");
    expect(s.host("a2").memoryFreeMiB).toBe(freeBefore);
  });

  it("a task that fails half-way carries the injected code; the VM stays", async () => {
    const s = await sim({ migrationSpeedMiBps: 8192 });
    const x = await connected(s, transport);
    s.faults.failNextTask("VM_MIGRATE_FAILED", ["web-1", "a1", "a2", "simulated"]);
    const err = await rejection(callAsync(x, "VM.pool_migrate", refOf(x, "VM", "web-1"), refOf(x, "host", "a2"), {}));
    expect(err).toMatchObject({ code: "VM_MIGRATE_FAILED", params: ["web-1", "a1", "a2", "simulated"] });
    expect(s.vm("web-1").host).toBe("a1");
  });

  it("XAPI's own checks: power state, SR reachability, free memory, disabled host", async () => {
    const s = await startXapiSim({
      pools: [
        {
          name: "small",
          hosts: [
            { name: "s1", cpus: 4, memoryMiB: 4096 },
            { name: "s2", cpus: 4, memoryMiB: 4096 },
          ],
          srs: [
            { name: "nfs", type: "nfs", shared: true, default: true },
            { name: "local-s1", type: "ext", shared: false, host: "s1" },
          ],
          vms: [
            { name: "big", host: "s1", powerState: "Running", memoryMiB: 3000, vcpus: 2, disks: [{ sr: "nfs", sizeMiB: 10 }] },
            { name: "pinned", host: "s1", powerState: "Running", memoryMiB: 64, vcpus: 1, disks: [{ sr: "local-s1", sizeMiB: 10 }] },
            { name: "filler", host: "s2", powerState: "Running", memoryMiB: 512, vcpus: 1, disks: [{ sr: "nfs", sizeMiB: 10 }] },
            { name: "off", host: null, powerState: "Halted", memoryMiB: 256, vcpus: 1, disks: [{ sr: "nfs", sizeMiB: 10 }] },
          ],
        },
      ],
    });
    open.sims.push(s);
    const x = await connected(s, transport);
    const [s1, s2] = [refOf(x, "host", "s1"), refOf(x, "host", "s2")];

    const memory = await rejection(x.call("VM.pool_migrate", refOf(x, "VM", "big"), s2, {}));
    expect(memory).toMatchObject({ code: "HOST_NOT_ENOUGH_FREE_MEMORY", params: [String(3000 * 1048576), String(2560 * 1048576)] });
    const sr = await rejection(x.call("VM.pool_migrate", refOf(x, "VM", "pinned"), s2, {}));
    expect(sr).toMatchObject({ code: "VM_REQUIRES_SR", params: [refOf(x, "VM", "pinned"), refOf(x, "SR", "local-s1")] });
    const halted = await rejection(x.call("VM.pool_migrate", refOf(x, "VM", "off"), s1, {}));
    expect(halted).toMatchObject({ code: "VM_BAD_POWER_STATE", params: [refOf(x, "VM", "off"), "running", "halted"] });

    await x.call("host.disable", s2);
    expect(s.host("s2").enabled).toBe(false);
    expect((await rejection(x.call("VM.start_on", refOf(x, "VM", "off"), s2, false, false))).code).toBe("HOST_DISABLED");
    await x.call("host.enable", s2);
    expect(s.host("s2").enabled).toBe(true);
    expect(s.callCount("host.disable", "s2")).toBe(1);
  });

  it("cold move of a halted VM: set_affinity, start_on, clean_shutdown", async () => {
    const s = await sim();
    const x = await connected(s, transport);
    const off = refOf(x, "VM", "off-1");
    expect(s.vm("off-1")).toMatchObject({ powerState: "Halted", host: null, affinity: "a2" });
    await x.call("VM.set_affinity", off, refOf(x, "host", "a1"));
    expect(s.vm("off-1").affinity).toBe("a1");
    await callAsync(x, "VM.start_on", off, refOf(x, "host", "a1"), false, false);
    expect(s.vm("off-1")).toMatchObject({ powerState: "Running", host: "a1" });
    await callAsync(x, "VM.clean_shutdown", off);
    expect(s.vm("off-1")).toMatchObject({ powerState: "Halted", host: null, affinity: "a1" });
    await x.call("VM.set_affinity", off, refOf(x, "host", "a2"));
    await x.call("VM.start", off, false, false); // XAPI places it on its affinity host when it can
    expect(s.vm("off-1")).toMatchObject({ powerState: "Running", host: "a2" });
  });
});

describe.each(["json-rpc", "xml-rpc"] as const)("faults and errors over %s", (transport) => {
  it("failNext makes the named call fail with the given code, once", async () => {
    const s = await sim();
    const x = await connected(s, transport);
    const web = byName(x, "VM", "web-1").$ref;
    const a2 = byName(x, "host", "a2").$ref;
    s.faults.failNext("VM.pool_migrate", "HOST_NOT_ENOUGH_FREE_MEMORY", ["1073741824", "0"]);
    const async = await rejection(callAsync(x, "VM.pool_migrate", web, a2, {}));
    expect(async).toMatchObject({ code: "HOST_NOT_ENOUGH_FREE_MEMORY", params: ["1073741824", "0"] });
    s.faults.failNext("VM.assert_can_migrate", "VM_REQUIRES_SR", [web, "OpaqueRef:sr"]);
    const sync = await rejection(x.call("VM.assert_can_migrate", web, {}, true, {}, {}, {}, {}));
    expect(sync).toMatchObject({ code: "VM_REQUIRES_SR" });
    expect(s.vm("web-1").host).toBe("a1");
  });

  it("invalidated sessions answer SESSION_INVALID; the client logs in again by itself", async () => {
    const s = await sim();
    const x = await connected(s, transport);
    const logins = s.callCount("session.login_with_password");
    s.faults.invalidateSessions();
    expect(await x.call("VM.get_power_state", byName(x, "VM", "web-1").$ref)).toBe("Running");
    expect(s.calls.some((c) => c.error === "SESSION_INVALID")).toBe(true);
    expect(s.callCount("session.login_with_password")).toBeGreaterThan(logins);
  });

  it("a connection dropped mid-call is a client error, the VM does not move and the client goes on", async () => {
    const s = await sim();
    const x = await connected(s, transport);
    const web = byName(x, "VM", "web-1").$ref;
    s.faults.dropNextCall("VM.pool_migrate");
    const err = await rejection(x.call("VM.pool_migrate", web, byName(x, "host", "a2").$ref, {}));
    expect(err.code).not.toBeUndefined(); // undici's socket error code, not an XAPI one
    expect(String(err.code)).toMatch(/^UND_ERR|^ECONNRESET/);
    expect(s.vm("web-1").host).toBe("a1");
    expect(s.calls.filter((c) => c.dropped)).toMatchObject([{ method: "VM.pool_migrate", subject: "web-1" }]);
    expect(await x.call("VM.get_power_state", web)).toBe("Running");
  });

  it("unknown methods, bad handles and wrong parameter counts get XAPI's codes", async () => {
    const s = await sim();
    const x = await connected(s, transport);
    expect((await rejection(x.call("VM.frobnicate", "OpaqueRef:x"))).code).toBe("MESSAGE_METHOD_UNKNOWN");
    expect(await rejection(x.call("VM.get_record", "OpaqueRef:nope"))).toMatchObject({
      code: "HANDLE_INVALID",
      params: ["VM", "OpaqueRef:nope"],
    });
    expect((await rejection(x.call("host.disable"))).code).toBe("MESSAGE_PARAMETER_COUNT_MISMATCH");
    const web = byName(x, "VM", "web-1").$ref;
    expect(await rejection(x.call("VM.unpause", web))).toMatchObject({ code: "VM_BAD_POWER_STATE", params: [web, "paused", "running"] });
  });

  it("a login on a slave answers HOST_IS_SLAVE with the master's address, which the client follows", async () => {
    const s = await sim();
    const x = await connected(s, transport, s.hostUrl("a2"));
    expect(x.pool?.name_label).toBe("pool-a");
    const logins = s.calls.filter((c) => c.method === "session.login_with_password");
    expect(logins.map((c) => [c.host, c.error])).toEqual([
      ["a2", "HOST_IS_SLAVE"],
      ["a1", undefined],
    ]);
  });
});

describe("rrd_updates", () => {
  it("serves host and resident VM CPU from the load model, newest row first", async () => {
    const t0 = Date.UTC(2026, 0, 1);
    const clock = new ManualClock(t0);
    const s = await sim({ clock });
    const x = await connected(s, "json-rpc");
    await clock.advance(60_000);
    s.setVmCpu("web-1", 1);
    await clock.advance(10_000);

    const res = await x.getResource("/rrd_updates", {
      query: { start: String(t0 / 1000 + 30), json: "true", host: "true", cf: "AVERAGE", interval: "5" },
    });
    const rrd = JSON.parse(await res.body.text()) as {
      meta: { step: number; end: number; rows: number; legend: string[] };
      data: { t: number; values: string[] }[];
    };
    const a1 = s.host("a1").uuid;
    const web = s.vm("web-1").uuid;
    expect(rrd.meta.step).toBe(5);
    expect(rrd.meta.end).toBe(t0 / 1000 + 70);
    expect(rrd.data.map((r) => r.t)).toEqual([70, 65, 60, 55, 50, 45, 40, 35, 30].map((d) => t0 / 1000 + d));
    const col = (name: string): number[] => {
      const i = rrd.meta.legend.indexOf(name);
      expect(i).toBeGreaterThanOrEqual(0);
      return rrd.data.map((r) => Number(r.values[i]));
    };
    // web-1: 0.5 of each vCPU, then 1 from t0+60 s; a1 (8 CPUs): web 2×load + db-1 4×0.25.
    expect(col(`AVERAGE:vm:${web}:cpu1`).slice(0, 3)).toEqual([1, 1, 0.5]);
    expect(col(`AVERAGE:host:${a1}:cpu_avg`).slice(0, 3)).toEqual([(2 + 1) / 8, (2 + 1) / 8, (1 + 1) / 8]);
    // Only a1 and its residents: a2's halted VM and a2 itself are not in a1's RRD.
    expect(rrd.meta.legend.some((l) => l.includes(s.host("a2").uuid) || l.includes(s.vm("off-1").uuid))).toBe(false);
    expect(s.host("a1").cpuLoad).toBe((2 + 1) / 8);
    // getResource() opened a task for the request; the handler completed it and the client destroyed it.
    await until("the request's task destroyed", () => (s.callCount("task.destroy") === 1 ? true : undefined));

    const xml = await x.getResource("/rrd_updates", { query: { start: String(t0 / 1000 + 60), host: "true" }, task: false });
    const text = await xml.body.text();
    expect(text).toMatch(/^<\?xml[^>]*\?><xport><meta><start>/);
    expect(text).toContain(`<entry>AVERAGE:host:${a1}:cpu_avg</entry>`);
  });

  it("rows before the simulation are NaN; the legacy format is JavaScript, not JSON", async () => {
    const t0 = Date.UTC(2026, 0, 1);
    const clock = new ManualClock(t0);
    const s = await sim({ clock, rrdFormat: "legacy" });
    const x = await connected(s, "json-rpc");
    await clock.advance(10_000);
    const res = await x.getResource("/rrd_updates", {
      query: { start: String(t0 / 1000 - 10), json: "true", host: "true", interval: "5" },
      task: false,
    });
    const text = await res.body.text();
    expect(text.startsWith("{meta: {start:")).toBe(true);
    expect(() => JSON.parse(text) as unknown).toThrow();
    const fixed = text.replace(/([{,]\s*)([a-z]+):/g, '$1"$2":').replace(/\bNaN\b/g, "null");
    const rrd = JSON.parse(fixed) as { meta: { legend: string[] }; data: { t: number; values: (number | null)[] }[] };
    const i = rrd.meta.legend.indexOf(`AVERAGE:vm:${s.vm("web-1").uuid}:cpu0`);
    expect(rrd.data.map((r) => [r.t - t0 / 1000, r.values[i]])).toEqual([
      [10, 0.5],
      [5, 0.5],
      [0, null],
      [-5, null],
      [-10, null],
    ]);
  });
});
