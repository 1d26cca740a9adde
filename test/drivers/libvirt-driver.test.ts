/**
 * The libvirt driver's own logic with fake connections and a ManualClock: load computation, reconnect back-off,
 * unreachable hosts, the transport check, and refusals that must never reach libvirt. The real thing runs in
 * test/lab/libvirt-driver.test.ts.
 */
import { describe, expect, it } from "vitest";
import { DriverError } from "../../src/drivers/driver.js";
import type { MigrationRequest } from "../../src/drivers/driver.js";
import { configSchema } from "../../src/config/schema.js";
import { checkTransport, type LibvirtConfig } from "../../src/drivers/libvirt/config.js";
import { LibvirtDriver } from "../../src/drivers/libvirt/driver.js";
import { HostLink, type OpenFn } from "../../src/drivers/libvirt/host-link.js";
import { domainMemoryMiB, hostLoadFromDomains, nodeMemoryUsedMiB, RateBook } from "../../src/drivers/libvirt/load.js";
import { libvirtFlags } from "../../src/drivers/libvirt/migration.js";
import { DomainState, ErrorCode, LibvirtError, type Connection, type DomainStatsRecord, type DomainSummary } from "../../src/drivers/libvirt/native/index.js";
import { hostId, vmId } from "../../src/model/index.js";
import { ManualClock } from "../../src/util/clock.js";

const S = 1000;
const NS = 1_000_000_000n;

describe("RateBook", () => {
  it("gives a domain's load in CPUs from CPU-time deltas, 0 on the first reading", () => {
    const r = new RateBook();
    expect(r.cpu("a", 0, 5n * NS)).toBe(0);
    // 1.5 CPU-seconds in 1 s of wall time.
    expect(r.cpu("a", S, 5n * NS + 1_500_000_000n)).toBeCloseTo(1.5, 9);
  });

  it("smooths later readings with the simulator's EMA (τ = 60 s)", () => {
    const r = new RateBook();
    r.cpu("a", 0, 0n);
    r.cpu("a", 10 * S, 10n * NS); // 1 CPU
    const v = r.cpu("a", 70 * S, 10n * NS); // idle for 60 s: one time constant
    expect(v).toBeCloseTo(Math.exp(-1), 9);
  });

  it("treats a counter that went backwards as a restart (a migrated guest starts at 0), keeping the smoothed value", () => {
    const r = new RateBook();
    r.cpu("a", 0, 0n);
    const before = r.cpu("a", S, NS / 2n);
    expect(r.cpu("a", 2 * S, 1000n)).toBe(before);
    expect(r.cpu("a", 3 * S, 1000n + NS / 2n)).toBeCloseTo(0.5, 6);
  });

  it("gives a node's busy fraction from kernel + user over all CPU time", () => {
    const r = new RateBook();
    const stats = (busy: bigint, idle: bigint): Record<string, bigint> => ({ kernel: busy / 2n, user: busy / 2n, idle, iowait: 0n });
    expect(r.node("n", 0, stats(0n, 0n))).toBe(0);
    expect(r.node("n", S, stats(4n * NS, 12n * NS))).toBeCloseTo(0.25, 9);
  });

  it("forgets keys not retained", () => {
    const r = new RateBook();
    r.cpu("a", 0, 0n);
    r.retain(new Set());
    expect(r.cpu("a", S, NS)).toBe(0);
  });
});

describe("load helpers", () => {
  it.each([
    [[0.5, 1.5], 4, 0.5],
    [[8, 8], 4, 1],
    [[], 4, 0],
  ])("host load of domain loads %j over %d CPUs is %d", (loads, cpus, want) => {
    expect(hostLoadFromDomains(loads, cpus)).toBeCloseTo(want, 9);
  });
  it("node memory used excludes free, buffers and cache", () => {
    expect(nodeMemoryUsedMiB({ total: 8192n * 1024n, free: 1024n * 1024n, buffers: 1024n * 1024n, cached: 2048n * 1024n })).toBe(4096);
  });
  it("domain memory is the balloon's current size, else the configured size", () => {
    expect(domainMemoryMiB({ "balloon.current": 524288n }, 1024)).toBe(512);
    expect(domainMemoryMiB({}, 1024)).toBe(1024);
  });
});

describe("libvirtFlags", () => {
  it("always migrates peer-to-peer (MigrateToURI3 to a libvirt URI), the cold set included", () => {
    expect(libvirtFlags(["OFFLINE", "PERSIST_DEST", "UNDEFINE_SOURCE"])).toEqual(["OFFLINE", "PERSIST_DEST", "UNDEFINE_SOURCE", "PEER2PEER"]);
    expect(libvirtFlags(["LIVE", "PEER2PEER"])).toEqual(["LIVE", "PEER2PEER"]);
  });
});

// ---------------------------------------------------------------- fakes

interface FakeDomain {
  summary: DomainSummary;
  xml: string;
  cpuNs: bigint;
  balloonKiB?: bigint;
}

function domainXml(name: string, uuid: string, memMiB: number, vcpus: number): string {
  return `<domain type='qemu'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>${memMiB}</memory><vcpu>${vcpus}</vcpu><devices/></domain>`;
}

function fakeDomain(name: string, uuid: string, opts: { memMiB?: number; vcpus?: number; state?: number } = {}): FakeDomain {
  const state = opts.state ?? DomainState.RUNNING;
  const active = state !== DomainState.SHUTOFF;
  return {
    summary: { name, uuid, id: active ? 1 : -1, state, reason: 0, persistent: true, active },
    xml: domainXml(name, uuid, opts.memMiB ?? 1024, opts.vcpus ?? 2),
    cpuNs: 0n,
  };
}

const noDomain = (): LibvirtError => new LibvirtError("Domain not found", ErrorCode.NO_DOMAIN, 10, 2);
const notHere = (what: string): Promise<never> => Promise.reject(new Error(`fake connection: ${what} not expected in this test`));

/** A connection to a fake host: node info and a set of domains whose counters the test moves. */
class FakeConn implements Connection {
  closed = false;
  readonly domains = new Map<string, FakeDomain>();
  dirtyCalcs: string[] = [];
  calls: string[] = [];

  constructor(readonly cpus: number) {}
  private dom(key: string): FakeDomain {
    const d = this.domains.get(key) ?? [...this.domains.values()].find((x) => x.summary.name === key);
    if (!d) throw noDomain();
    return d;
  }
  private async op<T>(name: string, fn: () => T): Promise<T> {
    this.calls.push(name);
    if (this.closed) throw new LibvirtError("the connection is closed", ErrorCode.INVALID_CONN, 0, 2);
    await Promise.resolve();
    return fn();
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  isAlive = (): Promise<boolean> => Promise.resolve(!this.closed);
  listDomains = (): Promise<DomainSummary[]> => this.op("listDomains", () => [...this.domains.values()].map((d) => d.summary));
  lookupDomain = (k: string): Promise<DomainSummary> => this.op("lookupDomain", () => this.dom(k).summary);
  getDomainXml = (k: string): Promise<string> => this.op("getDomainXml", () => this.dom(k).xml);
  getAllDomainStats = (): Promise<DomainStatsRecord[]> =>
    this.op("getAllDomainStats", () =>
      [...this.domains.values()].map((d) => ({
        domain: { name: d.summary.name, uuid: d.summary.uuid },
        params: {
          "state.state": d.summary.state,
          ...(d.summary.active && { "cpu.time": d.cpuNs }),
          ...(d.balloonKiB !== undefined && { "balloon.current": d.balloonKiB }),
        },
      })),
    );
  getNodeInfo = (): Promise<{ model: string; memoryKiB: number; cpus: number; mhz: number; nodes: number; sockets: number; cores: number; threads: number }> =>
    this.op("getNodeInfo", () => ({ model: "x86_64", memoryKiB: 16 * 1024 * 1024, cpus: this.cpus, mhz: 2000, nodes: 1, sockets: 1, cores: this.cpus, threads: 1 }));
  startDirtyRateCalc = (k: string): Promise<void> => this.op("startDirtyRateCalc", () => void this.dirtyCalcs.push(k));
  getBlockInfo = (): Promise<never> => notHere("getBlockInfo");
  getDomainInfo = (): Promise<never> => notHere("getDomainInfo");
  getNodeCpuStats = (): Promise<never> => notHere("getNodeCpuStats");
  getNodeMemoryStats = (): Promise<never> => notHere("getNodeMemoryStats");
  migrate = (): Promise<never> => notHere("migrate");
  migrateSetMaxDowntime = (): Promise<never> => notHere("migrateSetMaxDowntime");
  migrateSetMaxSpeed = (): Promise<never> => notHere("migrateSetMaxSpeed");
  migrateStartPostCopy = (): Promise<never> => notHere("migrateStartPostCopy");
  getJobStats = (): Promise<never> => notHere("getJobStats");
  abortJob = (): Promise<never> => notHere("abortJob");
  suspend = (): Promise<never> => notHere("suspend");
  resume = (): Promise<never> => notHere("resume");
  create = (): Promise<never> => notHere("create");
}

/** A libvirt config section through the real schema (its defaults filled in). */
function config(hosts: { name: string; cell?: string }[]): LibvirtConfig {
  return configSchema.shape.libvirt.unwrap().parse({
    allowInsecureTransport: true,
    hosts: hosts.map((h, i) => ({ name: h.name, uri: `qemu+tcp://127.0.0.${i + 2}/system`, loadSource: "domains", ...(h.cell !== undefined && { cell: h.cell }) })),
  });
}

/** open() over fake hosts by URI; a host in `down` refuses connections. */
function fakeOpen(conns: Map<string, FakeConn>, down: Set<string>, opened: string[]): OpenFn {
  return (uri) => {
    opened.push(uri);
    if (down.has(uri)) return Promise.reject(new LibvirtError(`unable to connect to server at '${uri}': Connection refused`, ErrorCode.SYSTEM_ERROR, 7, 2));
    const c = conns.get(uri);
    return c ? Promise.resolve(c) : Promise.reject(new Error(`no fake for ${uri}`));
  };
}

const U1 = "00000000-0000-0000-0000-000000000001";
const U2 = "00000000-0000-0000-0000-000000000002";

describe("LibvirtDriver with fake hosts", () => {
  function setup(): { clock: ManualClock; driver: LibvirtDriver; h1: FakeConn; h2: FakeConn; down: Set<string>; opened: string[] } {
    const clock = new ManualClock();
    const h1 = new FakeConn(4);
    const h2 = new FakeConn(8);
    h1.domains.set(U1, fakeDomain("busy", U1, { vcpus: 2, memMiB: 2048 }));
    h1.domains.set(U2, fakeDomain("off", U2, { state: DomainState.SHUTOFF }));
    const conns = new Map([
      ["qemu+tcp://127.0.0.2/system", h1],
      ["qemu+tcp://127.0.0.3/system", h2],
    ]);
    const down = new Set<string>();
    const opened: string[] = [];
    const driver = new LibvirtDriver(config([{ name: "h1" }, { name: "h2" }]), { clock, open: fakeOpen(conns, down, opened) });
    return { clock, driver, h1, h2, down, opened };
  }

  it("samples hosts and VMs; host load is the sum of domain CPU-time rates over the host's CPUs", async () => {
    const { clock, driver, h1 } = setup();
    const first = await driver.sample();
    expect(first.hosts.map((h) => [h.name, h.cpus, h.cpuLoad, h.reachable, h.cell])).toEqual([
      ["h1", 4, 0, true, "default"],
      ["h2", 8, 0, true, "default"],
    ]);
    await clock.advance(10 * S);
    (h1.domains.get(U1) as FakeDomain).cpuNs = 20n * NS; // 2 CPUs busy for 10 s
    (h1.domains.get(U1) as FakeDomain).balloonKiB = 1024n * 1024n;
    const s = await driver.sample();
    const busy = s.vms.find((v) => v.id === U1);
    expect(busy).toMatchObject({ name: "busy", host: "h1", state: "running", vcpus: 2, memoryMiB: 2048, cpuLoad: 2, storage: { kind: "volume" }, volumes: 0, tags: [] });
    expect(s.vms.find((v) => v.id === U2)).toMatchObject({ state: "shutoff", cpuLoad: 0 });
    // 2 of 4 CPUs; memory used is what running domains hold (the balloon), not the shut-off one.
    expect(s.hosts[0]).toMatchObject({ cpuLoad: 0.5, memoryUsedMiB: 1024 });
  });

  it("starts dirty-rate measurements on running domains at most once per interval", async () => {
    const { clock, driver, h1 } = setup();
    await driver.sample();
    await clock.advance(1000);
    await driver.sample();
    expect(h1.dirtyCalcs).toEqual([U1]);
    await clock.advance(60 * S);
    await driver.sample();
    expect(h1.dirtyCalcs).toEqual([U1, U1]);
  });

  it("samples an unreachable host as reachable: false and retries with back-off", async () => {
    const { clock, driver, down, opened } = setup();
    down.add("qemu+tcp://127.0.0.3/system");
    const s = await driver.sample();
    expect(s.hosts.find((h) => h.name === "h2")).toMatchObject({ reachable: false, cpus: 1 });
    const attempts = (): number => opened.filter((u) => u.includes("127.0.0.3")).length;
    expect(attempts()).toBe(1);
    await driver.sample(); // within the 1 s back-off: no new attempt
    expect(attempts()).toBe(1);
    await clock.advance(1000);
    await driver.sample();
    expect(attempts()).toBe(2);
    await clock.advance(1000); // back-off doubled to 2 s
    await driver.sample();
    expect(attempts()).toBe(2);
    down.clear();
    await clock.advance(1000);
    expect((await driver.sample()).hosts.find((h) => h.name === "h2")).toMatchObject({ reachable: true, cpus: 8 });
  });

  it("a host that stops answering is unreachable after 10 s and gets no new calls while the old ones hang", async () => {
    const { clock, driver, h1 } = setup();
    await driver.sample();
    let release!: () => void;
    const hung = new Promise<void>((r) => (release = r));
    h1.listDomains = () => hung.then(() => [...h1.domains.values()].map((d) => d.summary));
    const sampling = driver.sample();
    await clock.advance(10_000);
    const s = await sampling;
    expect(s.hosts.map((h) => [h.name, h.reachable])).toEqual([
      ["h1", false],
      ["h2", true],
    ]);
    const calls = h1.calls.length;
    expect((await driver.sample()).hosts[0]?.reachable).toBe(false);
    expect(h1.calls.length).toBe(calls);
    release();
    await clock.advance(0);
    expect((await driver.sample()).hosts[0]?.reachable).toBe(true);
    expect(clock.pending).toBe(0);
  });

  it("reconnects after the connection is lost", async () => {
    const { driver, h1, opened } = setup();
    await driver.sample();
    h1.closed = true; // the daemon went away: calls fail with INVALID_CONN
    const s = await driver.sample();
    expect(s.hosts[0]?.reachable).toBe(false);
    h1.closed = false;
    expect((await driver.sample()).hosts[0]?.reachable).toBe(true);
    expect(opened.filter((u) => u.includes("127.0.0.2"))).toHaveLength(2);
  });

  it("locates a VM on every host it is defined on", async () => {
    const { driver, h2 } = setup();
    h2.domains.set(U1, fakeDomain("busy", U1, { state: DomainState.SHUTOFF }));
    expect(await driver.locate(vmId(U1))).toEqual({
      vm: U1,
      placements: [
        { host: "h1", state: "running" },
        { host: "h2", state: "shutoff" },
      ],
    });
    expect((await driver.locate(vmId("00000000-0000-0000-0000-0000000000ff"))).placements).toEqual([]);
  });

  it("locate of a VM found nowhere while a host is unreachable is HOST_UNREACHABLE", async () => {
    const { driver, down } = setup();
    down.add("qemu+tcp://127.0.0.3/system");
    await expect(driver.locate(vmId("00000000-0000-0000-0000-0000000000ff"))).rejects.toMatchObject({ code: "HOST_UNREACHABLE", host: "h2" });
    expect((await driver.locate(vmId(U1))).placements).toEqual([{ host: "h1", state: "running" }]);
  });

  it("refuses a migration that is not on its source, without starting anything", async () => {
    const { driver, h2 } = setup();
    const req: MigrationRequest = { vm: vmId(U1), from: hostId("h2"), to: hostId("h1"), kind: "live-volume", flags: ["LIVE", "PEER2PEER"], maxDowntimeMs: 300 };
    await expect(driver.migrate(req)).rejects.toMatchObject({ code: "VM_NOT_ON_SOURCE" });
    expect(h2.calls).toEqual(["lookupDomain"]);
  });

  it("close() is idempotent and later calls are DRIVER_CLOSED", async () => {
    const { driver, h1 } = setup();
    await driver.sample();
    await driver.close();
    await driver.close();
    expect(h1.closed).toBe(true);
    await expect(driver.sample()).rejects.toMatchObject({ code: "DRIVER_CLOSED" });
  });
});

describe("cells", () => {
  it("never attempts a cross-cell migration: refused before any libvirt call", async () => {
    const opened: string[] = [];
    const driver = new LibvirtDriver(config([{ name: "a1", cell: "a" }, { name: "b1", cell: "b" }]), {
      clock: new ManualClock(),
      open: fakeOpen(new Map(), new Set(), opened),
    });
    const err: unknown = await driver
      .migrate({ vm: vmId(U1), from: hostId("a1"), to: hostId("b1"), kind: "live-shared", flags: ["LIVE", "PEER2PEER"], maxDowntimeMs: 300 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect(err).toMatchObject({ code: "CROSS_CELL", message: expect.stringMatching(/a1 \(cell a\) and b1 \(cell b\)/) as unknown });
    expect(opened).toEqual([]);
  });
});

describe("transport", () => {
  it("refuses qemu+tcp:// unless allowInsecureTransport, naming the host and the fix", () => {
    const cfg = { ...config([{ name: "h1" }]), allowInsecureTransport: false };
    expect(() => checkTransport(cfg)).toThrow(/h1: qemu\+tcp:\/\/127\.0\.0\.2\/system uses qemu\+tcp:\/\/.*allowInsecureTransport/);
    expect(() => checkTransport({ ...cfg, allowInsecureTransport: true })).not.toThrow();
    const tls = { ...cfg, hosts: cfg.hosts.map((h) => ({ ...h, uri: "qemu+tls://kvm-1/system" })) };
    expect(() => checkTransport(tls)).not.toThrow();
  });
});

describe("HostLink", () => {
  it("backs off exponentially up to a minute and resets after a success", async () => {
    const clock = new ManualClock();
    let fail = true;
    const attempts: number[] = [];
    const open: OpenFn = () => {
      attempts.push(clock.now());
      return fail ? Promise.reject(new Error("refused")) : Promise.resolve(new FakeConn(1));
    };
    const [host] = config([{ name: "h" }]).hosts;
    if (!host) throw new Error("no host");
    const link = new HostLink(host, clock, open, () => undefined);
    const t0 = clock.now();
    for (let i = 0; i < 200; i++) {
      await link.get().catch(() => undefined);
      await clock.advance(1000);
    }
    expect(attempts.map((t) => (t - t0) / 1000)).toEqual([0, 1, 3, 7, 15, 31, 63, 123, 183]);
    fail = false;
    await clock.advance(60_000);
    await expect(link.get()).resolves.toBeInstanceOf(FakeConn);
  });
});
