import type { SimConfig } from "../../config/schema.js";
import { emaWeight, footprint, type ClusterSnapshot, type Host, type HostId, type Vm, type VmId, type VmState } from "../../model/index.js";
import type { Clock } from "../../util/clock.js";
import { VirtualClock } from "../../util/clock.js";
import { hash01 } from "../../util/rng.js";
import { DriverError } from "../driver.js";
import type { GuardAction, JobStats, MigrationRequest, Placement, VmLocation } from "../driver.js";
import { buildInventory } from "./inventory.js";
import type { SimHost, SimVm } from "./inventory.js";
import { BURST_SLOT_MS, burstingAt, demandAt, SALT } from "./load-model.js";
import { SimJob } from "./migration-model.js";
import type { JobMode, JobPhase } from "./migration-model.js";

export interface SimClusterOptions {
  /**
   * Settle migrations with `clock.sleep` timers, so `done` resolves when the clock reaches the job's end even if
   * nobody asks (RealClock, ManualClock.advance). Default: on, except for a VirtualClock, whose sleep would move
   * time itself; there jobs settle on the next query (stats, sample, locate, …) at or after their end.
   */
  readonly timers?: boolean;
}

/** An in-flight migration, as `jobs()` lists it. */
export interface SimJobInfo {
  readonly id: number;
  readonly vm: VmId;
  readonly from: HostId;
  readonly to: HostId;
  readonly kind: MigrationRequest["kind"];
  readonly mode: JobMode;
  readonly phase: JobPhase;
  readonly startedAt: number;
  readonly guestPausedByGuard: boolean;
}

interface Timer {
  at: number;
  ctl: AbortController;
}

/**
 * The simulated cluster: seeded inventory, CPU demand that is a pure function of (seed, VM, time), and migration
 * jobs that progress with the injected clock. It lives outside any driver: drivers are thin adapters, and a job
 * keeps running here when the driver (or daemon) that started it is gone, as on a real cluster.
 */
export class SimCluster {
  readonly seed: number;
  private readonly hosts: SimHost[];
  private readonly vms: SimVm[];
  private readonly hostByName = new Map<string, SimHost>();
  private readonly vmById = new Map<string, SimVm>();
  private readonly active = new Map<number, SimJob>();
  private readonly timers = new Map<SimJob, Timer>();
  private readonly injectedFailures = new Map<number, string>();
  private readonly useTimers: boolean;
  private readonly wavePeriodMs: number;
  private readonly jobListeners: ((job: SimJob) => void)[] = [];
  private lastSampleAt: number | null = null;
  private jobSeq = 0;
  private disposed = false;

  constructor(
    readonly config: SimConfig,
    readonly clock: Clock,
    options: SimClusterOptions = {},
  ) {
    this.seed = config.seed;
    const inv = buildInventory(config);
    this.hosts = inv.hosts;
    this.vms = inv.vms;
    for (const h of this.hosts) this.hostByName.set(h.name, h);
    for (const v of this.vms) this.vmById.set(v.id, v);
    this.useTimers = options.timers ?? !(clock instanceof VirtualClock);
    this.wavePeriodMs = config.wavePeriodMinutes * 60_000;
  }

  // ---------------------------------------------------------------- inventory and load

  hostNames(): HostId[] {
    return this.hosts.map((h) => h.name);
  }

  vmIds(): VmId[] {
    return this.vms.filter((v) => !v.removed).map((v) => v.id);
  }

  /** Instantaneous CPU demand of a VM in host CPUs at t (default now); 0 unless running. */
  demandOf(vm: VmId, t = this.clock.now()): number {
    return this.demand(this.vmOrThrow(vm), t);
  }

  private demand(v: SimVm, t: number): number {
    if (v.state !== "running") return 0;
    if (v.demandOverride !== null) return v.demandOverride;
    const slot = Math.floor(t / BURST_SLOT_MS);
    if (slot !== v.burstSlot) {
      v.burstSlot = slot;
      v.bursting = burstingAt(this.seed, v.profile, t);
    }
    const d = demandAt(this.seed, v.profile, t, this.wavePeriodMs, v.bursting);
    return v.boost === 0 ? d : Math.min(v.vcpus, d + v.boost);
  }

  /** Memory dirty rate of the guest while it runs, MiB/s. */
  dirtyRateOf(vm: VmId): number {
    const v = this.vmOrThrow(vm);
    return v.dirtyOverride ?? v.baseDirtyRate;
  }

  /**
   * Samples every reachable host and its VMs at clock.now(). CPU loads are smoothed (EMA, τ = 60 s) across
   * successive samples; the first sample reports raw demand. A host's load is the sum of its VMs' smoothed
   * loads over its CPUs (clamped to 1): the EMA of the raw sum, except that a VM's load leaves with it when it
   * moves. Unreachable hosts are listed with `reachable: false` and their last load; their VMs are not listed.
   */
  sample(): ClusterSnapshot {
    this.sync();
    const t = this.clock.now();
    const w = this.lastSampleAt === null ? 1 : emaWeight(t - this.lastSampleAt);
    this.lastSampleAt = t;
    const nh = this.hosts.length;
    const cpuSum = new Float64Array(nh);
    const memSum = new Float64Array(nh);
    const vmsOut: Vm[] = [];
    for (const v of this.vms) {
      if (v.removed) continue;
      const raw = this.demand(v, t);
      const s = Number.isNaN(v.smoothed) ? raw : v.smoothed + w * (raw - v.smoothed);
      v.smoothed = s;
      const host = this.hosts[v.host] as SimHost;
      if (!host.reachable) continue;
      const cpuLoad = Math.round(s * 1000) / 1000;
      const running = v.state === "running";
      const dirtyRateMiBps = running ? (v.dirtyOverride ?? v.baseDirtyRate) : 0;
      // One literal shape for every VM keeps V8's objects fast (a spread or delete would not); an absent
      // disk size stays undefined and is left out of JSON.
      const vm: Vm = {
        id: v.id,
        name: v.id,
        host: host.name,
        state: v.state,
        vcpus: v.vcpus,
        memoryMiB: v.memoryMiB,
        cpuLoad,
        storage: v.storage,
        volumes: v.volumes,
        dirtyRateMiBps,
        diskMiB: v.diskMiB,
        tags: v.tags,
      };
      const fp = footprint(vm);
      cpuSum[v.host] = (cpuSum[v.host] ?? 0) + fp.cpus;
      memSum[v.host] = (memSum[v.host] ?? 0) + fp.memoryMiB;
      vmsOut.push(vm);
    }
    const hostsOut: Host[] = this.hosts.map((h) => {
      if (h.reachable) h.cpuLoad = Math.round(Math.min(1, (cpuSum[h.index] ?? 0) / h.cpus) * 10000) / 10000;
      return {
        name: h.name,
        hypervisor: "sim",
        cell: h.cell,
        pool: null,
        cpus: h.cpus,
        memoryMiB: h.memoryMiB,
        cpuLoad: h.cpuLoad,
        memoryUsedMiB: h.reachable ? h.overheadMiB + (memSum[h.index] ?? 0) : this.memoryUsed(h),
        maintenance: false,
        reachable: h.reachable,
        sharedStorage: h.sharedStorage,
      };
    });
    return { takenAt: new Date(t).toISOString(), hosts: hostsOut, vms: vmsOut };
  }

  private memoryUsed(h: SimHost): number {
    let used = h.overheadMiB;
    for (const v of this.vms) if (!v.removed && v.host === h.index && v.state !== "shutoff") used += v.memoryMiB;
    return used;
  }

  /** Memory promised to migrations arriving at the host. */
  private memoryIncoming(h: SimHost): number {
    let mib = 0;
    for (const job of this.active.values()) {
      if (job.plan.to === h.name && job.plan.guestState !== "shutoff") mib += job.plan.ramMiB;
    }
    return mib;
  }

  // ---------------------------------------------------------------- locate

  /** Every host the VM is defined on (reachable or not: this is the simulator's truth). */
  vmPlacements(vm: VmId): Placement[] {
    this.sync();
    const v = this.vmById.get(vm);
    if (!v || v.removed) return [];
    return [{ host: (this.hosts[v.host] as SimHost).name, state: v.state }];
  }

  /** What a driver can see: throws HOST_UNREACHABLE when the VM is on a host that cannot be asked. */
  locate(vm: VmId): VmLocation {
    this.sync();
    const v = this.vmById.get(vm);
    if (!v || v.removed) {
      const down = this.hosts.find((h) => !h.reachable);
      if (down) throw new DriverError(`${vm} not found on reachable hosts; ${down.name} is unreachable`, "HOST_UNREACHABLE", down.name);
      return { vm, placements: [] };
    }
    const host = this.hosts[v.host] as SimHost;
    if (!host.reachable) throw new DriverError(`cannot tell where ${vm} is: ${host.name} is unreachable`, "HOST_UNREACHABLE", host.name);
    return { vm, placements: [{ host: host.name, state: v.state }] };
  }

  // ---------------------------------------------------------------- migrations

  /** Validates the request the way libvirt would and starts the job. Throws DriverError on refusal. */
  startMigration(req: MigrationRequest): SimJob {
    this.sync();
    if (this.disposed) throw new DriverError("the simulated cluster has been disposed", "DRIVER_CLOSED");
    const v = this.vmById.get(req.vm);
    if (!v || v.removed) throw new DriverError(`VM ${req.vm} does not exist`, "VM_NOT_FOUND");
    const from = this.hostByName.get(req.from);
    if (!from) throw new DriverError(`unknown source host ${req.from}`, "HOST_NOT_FOUND", req.from);
    const to = this.hostByName.get(req.to);
    if (!to) throw new DriverError(`unknown destination host ${req.to}`, "HOST_NOT_FOUND", req.to);
    if (!from.reachable) throw new DriverError(`source host ${from.name} is unreachable`, "HOST_UNREACHABLE", from.name);
    if (!to.reachable) throw new DriverError(`destination host ${to.name} is unreachable`, "HOST_UNREACHABLE", to.name);
    const here = this.hosts[v.host] as SimHost;
    if (here !== from) throw new DriverError(`VM ${v.id} is on ${here.name}, not on ${from.name}`, "VM_NOT_ON_SOURCE", from.name);
    if (from === to) throw new DriverError(`VM ${v.id} is already on ${to.name}`, "SAME_HOST", to.name);
    if (this.active.has(v.index)) throw new DriverError(`VM ${v.id} already has a migration job running`, "MIGRATION_IN_PROGRESS");
    if (from.cell !== to.cell) {
      throw new DriverError(`${from.name} (cell ${from.cell}) and ${to.name} (cell ${to.cell}) are in different cells`, "CROSS_CELL", to.name);
    }
    if (!Number.isFinite(req.maxDowntimeMs) || req.maxDowntimeMs <= 0) {
      throw new DriverError(`invalid maxDowntimeMs ${req.maxDowntimeMs}`, "INVALID_ARGUMENT");
    }
    if (req.bandwidthMiBps !== undefined && !(Number.isFinite(req.bandwidthMiBps) && req.bandwidthMiBps > 0)) {
      throw new DriverError(`invalid bandwidthMiBps ${req.bandwidthMiBps}`, "INVALID_ARGUMENT");
    }

    const offline = req.kind === "cold" || req.flags.includes("OFFLINE");
    const mode: JobMode = offline ? "offline" : req.flags.includes("LIVE") ? "live" : "suspend";
    if (!offline && v.state === "shutoff") {
      throw new DriverError(`VM ${v.id} is shut off; only an offline (cold) move is possible`, "VM_NOT_RUNNING");
    }
    const storage = v.storage;
    const mountsShared = (h: SimHost): boolean => storage.kind === "shared" && h.sharedStorage.includes(storage.id);
    let diskMiB = 0;
    switch (req.kind) {
      case "live-shared":
      case "live-volume":
        if (storage.kind === "local") {
          throw new DriverError(`VM ${v.id} has local disks: a ${req.kind} migration needs shared storage (use live-block)`, "STORAGE_NOT_SHARED");
        }
        if (req.kind === "live-shared" && storage.kind !== "shared") {
          throw new DriverError(`VM ${v.id} is volume-backed, not on shared storage: use live-volume`, "KIND_MISMATCH");
        }
        if (storage.kind === "shared" && (!mountsShared(from) || !mountsShared(to))) {
          throw new DriverError(`${to.name} does not mount shared storage ${storage.id} of VM ${v.id}`, "SHARED_STORAGE_MISMATCH", to.name);
        }
        break;
      case "live-block":
        if (!req.flags.includes("NON_SHARED_DISK")) {
          throw new DriverError(`live-block migration of ${v.id} needs the NON_SHARED_DISK flag`, "FLAGS_INVALID");
        }
        if (storage.kind === "shared") {
          throw new DriverError(`VM ${v.id} is on shared storage ${storage.id}: block migration would copy it onto itself`, "KIND_MISMATCH");
        }
        diskMiB = v.diskMiB ?? 0;
        break;
      case "cold":
        if (storage.kind === "shared" && !mountsShared(to)) {
          throw new DriverError(`${to.name} does not mount shared storage ${storage.id} of VM ${v.id}`, "SHARED_STORAGE_MISMATCH", to.name);
        }
        diskMiB = storage.kind === "local" ? (v.diskMiB ?? 0) : 0;
        break;
    }
    if (offline && req.kind !== "cold" && storage.kind === "local") diskMiB = v.diskMiB ?? 0;
    if (v.state !== "shutoff") {
      const free = to.memoryMiB - this.memoryUsed(to) - this.memoryIncoming(to);
      if (free < v.memoryMiB) {
        throw new DriverError(
          `${to.name} has ${Math.floor(free)} MiB free, VM ${v.id} needs ${v.memoryMiB} MiB`,
          "HOST_NOT_ENOUGH_FREE_MEMORY",
          to.name,
        );
      }
    }

    const now = this.clock.now();
    const id = ++this.jobSeq;
    const bandwidthMiBps = Math.min(this.config.bandwidthMiBps, req.bandwidthMiBps ?? Infinity);
    const overheadMs = Math.round(this.config.migrationOverheadSec * 1000);
    const copyMs = Math.ceil(((diskMiB + (offline ? 0 : v.memoryMiB)) * 1000) / bandwidthMiBps);
    let failAt: number | null = null;
    let failMessage = "";
    const injected = this.injectedFailures.get(v.index);
    if (injected !== undefined) {
      this.injectedFailures.delete(v.index);
      failAt = now + overheadMs + Math.max(1, Math.floor(copyMs / 2));
      failMessage = injected;
    } else if (hash01(this.seed, SALT.failure, v.index, id) < this.config.migrationFailureRate) {
      failAt = now + overheadMs + Math.max(1, Math.floor(hash01(this.seed, SALT.failurePoint, v.index, id) * copyMs));
      failMessage = "simulated hypervisor failure: migration job failed part-way (operation failed: job 'migration out' failed)";
    }
    const job = new SimJob(
      {
        id,
        vm: v.id,
        from: from.name,
        to: to.name,
        kind: req.kind,
        flags: [...req.flags],
        mode,
        ramMiB: v.memoryMiB,
        diskMiB,
        bandwidthMiBps,
        maxDowntimeMs: req.maxDowntimeMs,
        overheadMs,
        startedAt: now,
        guestState: v.state,
        failAt,
        failMessage,
      },
      {
        dirtyRate: () => v.dirtyOverride ?? v.baseDirtyRate,
        placeGuest: (where, state) => {
          v.host = where === "source" ? from.index : to.index;
          v.state = state;
        },
        ended: (j) => {
          this.active.delete(v.index);
          this.disarm(j);
          for (const listener of this.jobListeners) listener(j);
        },
      },
    );
    this.active.set(v.index, job);
    this.sync();
    return job;
  }

  /** The in-flight job of a VM, if any. */
  job(vm: VmId): SimJob | undefined {
    this.sync();
    const v = this.vmById.get(vm);
    return v ? this.active.get(v.index) : undefined;
  }

  /** Migrations in flight. */
  jobs(): SimJobInfo[] {
    this.sync();
    return [...this.active.values()].map((j) => ({
      id: j.plan.id,
      vm: j.plan.vm,
      from: j.plan.from,
      to: j.plan.to,
      kind: j.plan.kind,
      mode: j.plan.mode,
      phase: j.phase,
      startedAt: j.plan.startedAt,
      guestPausedByGuard: j.guestPausedByGuard,
    }));
  }

  jobStats(job: SimJob): JobStats | null {
    this.sync();
    return job.stats(this.clock.now());
  }

  act(job: SimJob, action: GuardAction): void {
    this.sync();
    job.act(action, this.clock.now());
    this.sync();
  }

  /** Aborts any job of the VM (a no-op when there is none). Throws POSTCOPY_NO_ABORT for a post-copy job. */
  cancel(vm: VmId, reason = "cancelled"): void {
    this.sync();
    const v = this.vmById.get(vm);
    const job = v ? this.active.get(v.index) : undefined;
    if (!job) return;
    job.abort(reason, this.clock.now());
    this.sync();
  }

  /** Resumes a paused guest on host; a no-op for a running one. */
  resume(vm: VmId, host: HostId): void {
    this.sync();
    const v = this.vmById.get(vm);
    if (!v || v.removed) throw new DriverError(`VM ${vm} does not exist`, "VM_NOT_FOUND");
    const h = this.hostByName.get(host);
    if (!h) throw new DriverError(`unknown host ${host}`, "HOST_NOT_FOUND", host);
    if (!h.reachable) throw new DriverError(`host ${host} is unreachable`, "HOST_UNREACHABLE", host);
    if (v.host !== h.index) throw new DriverError(`VM ${vm} is not on ${host}`, "VM_NOT_ON_HOST", host);
    if (v.state === "shutoff") throw new DriverError(`VM ${vm} is shut off`, "VM_NOT_RUNNING", host);
    const job = this.active.get(v.index);
    if (job) job.resumeGuest(this.clock.now());
    else v.state = "running";
    this.sync();
  }

  // ---------------------------------------------------------------- fault and test hooks

  /** An unreachable host is sampled as such; migrations to or from it are refused, and running ones fail. */
  setHostReachable(host: HostId, reachable: boolean): void {
    this.sync();
    const h = this.hostByName.get(host);
    if (!h) throw new Error(`sim: unknown host ${host}`);
    h.reachable = reachable;
    if (!reachable) {
      const t = this.clock.now();
      for (const job of [...this.active.values()]) {
        if (job.plan.from === host || job.plan.to === host) job.fail(`connection to ${host} lost during migration`, t);
      }
    }
    this.sync();
  }

  /** Changes what shared storage a host mounts (a lost NFS mount, a host left out of a pool's SR). */
  setSharedStorage(host: HostId, ids: readonly string[]): void {
    const h = this.hostByName.get(host);
    if (!h) throw new Error(`sim: unknown host ${host}`);
    h.sharedStorage = Object.freeze([...ids]);
  }

  /** Overrides a VM's memory dirty rate (null restores the seeded one). */
  setDirtyRate(vm: VmId, mibps: number | null): void {
    this.sync();
    this.vmOrThrow(vm).dirtyOverride = mibps;
  }

  /** Adds CPU demand to a VM on top of the model: `share` of its vCPUs (0 ends the boost). Demand stays within its vCPUs. */
  setBoost(vm: VmId, share: number): void {
    const v = this.vmOrThrow(vm);
    v.boost = Math.max(0, share) * v.vcpus;
  }

  /** VMs carrying the tag. */
  vmsTagged(tag: string): VmId[] {
    return this.vms.filter((v) => !v.removed && v.tags.includes(tag)).map((v) => v.id);
  }

  /** VMs placed on the host now. */
  vmsOn(host: HostId): VmId[] {
    this.sync();
    const h = this.hostByName.get(host);
    if (!h) throw new Error(`sim: unknown host ${host}`);
    return this.vms.filter((v) => !v.removed && v.host === h.index).map((v) => v.id);
  }

  /** Calls `listener` with every migration job as it ends (any outcome, any driver): the ground truth for reports. */
  onJobEnded(listener: (job: SimJob) => void): void {
    this.jobListeners.push(listener);
  }

  /** Overrides a VM's CPU demand in host CPUs (null restores the seeded model). */
  setDemand(vm: VmId, cpus: number | null): void {
    const v = this.vmOrThrow(vm);
    v.demandOverride = cpus === null ? null : Math.max(0, Math.min(v.vcpus, cpus));
  }

  /** The VM's next migration fails part-way with this message. */
  injectFailure(vm: VmId, message = "injected failure: migration job failed part-way"): void {
    this.injectedFailures.set(this.vmOrThrow(vm).index, message);
  }

  /** The VM vanishes (a "lost" VM for reconciliation tests). Any job of it is aborted first. */
  removeVm(vm: VmId): void {
    const v = this.vmOrThrow(vm);
    this.cancel(vm, "VM removed");
    v.removed = true;
  }

  /** Sets a VM's power state directly (shut off, start, pause, outside any migration). */
  setVmState(vm: VmId, state: VmState): void {
    this.sync();
    const v = this.vmOrThrow(vm);
    if (this.active.has(v.index)) throw new Error(`sim: ${vm} is migrating`);
    v.state = state;
  }

  /** Earliest time something happens on its own (a job's pass end, switch-over, failure), or null when idle. */
  nextEventAt(): number | null {
    let at = Infinity;
    for (const j of this.active.values()) at = Math.min(at, j.nextEventAt());
    return at === Infinity ? null : at;
  }

  /** Brings every job up to clock.now() (every query does this itself). */
  sync(): void {
    const t = this.clock.now();
    for (const job of [...this.active.values()]) job.advanceTo(t);
    if (this.useTimers && !this.disposed) for (const job of this.active.values()) this.arm(job);
  }

  /** Stops the timers (a RealClock's would keep the process alive). Jobs stay where they are. */
  dispose(): void {
    this.disposed = true;
    for (const job of [...this.timers.keys()]) this.disarm(job);
  }

  private arm(job: SimJob): void {
    const at = job.nextEventAt();
    const cur = this.timers.get(job);
    if (cur && cur.at === at) return;
    cur?.ctl.abort();
    const ctl = new AbortController();
    this.timers.set(job, { at, ctl });
    this.clock.sleep(Math.max(0, at - this.clock.now()), ctl.signal).then(
      () => {
        if (this.timers.get(job)?.ctl !== ctl) return;
        this.timers.delete(job);
        this.sync();
      },
      () => undefined,
    );
  }

  private disarm(job: SimJob): void {
    const cur = this.timers.get(job);
    if (!cur) return;
    this.timers.delete(job);
    cur.ctl.abort();
  }

  private vmOrThrow(vm: VmId): SimVm {
    const v = this.vmById.get(vm);
    if (!v || v.removed) throw new Error(`sim: unknown VM ${vm}`);
    return v;
  }
}
