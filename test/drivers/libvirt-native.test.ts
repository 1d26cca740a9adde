/**
 * The libvirt Node-API binding against libvirt's in-process test driver (test:///default and a custom test:///
 * node file): every exported call, libvirt's real error codes, events, and that calls never block Node's loop.
 * The binding must be built (`npm run build:native`; test:all does it).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DomainState,
  ErrorCode,
  ErrorDomain,
  LibvirtError,
  LifecycleEvent,
  libvirtVersion,
  open,
  type Connection,
  type LibvirtEvent,
} from "../../src/drivers/libvirt/native/index.js";

const TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f";
const COLD_UUID = "11111111-2222-3333-4444-555555555555";

// A test-driver node: one running and one shut-off guest (test:runstate 5 = VIR_DOMAIN_SHUTOFF).
const NODE_XML = `<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads><active>4</active></cpu>
  <memory>8388608</memory>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>cold</name><uuid>${COLD_UUID}</uuid><memory unit='MiB'>128</memory><vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os><test:runstate>5</test:runstate>
  </domain>
  <domain type='test'>
    <name>warm</name><memory unit='MiB'>256</memory><vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os>
  </domain>
</node>`;

/** The rejection of p, which must reject. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

async function expectLibvirtError(p: Promise<unknown>, code: number, domain: number, message?: RegExp): Promise<LibvirtError> {
  const e = await rejection(p);
  expect(e).toBeInstanceOf(LibvirtError);
  const err = e as LibvirtError;
  expect({ code: err.code, domain: err.domain }).toEqual({ code, domain });
  expect(err.level).toBe(2); // VIR_ERR_ERROR
  if (message) expect(err.message).toMatch(message);
  return err;
}

/** Resolves with the first event matching pred (events arrive from libvirt's event thread). */
function nextEvent(events: LibvirtEvent[], pred: (e: LibvirtEvent) => boolean, timeoutMs = 5000): Promise<LibvirtEvent> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const hit = events.find(pred);
      if (hit) resolve(hit);
      else if (Date.now() - started > timeoutMs) reject(new Error(`no matching event within ${timeoutMs} ms: ${JSON.stringify(events)}`));
      else setTimeout(check, 5);
    };
    check();
  });
}

describe("libvirt native binding (test:///default)", () => {
  let conn: Connection;
  const events: LibvirtEvent[] = [];

  beforeAll(async () => {
    conn = await open("test:///default", {}, (e) => events.push(e));
  });
  afterAll(() => conn.close());

  it("reports libvirt's version", () => {
    expect(libvirtVersion()).toBeGreaterThanOrEqual(9_000_000);
  });

  it("lists domains with state and persistence", async () => {
    const doms = await conn.listDomains();
    expect(doms).toContainEqual({ name: "test", uuid: TEST_UUID, id: 1, state: DomainState.RUNNING, reason: 0, persistent: true, active: true });
  });

  it("looks a domain up by name or UUID; a missing one is VIR_ERR_NO_DOMAIN (42)", async () => {
    const byName = await conn.lookupDomain("test");
    expect(await conn.lookupDomain(TEST_UUID)).toEqual(byName);
    await expectLibvirtError(conn.lookupDomain("no-such-guest"), ErrorCode.NO_DOMAIN, ErrorDomain.TEST, /Domain not found/);
    await expectLibvirtError(conn.lookupDomain("00000000-0000-0000-0000-000000000000"), ErrorCode.NO_DOMAIN, ErrorDomain.TEST);
  });

  it("reads domain info with the CPU time as BigInt", async () => {
    const info = await conn.getDomainInfo("test");
    expect(info).toMatchObject({ state: DomainState.RUNNING, maxMemKiB: 8388608, memoryKiB: 2097152, vcpus: 2 });
    expect(typeof info.cpuTimeNs).toBe("bigint");
    expect(info.cpuTimeNs).toBeGreaterThan(0n);
  });

  it("reads domain XML, live and inactive", async () => {
    const xml = await conn.getDomainXml("test");
    expect(xml).toContain("<name>test</name>");
    expect(xml).toContain(`<uuid>${TEST_UUID}</uuid>`);
    expect(xml).toContain("id='1'");
    expect(await conn.getDomainXml("test", { inactive: true, migratable: true })).not.toContain("id='1'");
    await expectLibvirtError(conn.getDomainXml("missing"), ErrorCode.NO_DOMAIN, ErrorDomain.TEST);
  });

  it("reads block info as BigInt; an unknown disk is VIR_ERR_INVALID_ARG (8)", async () => {
    const bi = await conn.getBlockInfo("test", "vda");
    expect(typeof bi.capacity).toBe("bigint");
    expect(bi.capacity).toBeGreaterThan(0n);
    expect(bi.physical).toBeGreaterThanOrEqual(0n);
    await expectLibvirtError(conn.getBlockInfo("test", "vdz"), ErrorCode.INVALID_ARG, ErrorDomain.TEST, /vdz/);
  });

  it("reads all-domain stats for the requested groups and filters", async () => {
    const all = await conn.getAllDomainStats(["state", "cpu-total", "balloon", "vcpu", "block", "dirtyrate"]);
    const rec = all.find((r) => r.domain.uuid === TEST_UUID);
    expect(rec?.domain.name).toBe("test");
    expect(rec?.params["state.state"]).toBe(DomainState.RUNNING);
    expect(await conn.getAllDomainStats(["state"], { filters: ["shutoff"] })).toEqual([]);
    expect(await rejection(conn.getAllDomainStats(["state", "bogus" as "state"]))).toBeInstanceOf(TypeError);
  });

  it("reads node info and CPU stats; memory stats are VIR_ERR_NO_SUPPORT (3) on the test driver", async () => {
    expect(await conn.getNodeInfo()).toEqual({ model: "i686", memoryKiB: 3145728, cpus: 16, mhz: 1400, nodes: 2, sockets: 2, cores: 2, threads: 2 });
    const cpu = await conn.getNodeCpuStats();
    for (const k of ["kernel", "user", "idle", "iowait"]) expect(typeof cpu[k]).toBe("bigint");
    await expectLibvirtError(conn.getNodeMemoryStats(), ErrorCode.NO_SUPPORT, ErrorDomain.DOMAIN, /virNodeGetMemoryStats/);
  });

  it("migrateToURI3 reaches libvirt with its flags and parameters and returns its refusal", async () => {
    // The test driver has no migration: peer-to-peer and direct are each refused with VIR_ERR_ARGUMENT_UNSUPPORTED.
    await expectLibvirtError(
      conn.migrate("test", "qemu+tcp://127.0.0.9/system", {
        flags: ["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE", "AUTO_CONVERGE", "POSTCOPY"],
        bandwidthMiBps: 50,
        migrateUri: "tcp://127.0.0.9",
        destName: "test",
        autoConvergeInitial: 20,
        autoConvergeIncrement: 10,
      }),
      ErrorCode.ARGUMENT_UNSUPPORTED,
      ErrorDomain.DOMAIN,
      /p2p migration is not supported/,
    );
    await expectLibvirtError(
      conn.migrate("test", "test:///default", { flags: ["LIVE", "NON_SHARED_DISK"], migrateDisks: ["vda"] }),
      ErrorCode.ARGUMENT_UNSUPPORTED,
      ErrorDomain.DOMAIN,
      /direct migration is not supported/,
    );
    await expectLibvirtError(conn.migrate("gone", "test:///default", { flags: ["OFFLINE"] }), ErrorCode.NO_DOMAIN, ErrorDomain.TEST);
    expect(await rejection(conn.migrate("test", "test:///default", { flags: ["FAST" as "LIVE"] }))).toBeInstanceOf(TypeError);
  });

  it.each([
    ["virDomainMigrateSetMaxDowntime", (c: Connection, d: string) => c.migrateSetMaxDowntime(d, 300)],
    ["virDomainMigrateSetMaxSpeed", (c: Connection, d: string) => c.migrateSetMaxSpeed(d, 100)],
    ["virDomainMigrateStartPostCopy", (c: Connection, d: string) => c.migrateStartPostCopy(d)],
    ["virDomainGetJobStats", (c: Connection, d: string) => c.getJobStats(d)],
    ["virDomainGetJobStats", (c: Connection, d: string) => c.getJobStats(d, { completed: true, keepCompleted: true })],
    ["virDomainAbortJob", (c: Connection, d: string) => c.abortJob(d)],
    ["virDomainStartDirtyRateCalc", (c: Connection, d: string) => c.startDirtyRateCalc(d, 1)],
  ] as const)("%s reaches the driver (NO_SUPPORT on test:///) after looking the domain up (NO_DOMAIN)", async (api, fn) => {
    await expectLibvirtError(fn(conn, "test"), ErrorCode.NO_SUPPORT, ErrorDomain.DOMAIN, new RegExp(api));
    await expectLibvirtError(fn(conn, "missing"), ErrorCode.NO_DOMAIN, ErrorDomain.TEST);
  });

  it("rejects bad arguments with a TypeError, asynchronously", async () => {
    const bad = conn.migrateSetMaxDowntime("test", -1);
    expect(bad).toBeInstanceOf(Promise);
    expect(await rejection(bad)).toBeInstanceOf(TypeError);
    expect(await rejection(conn.startDirtyRateCalc("test", Number.NaN))).toBeInstanceOf(TypeError);
    expect(await rejection(conn.lookupDomain(42 as unknown as string))).toBeInstanceOf(TypeError);
  });

  it("suspend and resume deliver lifecycle events from libvirt's event thread", async () => {
    await conn.suspend("test");
    expect((await conn.lookupDomain("test")).state).toBe(DomainState.PAUSED);
    const suspended = await nextEvent(events, (e) => e.type === "lifecycle" && e.event === LifecycleEvent.SUSPENDED);
    expect(suspended).toEqual({ type: "lifecycle", domain: { name: "test", uuid: TEST_UUID }, event: LifecycleEvent.SUSPENDED, detail: 0 });
    await conn.resume("test");
    await nextEvent(events, (e) => e.type === "lifecycle" && e.event === LifecycleEvent.RESUMED);
    expect((await conn.lookupDomain("test")).state).toBe(DomainState.RUNNING);
    // The test driver refuses to resume a running guest with an internal error (QEMU says OPERATION_INVALID).
    await expectLibvirtError(conn.resume("test"), ErrorCode.INTERNAL_ERROR, ErrorDomain.TEST, /not paused/);
  });

  it("isAlive is true while open", async () => {
    expect(await conn.isAlive()).toBe(true);
  });
});

describe("libvirt native binding (custom test:/// node)", () => {
  let dir: string;
  let uri: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "ballast-lvtest-"));
    writeFileSync(join(dir, "node.xml"), NODE_XML);
    uri = `test://${join(dir, "node.xml")}`;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("create starts a shut-off guest and reports STARTED; starting it again is refused", async () => {
    const events: LibvirtEvent[] = [];
    const c = await open(uri, { keepaliveIntervalSec: 0 }, (e) => events.push(e));
    try {
      expect(await c.getNodeInfo()).toMatchObject({ cpus: 4, memoryKiB: 8388608 });
      expect(await c.lookupDomain(COLD_UUID)).toMatchObject({ name: "cold", id: -1, state: DomainState.SHUTOFF, persistent: true, active: false });
      expect(await c.getAllDomainStats(["state"], { filters: ["shutoff"] })).toEqual([
        { domain: { name: "cold", uuid: COLD_UUID }, params: { "state.state": DomainState.SHUTOFF, "state.reason": 0 } },
      ]);
      await c.create("cold");
      const started = await nextEvent(events, (e) => e.type === "lifecycle" && e.event === LifecycleEvent.STARTED);
      expect(started).toMatchObject({ domain: { name: "cold", uuid: COLD_UUID } });
      expect(await c.lookupDomain("cold")).toMatchObject({ state: DomainState.RUNNING, active: true });
      await expectLibvirtError(c.create("cold"), ErrorCode.INTERNAL_ERROR, ErrorDomain.TEST, /already running/);
    } finally {
      await c.close();
    }
  });
});

describe("libvirt native binding: connections", () => {
  it("close is idempotent; calls after it reject with VIR_ERR_INVALID_CONN (6)", async () => {
    const c = await open("test:///default");
    await c.close();
    await c.close();
    expect(await c.isAlive()).toBe(false);
    await expectLibvirtError(c.listDomains(), ErrorCode.INVALID_CONN, ErrorDomain.NONE, /closed/);
  });

  it("bad URIs fail with libvirt's code and domain", async () => {
    // Nothing listens on port 1: the RPC layer's system error.
    await expectLibvirtError(open("qemu+tcp://127.0.0.1:1/system"), ErrorCode.SYSTEM_ERROR, ErrorDomain.RPC, /Connection refused/);
    await expectLibvirtError(open("test:///nonexistent/node.xml"), 27 /* VIR_ERR_XML_ERROR */, ErrorDomain.TEST, /nonexistent/);
    expect(await rejection(open(undefined as unknown as string))).toBeInstanceOf(TypeError);
  });

  describe("never blocks Node's event loop; migrate runs outside the libuv pool", () => {
    let server: Server;
    let port: number;
    const sockets: Socket[] = [];

    beforeAll(async () => {
      // A "libvirtd" that accepts and never answers: a connection attempt to it hangs in virConnectOpen.
      server = createServer((s) => sockets.push(s));
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      port = (server.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    });

    it("timers fire while every pool thread is stuck in a call, and a migrate still settles", async () => {
      const poolSize = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
      const conn = await open("test:///default");
      const hung = Array.from({ length: poolSize }, () => rejection(open(`qemu+tcp://127.0.0.1:${port}/system`, { keepaliveIntervalSec: 0 })));
      while (sockets.length < poolSize) await new Promise((r) => setTimeout(r, 5));
      // Every pool thread now blocks in virConnectOpen; the main loop still runs timers…
      let ticks = 0;
      const timer = setInterval(() => ticks++, 2);
      await new Promise((r) => setTimeout(r, 100));
      expect(ticks).toBeGreaterThan(5);
      // …a pool call queues behind the stuck ones…
      let listed = false;
      const listing = conn.listDomains().then(() => (listed = true));
      // …but migrate, on a thread of its own, reaches libvirt and settles.
      await expectLibvirtError(conn.migrate("test", "qemu+tcp://127.0.0.9/system", { flags: ["LIVE", "PEER2PEER"] }), ErrorCode.ARGUMENT_UNSUPPORTED, ErrorDomain.DOMAIN);
      expect(listed).toBe(false);
      clearInterval(timer);
      // Hanging up on the stuck opens fails them with libvirt's error and frees the pool.
      for (const s of sockets) s.destroy();
      for (const e of await Promise.all(hung)) expect(e).toBeInstanceOf(LibvirtError);
      await listing;
      expect(listed).toBe(true);
      await conn.close();
    });
  });
});
