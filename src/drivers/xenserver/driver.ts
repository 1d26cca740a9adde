import type { ClusterSnapshot, Host, HostId, Vm, VmId } from "../../model/index.js";
import { hostId } from "../../model/index.js";
import type { Clock } from "../../util/clock.js";
import { DriverError } from "../driver.js";
import type { Driver, DriverCapabilities, MigrationHandle, MigrationRequest, Placement, VmLocation } from "../driver.js";
import type { VmDisk } from "./mapping.js";
import { BALLAST_DISABLED_KEY, isGuest, mapPool, vmDisks, vmHostRef, vmState } from "./mapping.js";
import { explainXapiError, STOP_AND_COPY_NOTE, XenMigration } from "./migration.js";
import type { DriverLog, PoolConnection } from "./pool.js";
import { describeError, xapiCode } from "./pool.js";
import type { HostRecord, NetworkRecord, PoolRecords, VifRecord, VmRecord } from "./records.js";
import { isRef, num } from "./records.js";

const MiB = 1024 * 1024;

interface VmAt {
  readonly pool: PoolConnection;
  readonly ref: string;
  readonly rec: VmRecord;
}

interface HostAt {
  readonly pool: PoolConnection;
  readonly ref: string;
  readonly rec: HostRecord;
}

/** Migration operations XAPI lists in VM.current_operations while a move is in progress. */
const MIGRATE_OPS = new Set(["pool_migrate", "migrate_send", "clean_shutdown", "hard_shutdown", "start_on"]);

/**
 * XenServer/XCP-ng pools through xen-api. Each pool is a shared-storage live-migration domain
 * (VM.pool_migrate); Storage XenMotion (VM.migrate_send) moves VMs with local ext disks between hosts and
 * pools; halted VMs move by affinity within a pool or by migrate_send. Hosts are named by name_label, VMs by
 * uuid (XAPI keeps a VM's uuid across pools).
 */
export class XenServerDriver implements Driver {
  readonly name = "xenserver";
  /** XAPI has no downtime, post-copy or pause levers and reports no dirty rate: the guard's ladder is wait → cancel. */
  readonly capabilities: DriverCapabilities = { setDowntime: false, postCopy: false, pauseGuest: false, dirtyRate: false };
  private readonly jobs = new Map<VmId, XenMigration>();
  private closed = false;
  /**
   * The event cache may lag XAPI at start-up (a task a killed instance left may just have ended) and after a
   * leftover task was cancelled: the next sample waits for it, or the planner would move a VM from where it was.
   */
  private cacheBehind = true;

  constructor(
    readonly pools: readonly PoolConnection[],
    private readonly clock: Clock,
    private readonly log?: DriverLog,
  ) {}

  private check(): void {
    if (this.closed) throw new DriverError(`driver ${this.name} is closed`, "DRIVER_CLOSED");
  }

  async sample(): Promise<ClusterSnapshot> {
    this.check();
    await Promise.all(this.pools.map((p) => p.ensureConnected()));
    if (this.cacheBehind) {
      this.cacheBehind = false;
      await Promise.all(this.pools.map((p) => p.syncCache()));
    }
    await Promise.all(this.pools.filter((p) => p.connected).map((p) => p.refreshLoad()));
    const hosts: Host[] = [];
    const vms: Vm[] = [];
    const seen = new Set<string>();
    const errors: string[] = [];
    for (const p of this.pools) {
      const r = p.records();
      if (!p.healthy) errors.push(`pool ${p.name}: ${p.error ?? "not connected"}`);
      if (!r) continue;
      const s = mapPool(r, { pool: p.name, hostCells: p.cfg.hostCells, reachable: p.healthy, load: p.load, ...(p.cfg.cell !== undefined && { cell: p.cfg.cell }) });
      const mine = new Set<string>();
      for (const h of s.hosts) {
        if (seen.has(h.name)) {
          this.log?.warn({ pool: p.name, host: h.name }, "host name used in two pools; the second is left out");
          continue;
        }
        seen.add(h.name);
        mine.add(h.name);
        hosts.push(h);
      }
      for (const v of s.vms) if (mine.has(v.host)) vms.push(v);
    }
    // Known hosts of an unreachable pool are reported unreachable; a pool never reached has none to report.
    if (hosts.length === 0 && errors.length > 0) {
      throw new DriverError(`no XenServer pool reachable: ${errors.join("; ")}`, "POOL_UNREACHABLE");
    }
    for (const e of errors) this.log?.warn({ error: e }, "XenServer pool unreachable");
    return { takenAt: new Date(this.clock.now()).toISOString(), hosts, vms };
  }

  private findVmCached(vm: VmId): VmAt | undefined {
    for (const pool of this.pools) {
      if (!pool.connected) continue;
      const o = pool.client().objects.all[vm];
      if (o?.$type === "VM") return { pool, ref: o.$ref, rec: o as unknown as VmRecord };
    }
    return undefined;
  }

  private findHost(name: string): HostAt | undefined {
    for (const pool of this.pools) {
      const r = pool.records();
      if (!r) continue;
      for (const [ref, rec] of r.host) if (rec.name_label === name) return { pool, ref, rec };
    }
    return undefined;
  }

  /** A fresh VM record from the pool that has the VM (not the event cache, which may lag a task's end). */
  private async freshVm(pool: PoolConnection, vm: VmId): Promise<{ ref: string; rec: VmRecord } | undefined> {
    const xapi = pool.client();
    let ref: string;
    try {
      ref = (await xapi.call("VM.get_by_uuid", vm)) as string;
    } catch (e) {
      const code = xapiCode(e);
      if (code === "UUID_INVALID" || code === "HANDLE_INVALID") return undefined;
      throw e;
    }
    return { ref, rec: (await xapi.call("VM.get_record", ref)) as VmRecord };
  }

  private hostName(pool: PoolConnection, r: PoolRecords, ref: string | undefined): HostId | undefined {
    if (ref === undefined) return undefined;
    const h = r.host.get(ref);
    return h ? hostId(h.name_label) : undefined;
  }

  private placementIn(pool: PoolConnection, r: PoolRecords, rec: VmRecord): Placement | undefined {
    const host = this.hostName(pool, r, vmHostRef(r, rec, vmDisks(r, rec)));
    return host === undefined ? undefined : { host, state: vmState(rec.power_state) };
  }

  async locate(vm: VmId): Promise<VmLocation> {
    this.check();
    const placements: Placement[] = [];
    const unreachable: string[] = [];
    for (const pool of this.pools) {
      if (!pool.connected) {
        unreachable.push(`${pool.name} (${pool.error ?? "not connected"})`);
        continue;
      }
      const found = await this.freshVm(pool, vm);
      const r = pool.records();
      if (!found || !r || !isGuest(found.rec)) continue;
      const p = this.placementIn(pool, r, found.rec);
      if (p) placements.push(p);
    }
    if (placements.length === 0 && unreachable.length > 0) {
      throw new DriverError(`cannot locate ${vm}: pool ${unreachable.join(", ")} unreachable`, "POOL_UNREACHABLE");
    }
    return { vm, placements };
  }

  async migrate(req: MigrationRequest): Promise<MigrationHandle> {
    this.check();
    const running = this.jobs.get(req.vm);
    if (running && !running.finished) throw new DriverError(`${req.vm} is already being migrated`, "MIGRATION_IN_PROGRESS");
    const cached = this.findVmCached(req.vm);
    if (!cached) throw new DriverError(`VM ${req.vm} is not in any connected pool`, "VM_NOT_FOUND");
    const src = cached.pool;
    const fresh = await this.freshVm(src, req.vm);
    const r = src.records();
    if (!fresh || !r) throw new DriverError(`VM ${req.vm} is not in pool ${src.name}`, "VM_NOT_FOUND");
    const at = this.placementIn(src, r, fresh.rec);
    if (at?.host !== req.from) {
      throw new DriverError(`VM ${req.vm} is on ${at?.host ?? "no host"}, not ${req.from}`, "VM_NOT_ON_SOURCE", req.from);
    }
    const dest = this.findHost(req.to);
    if (!dest) throw new DriverError(`destination host ${req.to} is in no configured pool`, "HOST_NOT_FOUND", req.to);
    const vm: VmAt = { pool: src, ref: fresh.ref, rec: fresh.rec };
    const disks = vmDisks(r, fresh.rec);
    const memMiB = Math.round(num(fresh.rec.memory_static_max) / MiB) || 0;
    if (fresh.rec.power_state === "Suspended") {
      throw new DriverError(`VM ${fresh.rec.name_label} is suspended: resume or shut it down before moving it`, "VM_BAD_POWER_STATE");
    }
    switch (req.kind) {
      case "live-shared":
        return this.poolMigrate(req, vm, dest, memMiB);
      case "live-block":
        return this.storageMotion(req, vm, dest, disks, memMiB);
      case "cold":
        return this.coldMove(req, vm, dest, disks);
      case "live-volume":
        throw new DriverError("volume-backed live migration is not available on XenServer", "UNSUPPORTED_KIND");
    }
  }

  private newJob(req: MigrationRequest, totalMiB: number, phase: "precopy" | "offline", note?: string): XenMigration {
    const job = new XenMigration({ vm: req.vm, kind: req.kind, totalMiB, phase, ...(note !== undefined && { note }) }, this.clock, (j) => {
      if (this.jobs.get(j.vm) === j) this.jobs.delete(j.vm);
    });
    this.jobs.set(req.vm, job);
    return job;
  }

  /** Shared-storage live migration within a pool: Async.VM.pool_migrate. */
  private async poolMigrate(req: MigrationRequest, vm: VmAt, dest: HostAt, memMiB: number): Promise<MigrationHandle> {
    if (dest.pool !== vm.pool) {
      throw new DriverError(`VM.pool_migrate stays within a pool: ${req.to} is in ${dest.pool.name}, the VM in ${vm.pool.name}`, "POOL_MISMATCH");
    }
    if (vm.rec.power_state !== "Running" && vm.rec.power_state !== "Paused") {
      throw new DriverError(`live migration needs a running VM (${vm.rec.name_label} is ${vm.rec.power_state})`, "VM_BAD_POWER_STATE");
    }
    const job = this.newJob(req, memMiB, "precopy", STOP_AND_COPY_NOTE);
    try {
      await job.startTask(vm.pool, "VM.pool_migrate", [vm.ref, dest.ref, { live: "true" }]);
    } catch (e) {
      job.finish(job.outcomeOf("VM.pool_migrate", e));
      throw new DriverError(explainXapiError("VM.pool_migrate", e), xapiCode(e) ?? "XAPI_CALL_FAILED", req.from);
    }
    void this.runSteps(job, "VM.pool_migrate", [vm.pool], () => job.awaitTask().then(() => undefined));
    return job;
  }

  /**
   * Runs the rest of a job in the background and settles it once the caches of the pools involved have caught
   * up, so the next sample agrees with where the VM is.
   */
  private async runSteps(
    job: XenMigration,
    first: string,
    pools: readonly PoolConnection[],
    steps: (setStep: (s: string) => void) => Promise<void>,
  ): Promise<void> {
    let step = first;
    let outcome;
    try {
      await steps((s) => (step = s));
      outcome = job.succeeded();
    } catch (e) {
      outcome = job.outcomeOf(step, e);
    }
    await Promise.all([...new Set(pools)].map((p) => p.syncCache()));
    job.finish(outcome);
  }

  /**
   * Why Storage XenMotion cannot move these disks, if it cannot: it moves only a VM's own disks on local
   * `ext` SRs (the seed's condition), never attached volumes.
   */
  private blockRefusal(vmName: string, disks: readonly VmDisk[]): string | undefined {
    const volumes = disks.filter((d) => d.cls === "volume").length;
    if (volumes > 0) return `Storage XenMotion cannot move ${vmName}: ${volumes} block volume(s) attached`;
    const other = disks.find((d) => d.cls !== "local" || d.sr.type !== "ext");
    if (other) {
      return `Storage XenMotion here moves only disks on local ext SRs; ${vmName} has a disk on SR ${other.sr.name_label} (type ${other.sr.type}${other.sr.shared ? ", shared" : ""})`;
    }
    return undefined;
  }

  /** The SR the VM's disks go to on the destination: its pool's default SR (sr_matching_filter=default-sr:true). */
  private destinationSr(dest: HostAt): string {
    const r = dest.pool.records();
    if (!r) throw new DriverError(`pool ${dest.pool.name} is unreachable`, "POOL_UNREACHABLE");
    const def = r.pool.default_SR;
    const sr = r.SR.get(def);
    const attached = sr && (sr.PBDs ?? []).some((p) => r.PBD.get(p)?.host === dest.ref);
    if (!isRef(def) || !sr || !attached) {
      throw new DriverError(`pool ${dest.pool.name} has no default SR that ${dest.rec.name_label} can reach`, "NO_DEFAULT_SR", hostId(dest.rec.name_label));
    }
    return def;
  }

  /** VIFs mapped to the destination pool's networks by name; the migration network is the first VIF's. */
  private networkMaps(vm: VmAt, dest: HostAt): { vifMap: Record<string, string>; network: string } {
    const sr = vm.pool.records();
    const dr = dest.pool.records();
    if (!sr || !dr) throw new DriverError("pool records unavailable", "POOL_UNREACHABLE");
    const byName = new Map<string, string>();
    for (const [ref, n] of dr.network) if (!byName.has(n.name_label)) byName.set(n.name_label, ref);
    const vifMap: Record<string, string> = {};
    let first: string | undefined;
    for (const vifRef of vm.rec.VIFs ?? []) {
      const vif: VifRecord | undefined = sr.VIF.get(vifRef);
      const net: NetworkRecord | undefined = vif && sr.network.get(vif.network);
      if (!net) continue;
      const target = byName.get(net.name_label);
      if (!target) {
        throw new DriverError(`pool ${dest.pool.name} has no network named "${net.name_label}" for ${vm.rec.name_label}'s VIF`, "VM_REQUIRES_NETWORK");
      }
      vifMap[vifRef] = target;
      first ??= target;
    }
    const network = first ?? [...dr.network.entries()].sort((a, b) => a[1].name_label.localeCompare(b[1].name_label))[0]?.[0];
    if (!network) throw new DriverError(`pool ${dest.pool.name} has no network`, "VM_REQUIRES_NETWORK");
    return { vifMap, network };
  }

  /** Storage XenMotion: host.migrate_receive on the destination, VM.assert_can_migrate, Async.VM.migrate_send. */
  private async sendPrepare(vm: VmAt, dest: HostAt, disks: readonly VmDisk[], live: boolean): Promise<{ args: unknown[] }> {
    const refusal = this.blockRefusal(vm.rec.name_label, disks);
    if (refusal) throw new DriverError(refusal, disks.some((d) => d.cls === "volume") ? "VM_HAS_VOLUMES" : "UNSUPPORTED_STORAGE");
    const sr = this.destinationSr(dest);
    const vdiMap = Object.fromEntries(disks.map((d) => [d.vdiRef, sr]));
    const { vifMap, network } = this.networkMaps(vm, dest);
    let receive: unknown;
    try {
      receive = await dest.pool.client().call("host.migrate_receive", dest.ref, network, {});
    } catch (e) {
      throw new DriverError(explainXapiError(`host.migrate_receive on ${dest.pool.name}`, e), xapiCode(e) ?? "XAPI_CALL_FAILED");
    }
    const args = [vm.ref, receive, live, vdiMap, vifMap, {}];
    try {
      await vm.pool.client().call("VM.assert_can_migrate", ...args);
    } catch (e) {
      throw new DriverError(explainXapiError("VM.assert_can_migrate", e), xapiCode(e) ?? "XAPI_CALL_FAILED");
    }
    return { args };
  }

  private async storageMotion(req: MigrationRequest, vm: VmAt, dest: HostAt, disks: readonly VmDisk[], memMiB: number): Promise<MigrationHandle> {
    if (vm.rec.power_state !== "Running" && vm.rec.power_state !== "Paused") {
      throw new DriverError(`live migration needs a running VM (${vm.rec.name_label} is ${vm.rec.power_state})`, "VM_BAD_POWER_STATE");
    }
    const { args } = await this.sendPrepare(vm, dest, disks, true);
    const diskMiB = disks.reduce((s, d) => s + d.sizeMiB, 0);
    const job = this.newJob(req, memMiB + diskMiB, "precopy", STOP_AND_COPY_NOTE);
    try {
      await job.startTask(vm.pool, "VM.migrate_send", args);
    } catch (e) {
      job.finish(job.outcomeOf("VM.migrate_send", e));
      throw new DriverError(explainXapiError("VM.migrate_send", e), xapiCode(e) ?? "XAPI_CALL_FAILED", req.from);
    }
    void this.runSteps(job, "VM.migrate_send", [vm.pool, dest.pool], () => job.awaitTask().then(() => undefined));
    return job;
  }

  /**
   * Cold move: a running VM is shut down cleanly, moved, and started on the destination. Within a pool a VM
   * whose disks are all shared moves by VM.set_affinity (a halted VM has no resident host in XAPI); otherwise
   * its disks go by VM.migrate_send (Storage XenMotion of a halted VM) and affinity is set on arrival.
   */
  private async coldMove(req: MigrationRequest, vm: VmAt, dest: HostAt, disks: readonly VmDisk[]): Promise<MigrationHandle> {
    const samePoolShared = dest.pool === vm.pool && disks.every((d) => d.cls !== "local");
    if (!samePoolShared) {
      const refusal = this.blockRefusal(vm.rec.name_label, disks);
      if (refusal) throw new DriverError(refusal, disks.some((d) => d.cls === "volume") ? "VM_HAS_VOLUMES" : "UNSUPPORTED_STORAGE");
    }
    const wasRunning = vm.rec.power_state === "Running" || vm.rec.power_state === "Paused";
    const diskMiB = samePoolShared ? 0 : disks.reduce((s, d) => s + d.sizeMiB, 0);
    const job = this.newJob(req, Math.max(1, diskMiB), "offline");
    const src = vm.pool;
    let halted = false;
    const first = wasRunning ? "VM.clean_shutdown" : samePoolShared ? "VM.set_affinity" : "VM.migrate_send";
    try {
      if (wasRunning) {
        await job.startTask(src, "VM.clean_shutdown", [vm.ref]);
      } else if (!samePoolShared) {
        const { args } = await this.sendPrepare(vm, dest, disks, false);
        await job.startTask(src, "VM.migrate_send", args);
      }
    } catch (e) {
      job.finish(job.outcomeOf(first, e));
      if (e instanceof DriverError) throw e;
      throw new DriverError(explainXapiError(first, e), xapiCode(e) ?? "XAPI_CALL_FAILED", req.from);
    }
    void this.runSteps(job, first, [src, dest.pool], async (step) => {
      if (wasRunning) {
        await job.awaitTask();
        halted = true;
        if (!samePoolShared) {
          step("VM.migrate_send");
          const { args } = await this.sendPrepare(vm, dest, disks, false);
          await job.startTask(src, "VM.migrate_send", args);
          await job.awaitTask();
        }
      } else if (!samePoolShared) {
        await job.awaitTask();
      }
      step("VM.set_affinity");
      const arrived = dest.pool === src ? vm.ref : (await this.freshVm(dest.pool, req.vm))?.ref;
      if (!arrived) throw new Error(`${req.vm} did not appear in pool ${dest.pool.name}`);
      await dest.pool.client().call("VM.set_affinity", arrived, dest.ref);
      if (wasRunning) {
        step("VM.start_on");
        await job.startTask(dest.pool, "VM.start_on", [arrived, dest.ref, false, false]);
        await job.awaitTask();
      }
    })
      // A running VM that was shut down for a move that then failed or was aborted is started where it was.
      .then(() => (halted ? this.restartIfNotMoved(job, req) : undefined))
      .catch((e: unknown) => this.log?.warn({ vm: req.vm, error: describeError(e) }, "could not restart VM on its source after a failed cold move"));
    return job;
  }

  private async restartIfNotMoved(job: XenMigration, req: MigrationRequest): Promise<void> {
    if ((await job.done).status === "succeeded") return;
    await this.start(req.vm, req.from);
  }

  /**
   * VM.start_on. XAPI boots nothing on a disabled host, and a drained source is one (a guest with local disks
   * can run nowhere else): a host ballast disabled is enabled for the start and disabled again.
   */
  private async startOn(h: HostAt, vmRef: string): Promise<void> {
    const xapi = h.pool.client();
    const rec = (await xapi.call("host.get_record", h.ref)) as HostRecord;
    const ours = !rec.enabled && rec.other_config?.[BALLAST_DISABLED_KEY] === "true";
    if (ours) await xapi.call("host.enable", h.ref);
    try {
      await xapi.call("VM.start_on", vmRef, h.ref, false, false);
    } finally {
      // A crash in between leaves the host enabled with ballast's mark: its flag disables it again at the next start.
      if (ours) await xapi.call("host.disable", h.ref);
    }
  }

  async start(vm: VmId, host: HostId): Promise<void> {
    this.check();
    const h = this.findHost(host);
    const found = h && (await this.freshVm(h.pool, vm));
    if (!h || !found) throw new DriverError(`VM ${vm} is not in the pool of ${host}`, "VM_NOT_ON_HOST", host);
    if (found.rec.power_state !== "Halted") return;
    await this.startOn(h, found.ref);
  }

  async cancel(vm: VmId): Promise<void> {
    this.check();
    const job = this.jobs.get(vm);
    if (job && !job.finished) {
      await job.abort(`cancelled by driver ${this.name}`);
      return;
    }
    // A migration started by a previous daemon instance: XAPI lists its task in VM.current_operations.
    for (const pool of this.pools) {
      if (!pool.connected) continue;
      const found = await this.freshVm(pool, vm);
      if (!found) continue;
      for (const [task, op] of Object.entries(found.rec.current_operations ?? {})) {
        if (!MIGRATE_OPS.has(op)) continue;
        this.cacheBehind = true;
        await pool
          .client()
          .call("task.cancel", task)
          .catch((e: unknown) => {
            if (xapiCode(e) !== "HANDLE_INVALID") throw e;
          });
      }
    }
  }

  async resume(vm: VmId, host: HostId): Promise<void> {
    this.check();
    const loc = await this.locate(vm);
    const p = loc.placements.find((x) => x.host === host);
    if (!p) throw new DriverError(`VM ${vm} is not on ${host}`, "VM_NOT_ON_HOST", host);
    if (p.state !== "paused") return;
    const h = this.findHost(host);
    const found = h && (await this.freshVm(h.pool, vm));
    if (!h || !found) throw new DriverError(`VM ${vm} is not on ${host}`, "VM_NOT_ON_HOST", host);
    await h.pool.client().call("VM.unpause", found.ref);
  }

  /**
   * host.disable while a host is drained (XAPI then places nothing new there), host.enable after, when the
   * pool's disableOnDrain is set. ballast marks hosts it disabled (other_config ballast-disabled=true, kept by
   * XAPI across daemon restarts), so a host someone else disabled is neither re-enabled nor taken over.
   */
  async setMaintenance(host: HostId, on: boolean): Promise<void> {
    this.check();
    const h = this.findHost(host);
    if (!h) throw new DriverError(`host ${host} is in no configured pool`, "HOST_NOT_FOUND", host);
    if (!h.pool.cfg.disableOnDrain) return;
    const xapi = h.pool.client();
    const rec = (await xapi.call("host.get_record", h.ref)) as HostRecord;
    const ours = rec.other_config?.[BALLAST_DISABLED_KEY] === "true";
    if (on) {
      if (!rec.enabled && !ours) {
        this.log?.info({ host, pool: h.pool.name }, "host already disabled in XAPI by someone else; left as it is");
        return;
      }
      // Mark first: a crash between the two calls leaves a mark on an enabled host, which undrain clears harmlessly.
      if (!ours) await xapi.call("host.add_to_other_config", h.ref, BALLAST_DISABLED_KEY, "true");
      if (rec.enabled) await xapi.call("host.disable", h.ref);
      this.log?.info({ host, pool: h.pool.name }, "host disabled in XAPI for maintenance");
    } else {
      if (!ours) return;
      if (!rec.enabled) await xapi.call("host.enable", h.ref);
      await xapi.call("host.remove_from_other_config", h.ref, BALLAST_DISABLED_KEY);
      this.log?.info({ host, pool: h.pool.name }, "host re-enabled in XAPI after maintenance");
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.pools.map((p) => p.close()));
  }
}
