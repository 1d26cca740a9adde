/**
 * The Driver over libvirt hosts (KVM/QEMU): one connection per host, VM facts from domain XML, load from
 * libvirt counters, and migrations with virDomainMigrateToURI3 watched through job statistics.
 */
import { cellId, DEFAULT_CELL, hostId, vmId, type ClusterSnapshot, type Host, type HostId, type Vm, type VmId, type VmState } from "../../model/index.js";
import type { Clock } from "../../util/clock.js";
import { DriverError } from "../driver.js";
import type { Driver, DriverCapabilities, MigrationHandle, MigrationRequest, Placement, VmLocation } from "../driver.js";
import type { LibvirtConfig, LibvirtHostConfig } from "./config.js";
import { parseDomainXml, vmStorage, type DomainFacts } from "./domain-xml.js";
import { toDriverError } from "./errors.js";
import { HostLink, type OpenFn } from "./host-link.js";
import { domainMemoryMiB, hostLoadFromDomains, nodeMemoryUsedMiB, numParam, RateBook, round } from "./load.js";
import { LibvirtMigration } from "./migration.js";
import { ProcLoadSampler, type HostLoadSample } from "../ssh/proc-load.js";
import { SshSession } from "../ssh/session.js";
import { sshTargetFor } from "../ssh/target.js";
import {
  DomainState,
  ErrorCode,
  JobType,
  LibvirtError,
  type Connection,
  type DomainStatsRecord,
  type DomainSummary,
  type LibvirtEvent,
  type NodeInfo,
  type StatsGroup,
  type TypedParams,
} from "./native/index.js";

export interface LibvirtDriverOptions {
  readonly clock: Clock;
  /** Opens a connection (default: the native binding). */
  readonly open: OpenFn;
  /** Minimum time between dirty-rate measurements of one domain (default 60 s). */
  readonly dirtyRateEveryMs?: number;
}

const STATS: readonly StatsGroup[] = ["state", "cpu-total", "balloon", "vcpu", "block", "dirtyrate"];
/** Domain XML (tags, disks) is re-read this often; it changes rarely and costs a round trip per domain. */
const XML_TTL_MS = 60_000;
const DIRTY_CALC_SEC = 1;
/** A host that has not answered a sample's calls in this long is sampled as unreachable. */
const SAMPLE_TIMEOUT_MS = 10_000;
/** Longest wait for /proc over SSH before the sample falls back to the sum of the host's domains. */
const PROC_TIMEOUT_MS = 3000;
/** Dirty-rate measurements started per host per sample, so a large host is measured over several rounds. */
const DIRTY_CALCS_PER_SAMPLE = 4;
const CANCEL_NOTHING = new Set<number>([ErrorCode.NO_DOMAIN, ErrorCode.OPERATION_INVALID, ErrorCode.OPERATION_UNSUPPORTED]);
/** How long cancel() waits for a job it did not start to end after aborting it. */
const ORPHAN_JOB_WAIT_MS = 10_000;
const ORPHAN_POLL_MS = 250;
/** dirtyrate.calc_status: 2 = measured. */
const DIRTY_MEASURED = 2;

interface CachedXml {
  readonly facts: DomainFacts;
  readonly at: number;
  readonly domainId: number;
  /** Capacity of local disks by target, MiB (from virDomainGetBlockInfo when stats lack it). */
  readonly localDiskMiB: ReadonlyMap<string, number>;
}

function vmState(state: number): VmState {
  switch (state) {
    case DomainState.PAUSED:
    case DomainState.PMSUSPENDED:
      return "paused";
    case DomainState.SHUTOFF:
    case DomainState.CRASHED:
    case DomainState.NOSTATE:
      return "shutoff";
    default:
      // RUNNING, BLOCKED (running, waiting on I/O) and SHUTDOWN (going down, still there).
      return "running";
  }
}

const STATE_RANK: Readonly<Record<VmState, number>> = { running: 0, paused: 1, shutoff: 2 };

export class LibvirtDriver implements Driver {
  readonly name = "libvirt";
  readonly capabilities: DriverCapabilities = { setDowntime: true, postCopy: true, pauseGuest: true, dirtyRate: true };
  private readonly links = new Map<string, HostLink>();
  private readonly rates = new RateBook();
  private readonly xml = new Map<string, CachedXml>();
  private readonly nodeInfo = new Map<string, NodeInfo>();
  private readonly lastHostLoad = new Map<string, number>();
  private readonly dirty = new Map<string, number>();
  private readonly dirtyStarted = new Map<string, number>();
  private readonly dirtyUnsupported = new Set<string>();
  private readonly migrations = new Map<string, LibvirtMigration>();
  /** Hosts whose last sample's calls have not returned yet. */
  private readonly pendingReads = new Set<string>();
  private readonly completed = new Map<string, { readonly at: number; readonly params: TypedParams }>();
  private readonly clock: Clock;
  private readonly dirtyEveryMs: number;
  /** loadSource proc: one long-lived SSH session per host, files kept open between samples. */
  private readonly proc = new Map<string, { readonly session: SshSession; readonly sampler: ProcLoadSampler }>();
  private closed = false;

  constructor(
    readonly config: LibvirtConfig,
    options: LibvirtDriverOptions,
  ) {
    this.clock = options.clock;
    this.dirtyEveryMs = options.dirtyRateEveryMs ?? 60_000;
    for (const h of config.hosts) {
      this.links.set(h.name, new HostLink(h, options.clock, options.open, (host, e) => this.onEvent(host, e)));
      const target = h.loadSource === "proc" ? sshTargetFor(h) : undefined;
      if (target) {
        const session = new SshSession(target);
        this.proc.set(h.name, { session, sampler: new ProcLoadSampler((path) => session.readFile(path, { keepOpen: true })) });
      }
    }
  }

  // ---------------------------------------------------------------- sample

  async sample(): Promise<ClusterSnapshot> {
    this.check();
    const at = this.clock.now();
    const perHost = await Promise.all([...this.links.values()].map((l) => this.sampleHost(l, at)));
    const best = new Map<string, Vm>();
    for (const { vms } of perHost) {
      for (const v of vms) {
        const seen = best.get(v.id);
        // A domain on two hosts (mid-migration, or duplicated): the snapshot lists it once, where it runs.
        if (!seen || STATE_RANK[v.state] < STATE_RANK[seen.state]) best.set(v.id, v);
      }
    }
    this.rates.retain(new Set<string>([...best.keys(), ...[...this.links.keys()].map((h) => `node:${h}`)]));
    for (const key of this.xml.keys()) if (!best.has(key.slice(key.indexOf("/") + 1))) this.xml.delete(key);
    return { takenAt: new Date(at).toISOString(), hosts: perHost.map((p) => p.host), vms: [...best.values()] };
  }

  /**
   * One host's part of a sample. A host that does not answer within SAMPLE_TIMEOUT_MS (a hung daemon: calls wait
   * until keepalive gives up) is reported unreachable, and gets no new calls while the old ones are stuck, so it
   * cannot hold up the sample or fill the thread pool.
   */
  private async sampleHost(link: HostLink, at: number): Promise<{ host: Host; vms: Vm[] }> {
    const cfg = link.host;
    const down = (): { host: Host; vms: Vm[] } =>
      // Never reached: capacity unknown; 1 CPU / 1 MiB keeps the snapshot valid and the host unusable.
      ({ host: this.hostEntry(cfg, this.nodeInfo.get(cfg.name), this.lastHostLoad.get(cfg.name) ?? 0, 0, false), vms: [] });
    if (this.pendingReads.has(cfg.name)) return down();
    const read = link.call((c) => this.readHost(c, link, at));
    this.pendingReads.add(cfg.name);
    void read.then(
      () => this.pendingReads.delete(cfg.name),
      () => this.pendingReads.delete(cfg.name),
    );
    const timer = new AbortController();
    const timedOut = this.clock.sleep(SAMPLE_TIMEOUT_MS, timer.signal).then(
      () => "timeout" as const,
      () => "cancelled" as const,
    );
    try {
      const r = await Promise.race([read, timedOut]);
      return r === "timeout" || r === "cancelled" ? down() : r;
    } catch (e) {
      if (!(e instanceof DriverError && e.code === "HOST_UNREACHABLE")) throw toDriverError(e, hostId(cfg.name));
      return down();
    } finally {
      timer.abort();
    }
  }

  private async readHost(c: Connection, link: HostLink, at: number): Promise<{ host: Host; vms: Vm[] }> {
    const cfg = link.host;
    const byNode = cfg.loadSource === "node";
    const [info, doms, stats, nodeCpu, nodeMem, proc] = await Promise.all([
      this.nodeInfo.get(cfg.name) ?? c.getNodeInfo(),
      c.listDomains(),
      c.getAllDomainStats(STATS, { filters: ["nowait"] }),
      byNode ? c.getNodeCpuStats() : undefined,
      byNode ? c.getNodeMemoryStats() : undefined,
      this.readProc(cfg.name),
    ]);
    this.nodeInfo.set(cfg.name, info);
    const statsOf = new Map<string, DomainStatsRecord>(stats.map((r) => [r.domain.uuid, r]));
    const vms: Vm[] = [];
    let domainMemMiB = 0;
    let calcs = 0;
    for (const d of doms) {
      const cached = await this.facts(c, cfg, d, at);
      if (!cached) continue; // gone between the listing and the query
      const { facts } = cached;
      const params = statsOf.get(d.uuid)?.params ?? {};
      const state = vmState(d.state);
      const cpuNs = params["cpu.time"];
      const load = d.active && typeof cpuNs === "bigint" ? this.rates.cpu(d.uuid, at, cpuNs) : 0;
      if (d.active) domainMemMiB += domainMemoryMiB(params, facts.memoryMiB);
      this.readDirtyRate(d.uuid, params);
      if (state === "running" && calcs < DIRTY_CALCS_PER_SAMPLE && this.startDirtyCalc(c, cfg.name, d.uuid, at)) calcs++;
      const { storage, volumes } = vmStorage(facts.disks);
      const diskMiB = this.localDiskMiB(cached, params);
      const dirtyRateMiBps = state === "running" ? this.dirty.get(d.uuid) : 0;
      vms.push({
        id: vmId(d.uuid),
        name: d.name,
        host: hostId(cfg.name),
        state,
        vcpus: facts.vcpus,
        memoryMiB: facts.memoryMiB,
        cpuLoad: round(Math.min(facts.vcpus, load), 3),
        storage,
        volumes,
        ...(dirtyRateMiBps !== undefined && { dirtyRateMiBps }),
        ...(diskMiB !== undefined && { diskMiB }),
        tags: facts.tags,
      });
    }
    const cpus = info.cpus;
    const key = `node:${cfg.name}`;
    const load = nodeCpu
      ? this.rates.node(key, at, nodeCpu)
      : proc
        ? this.rates.busyFraction(key, at, BigInt(proc.times.busy), BigInt(proc.times.busy + proc.times.idle))
        : hostLoadFromDomains(vms.map((v) => v.cpuLoad), cpus);
    this.lastHostLoad.set(cfg.name, load);
    const memUsed = nodeMem ? nodeMemoryUsedMiB(nodeMem) : proc ? proc.memory.usedMiB : domainMemMiB;
    return { host: this.hostEntry(cfg, info, load, memUsed, true), vms };
  }

  private hostEntry(cfg: LibvirtHostConfig, info: NodeInfo | undefined, load: number, memUsedMiB: number, reachable: boolean): Host {
    return {
      name: hostId(cfg.name),
      hypervisor: "kvm",
      cell: cfg.cell !== undefined ? cellId(cfg.cell) : DEFAULT_CELL,
      pool: null,
      cpus: info?.cpus ?? 1,
      memoryMiB: info ? Math.floor(info.memoryKiB / 1024) : 1,
      cpuLoad: round(load, 4),
      memoryUsedMiB: Math.round(memUsedMiB),
      maintenance: false,
      reachable,
      sharedStorage: cfg.sharedStorage,
    };
  }

  /** Domain facts, from cache while fresh and the domain has not restarted. */
  private async facts(c: Connection, cfg: LibvirtHostConfig, d: DomainSummary, at: number): Promise<CachedXml | undefined> {
    const key = `${cfg.name}/${d.uuid}`;
    const hit = this.xml.get(key);
    if (hit && hit.domainId === d.id && at - hit.at < XML_TTL_MS) return hit;
    try {
      const facts = parseDomainXml(await c.getDomainXml(d.uuid), cfg.sharedStorage);
      const localDiskMiB = new Map<string, number>();
      for (const disk of facts.disks) {
        if (disk.backing !== "local") continue;
        const bi = await c.getBlockInfo(d.uuid, disk.target).catch(() => undefined);
        if (bi) localDiskMiB.set(disk.target, Number(bi.capacity) / 1024 ** 2);
      }
      const entry: CachedXml = { facts, at, domainId: d.id, localDiskMiB };
      this.xml.set(key, entry);
      return entry;
    } catch (e) {
      if (e instanceof LibvirtError && e.code === ErrorCode.NO_DOMAIN) {
        this.xml.delete(key);
        return undefined;
      }
      throw e;
    }
  }

  /** Local disk to copy on block migration: capacities from block stats, else from virDomainGetBlockInfo. */
  private localDiskMiB(cached: CachedXml, params: TypedParams): number | undefined {
    const local = cached.facts.disks.filter((d) => d.backing === "local");
    if (local.length === 0) return undefined;
    const count = numParam(params, "block.count") ?? 0;
    const fromStats = new Map<string, number>();
    for (let i = 0; i < count; i++) {
      const name = params[`block.${i}.name`];
      const cap = numParam(params, `block.${i}.capacity`);
      if (typeof name === "string" && cap !== undefined) fromStats.set(name, cap / 1024 ** 2);
    }
    let total = 0;
    for (const d of local) total += fromStats.get(d.target) ?? cached.localDiskMiB.get(d.target) ?? 0;
    return Math.ceil(total);
  }

  private readDirtyRate(uuid: string, params: TypedParams): void {
    if (numParam(params, "dirtyrate.calc_status") !== DIRTY_MEASURED) return;
    const rate = numParam(params, "dirtyrate.megabytes_per_second");
    if (rate !== undefined && rate >= 0) this.dirty.set(uuid, rate);
  }

  /** Starts a short dirty-rate measurement when the last is old enough; true when one was started. */
  private startDirtyCalc(c: Connection, host: string, uuid: string, at: number): boolean {
    if (this.dirtyUnsupported.has(host) || this.migrations.has(uuid)) return false;
    const last = this.dirtyStarted.get(uuid);
    if (last !== undefined && at - last < this.dirtyEveryMs) return false;
    this.dirtyStarted.set(uuid, at);
    void c.startDirtyRateCalc(uuid, DIRTY_CALC_SEC).catch((e: unknown) => {
      if (e instanceof LibvirtError && (e.code === ErrorCode.NO_SUPPORT || e.code === ErrorCode.ARGUMENT_UNSUPPORTED)) this.dirtyUnsupported.add(host);
    });
    return true;
  }

  // ---------------------------------------------------------------- locate, cancel, resume

  async locate(vm: VmId): Promise<VmLocation> {
    this.check();
    const placements: Placement[] = [];
    const unreachable: string[] = [];
    await Promise.all(
      [...this.links.values()].map(async (link) => {
        try {
          const d = await link.call((c) => c.lookupDomain(vm));
          placements.push({ host: hostId(link.host.name), state: vmState(d.state) });
        } catch (e) {
          if (e instanceof LibvirtError && e.code === ErrorCode.NO_DOMAIN) return;
          if (e instanceof DriverError && e.code === "HOST_UNREACHABLE") unreachable.push(link.host.name);
          else throw toDriverError(e, hostId(link.host.name));
        }
      }),
    );
    const order = [...this.links.keys()];
    placements.sort((a, b) => order.indexOf(a.host) - order.indexOf(b.host));
    const down = unreachable[0];
    if (placements.length === 0 && down !== undefined) {
      throw new DriverError(`${vm} not found on reachable hosts; ${unreachable.join(", ")} unreachable`, "HOST_UNREACHABLE", hostId(down));
    }
    return { vm, placements };
  }

  async cancel(vm: VmId): Promise<void> {
    this.check();
    const mine = this.migrations.get(vm);
    if (mine) return mine.abort(`cancelled by driver ${this.name}`);
    // A job this driver did not start (an earlier daemon instance): abort it wherever it runs, and wait for it to
    // end. An orphan job runs on at the low initial downtime with no guard to raise it, so it may never finish, and
    // it refuses every later migration of the VM: better fail here (reconciliation then retries) than leave it.
    const active = (t: number): boolean => t === JobType.BOUNDED || t === JobType.UNBOUNDED;
    const ignorable = (e: unknown): boolean =>
      // No such domain, no job, or the incoming side of a migration (only the source can abort it).
      (e instanceof LibvirtError && CANCEL_NOTHING.has(e.code)) || (e instanceof DriverError && e.code === "HOST_UNREACHABLE");
    await Promise.all(
      [...this.links.values()].map(async (link) => {
        const host = hostId(link.host.name);
        const jobType = (): Promise<number> =>
          link.call((c) => c.getJobStats(vm)).then(
            (j) => j.type,
            (e: unknown) => {
              if (ignorable(e)) return JobType.NONE;
              throw toDriverError(e, host);
            },
          );
        if (!active(await jobType())) return;
        await link.call((c) => c.abortJob(vm)).catch((e: unknown) => {
          if (!ignorable(e)) throw toDriverError(e, host);
        });
        for (let waited = 0; waited < ORPHAN_JOB_WAIT_MS; waited += ORPHAN_POLL_MS) {
          if (!active(await jobType())) return;
          await this.clock.sleep(ORPHAN_POLL_MS);
        }
        throw new DriverError(`a migration job of ${vm} on ${host} is still running after abort`, "JOB_STILL_RUNNING", host);
      }),
    );
  }

  async resume(vm: VmId, host: HostId): Promise<void> {
    this.check();
    const link = this.link(host);
    try {
      await link.call((c) => c.resume(vm));
    } catch (e) {
      throw toDriverError(e, host);
    }
  }

  // ---------------------------------------------------------------- migrate

  async migrate(req: MigrationRequest): Promise<MigrationHandle> {
    this.check();
    const from = this.link(req.from);
    const to = this.link(req.to);
    if (from === to) throw new DriverError(`VM ${req.vm} is already on ${req.to}`, "SAME_HOST", req.to);
    const fromCell = from.host.cell ?? DEFAULT_CELL;
    const toCell = to.host.cell ?? DEFAULT_CELL;
    if (fromCell !== toCell) {
      throw new DriverError(`${req.from} (cell ${fromCell}) and ${req.to} (cell ${toCell}) are in different cells`, "CROSS_CELL", req.to);
    }
    if (!Number.isFinite(req.maxDowntimeMs) || req.maxDowntimeMs <= 0) throw new DriverError(`invalid maxDowntimeMs ${req.maxDowntimeMs}`, "INVALID_ARGUMENT");
    if (req.bandwidthMiBps !== undefined && !(Number.isFinite(req.bandwidthMiBps) && req.bandwidthMiBps > 0)) {
      throw new DriverError(`invalid bandwidthMiBps ${req.bandwidthMiBps}`, "INVALID_ARGUMENT");
    }
    if (this.migrations.has(req.vm)) throw new DriverError(`VM ${req.vm} already has a migration job running`, "MIGRATION_IN_PROGRESS");
    let d: DomainSummary;
    try {
      d = await from.call((c) => c.lookupDomain(req.vm));
    } catch (e) {
      if (e instanceof LibvirtError && e.code === ErrorCode.NO_DOMAIN) {
        throw new DriverError(`VM ${req.vm} is not on ${req.from}`, "VM_NOT_ON_SOURCE", req.from);
      }
      throw toDriverError(e, req.from);
    }
    const offline = req.flags.includes("OFFLINE");
    if (!offline && !d.active) throw new DriverError(`VM ${req.vm} is shut off; only an offline (cold) move is possible`, "VM_NOT_RUNNING", req.from);
    if (offline && !d.persistent) throw new DriverError(`VM ${req.vm} is transient; an offline move needs a persistent definition`, "OPERATION_INVALID", req.from);
    const uuid = d.uuid;
    const handle = await LibvirtMigration.start({
      clock: this.clock,
      source: from,
      dest: to,
      uuid,
      request: req,
      completedEvent: (since) => {
        const ev = this.completed.get(uuid);
        return ev && ev.at >= since ? ev.params : undefined;
      },
    });
    // start() resolves after the job is visible; it may have ended already (a cold move takes milliseconds).
    this.migrations.set(uuid, handle);
    void handle.done.then(() => {
      if (this.migrations.get(uuid) === handle) this.migrations.delete(uuid);
    });
    return handle;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.links.values()].map((l) => l.close().catch(() => undefined)));
    await Promise.all([...this.proc.values()].map((p) => p.session.close()));
  }

  // ---------------------------------------------------------------- helpers

  /**
   * /proc load of a loadSource-proc host. SSH trouble does not make a host libvirt still answers for unreachable:
   * that round falls back to the sum of its domains (and the session reconnects with back-off).
   */
  private async readProc(host: string): Promise<HostLoadSample | undefined> {
    const proc = this.proc.get(host);
    if (!proc) return undefined;
    // A dropped link often hangs rather than fails (a reconnect waits out its handshake timeout): the sample
    // must not wait for it, or the whole host reads as unreachable though libvirt answers.
    const timer = new AbortController();
    const late = this.clock.sleep(PROC_TIMEOUT_MS, timer.signal).then(
      () => undefined,
      () => undefined,
    );
    try {
      return await Promise.race([proc.sampler.sample().catch(() => undefined), late]);
    } finally {
      timer.abort();
    }
  }

  private onEvent(_host: string, e: LibvirtEvent): void {
    if (e.type !== "job-completed") return;
    // operation 2/3 = migration in/out (virDomainJobOperation); other jobs (save, dump, …) are not ours.
    const op = numParam(e.params, "operation");
    if (op !== undefined && op !== 2 && op !== 3) return;
    const prev = this.completed.get(e.domain.uuid);
    // Prefer the source's view (it knows the downtime after post-copy); either host's beats none.
    if (!prev || op === 3 || prev.at < this.clock.now() - 1000) this.completed.set(e.domain.uuid, { at: this.clock.now(), params: e.params });
  }

  private link(host: HostId): HostLink {
    const l = this.links.get(host);
    if (!l) throw new DriverError(`unknown libvirt host ${host}`, "HOST_NOT_FOUND", host);
    return l;
  }

  private check(): void {
    if (this.closed) throw new DriverError(`driver ${this.name} is closed`, "DRIVER_CLOSED");
  }
}
