/**
 * VM and host operations with XAPI's checks and error codes. Each validates up front (so Async calls fail
 * their task at once), reserves what XAPI reserves, and returns the TaskJob that completes it in simulated time.
 */
import type { SimContext } from "./context.js";
import { XapiFault, fault } from "./errors.js";
import { newRef, vdiRecord, type DiskCopy, type SimPool } from "./pool.js";
import type { TaskJob } from "./tasks.js";
import { NULL_REF, bytesToMib, int64, refList, str, type XRecord } from "./values.js";

const BOOT_MS = 500;
const SHUTDOWN_MS = 300;


export function asString(v: unknown, what: string): string {
  if (typeof v !== "string") throw fault.invalidValue(what, JSON.stringify(v) ?? String(v));
  return v;
}

function asStringMap(v: unknown, what: string): Record<string, string> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw fault.invalidValue(what, JSON.stringify(v) ?? "");
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asString(x, what)]));
}

/** A guest VM of the pool, not busy with another operation. */
function guestVm(pool: SimPool, ref: string): XRecord {
  const vm = pool.store.getOf("VM", ref);
  if (vm.is_a_template === true || vm.is_control_domain === true) throw fault.operationNotAllowed("not a guest VM");
  if (Object.keys(vm.current_operations as XRecord).length > 0) throw fault.otherOperationInProgress("VM", ref);
  return vm;
}

function requirePower(ref: string, vm: XRecord, wanted: "Running" | "Halted"): void {
  const actual = str(vm.power_state);
  if (actual !== wanted) throw fault.badPowerState(ref, wanted.toLowerCase(), actual.toLowerCase());
}

/** Checks that host can run vm (enabled, sees its SRs, has the memory). */
function assertCanHost(pool: SimPool, vmRef: string, hostRef: string, srs: readonly string[]): void {
  const host = pool.store.getOf("host", hostRef);
  if (host.enabled !== true) throw fault.hostDisabled(hostRef);
  for (const sr of srs) if (!pool.hostSeesSr(hostRef, sr)) throw fault.requiresSr(vmRef, sr);
  const needed = pool.vmMemory(vmRef);
  const free = pool.hostFree(hostRef);
  if (needed > free) throw fault.notEnoughMemory(needed, free);
}

const vmSrs = (pool: SimPool, vmRef: string): string[] =>
  [...new Set(pool.vmVdis(vmRef).map((vdi) => str(pool.store.get(vdi).SR)))];

/** Marks the VM busy for the task and returns the function that frees it. */
function lock(pool: SimPool, vmRef: string, taskRef: string, op: string): () => void {
  pool.store.set(vmRef, { current_operations: { [taskRef]: op } });
  return () => {
    if (pool.store.has(vmRef)) pool.store.set(vmRef, { current_operations: {} });
  };
}

const copyMs = (ctx: SimContext, mib: number): number => (mib / ctx.speedMiBps) * 1000;

export function poolMigrate(ctx: SimContext, pool: SimPool, args: unknown[], taskRef: string): TaskJob {
  const vmRef = asString(args[1], "vm");
  const hostRef = asString(args[2], "host");
  const vm = guestVm(pool, vmRef);
  pool.store.getOf("host", hostRef);
  requirePower(vmRef, vm, "Running");
  if (vm.resident_on === hostRef) throw fault.operationNotAllowed("VM is already resident on this host");
  assertCanHost(pool, vmRef, hostRef, vmSrs(pool, vmRef));
  const memory = pool.vmMemory(vmRef);
  pool.reserve(hostRef, memory);
  const unlock = lock(pool, vmRef, taskRef, "pool_migrate");
  return {
    durationMs: copyMs(ctx, bytesToMib(memory)),
    complete: () => {
      pool.release(hostRef, memory);
      unlock();
      pool.setResidency(vmRef, hostRef, "Running");
      return undefined;
    },
    abort: () => {
      pool.release(hostRef, memory);
      unlock();
    },
  };
}

export function startOn(pool: SimPool, args: unknown[], taskRef: string, onHost: boolean): TaskJob {
  const vmRef = asString(args[1], "vm");
  const vm = guestVm(pool, vmRef);
  requirePower(vmRef, vm, "Halted");
  const srs = vmSrs(pool, vmRef);
  let hostRef: string;
  if (onHost) {
    hostRef = asString(args[2], "host");
    assertCanHost(pool, vmRef, hostRef, srs);
  } else {
    // VM.start: the affinity host if it can, else the first host that can; else the first host's reason.
    const affinity = str(vm.affinity);
    const candidates = [...(pool.store.has(affinity) ? [affinity] : []), ...pool.hostRefs.values()];
    const ok = candidates.find((h) => {
      try {
        assertCanHost(pool, vmRef, h, srs);
        return true;
      } catch (e) {
        if (e instanceof XapiFault) return false;
        throw e;
      }
    });
    if (ok === undefined) assertCanHost(pool, vmRef, candidates[0] ?? NULL_REF, srs);
    hostRef = ok ?? NULL_REF;
  }
  const memory = pool.vmMemory(vmRef);
  pool.reserve(hostRef, memory);
  const unlock = lock(pool, vmRef, taskRef, "start");
  return {
    durationMs: BOOT_MS,
    complete: () => {
      pool.release(hostRef, memory);
      unlock();
      pool.setResidency(vmRef, hostRef, "Running");
      if (pool.store.get(vmRef).guest_metrics === NULL_REF) pool.store.set(vmRef, { guest_metrics: pool.addGuestMetrics() });
      return undefined;
    },
    abort: () => {
      pool.release(hostRef, memory);
      unlock();
    },
  };
}

export function shutdown(pool: SimPool, args: unknown[], taskRef: string): TaskJob {
  const vmRef = asString(args[1], "vm");
  const vm = guestVm(pool, vmRef);
  requirePower(vmRef, vm, "Running");
  const unlock = lock(pool, vmRef, taskRef, "clean_shutdown");
  return {
    durationMs: SHUTDOWN_MS,
    complete: () => {
      unlock();
      // resident_on becomes NULL; affinity keeps the host it ran on, as XAPI leaves it.
      pool.setResidency(vmRef, NULL_REF, "Halted");
      return undefined;
    },
    abort: unlock,
  };
}

/** host.migrate_receive on the destination pool: the `dest` map migrate_send takes. */
export function migrateReceive(pool: SimPool, args: unknown[]): XRecord {
  const session = asString(args[0], "session_id");
  const hostRef = asString(args[1], "host");
  const host = pool.store.getOf("host", hostRef);
  pool.store.getOf("network", asString(args[2], "network"));
  if (host.enabled !== true) throw fault.hostDisabled(hostRef);
  const address = str(host.address);
  return {
    SM: `http://${address}/services/SM?session_id=${session}`,
    host: hostRef,
    xenops: `http://${address}/services/xenops?session_id=${session}`,
    session_id: session,
    master: `http://${pool.masterAddress()}/`,
  };
}

interface SendPlan {
  readonly vmRef: string;
  readonly dest: SimPool;
  readonly hostRef: string;
  readonly running: boolean;
  /** Source VDI → destination SR, for every VDI that moves. */
  readonly vdiMap: ReadonlyMap<string, string>;
  /** Source VIF → destination network, for every VIF that moves. */
  readonly vifMap: ReadonlyMap<string, string>;
  readonly copyMiB: number;
}

/** VM.assert_can_migrate / VM.migrate_send argument checks (vm, dest, live, vdi_map, vif_map, options[, vgpu_map]). */
function planSend(ctx: SimContext, pool: SimPool, args: unknown[]): SendPlan {
  const vmRef = asString(args[1], "vm");
  const destMap = asStringMap(args[2], "dest");
  const live = args[3] === true || args[3] === "true";
  const vdiArg = asStringMap(args[4], "vdi_map");
  const vifArg = asStringMap(args[5], "vif_map");
  const vm = guestVm(pool, vmRef);
  const hostRef = destMap.host ?? "";
  const dest = ctx.poolOf(hostRef);
  if (dest === undefined) throw fault.handleInvalid("host", hostRef);
  if (!dest.sessions.has(destMap.session_id ?? "")) throw fault.sessionInvalid(destMap.session_id ?? "");
  const running = vm.power_state === "Running";
  if (live) requirePower(vmRef, vm, "Running");
  else if (!running) requirePower(vmRef, vm, "Halted");
  const crossPool = dest !== pool;

  const vdiMap = new Map<string, string>();
  let diskMiB = 0;
  for (const vdi of pool.vmVdis(vmRef)) {
    const sr = vdiArg[vdi];
    if (sr === undefined) {
      if (crossPool) throw fault.vdiNotInMap(vdi);
      continue;
    }
    dest.store.getOf("SR", sr);
    if (!dest.hostSeesSr(hostRef, sr)) throw fault.requiresSr(vmRef, sr);
    if (sr !== pool.store.get(vdi).SR) {
      vdiMap.set(vdi, sr);
      diskMiB += bytesToMib(int64(pool.store.get(vdi).virtual_size));
    }
  }
  const vifMap = new Map<string, string>();
  for (const vif of refList(vm.VIFs)) {
    const net = vifArg[vif];
    if (net === undefined) {
      if (crossPool) throw fault.vifNotInMap(vif);
      continue;
    }
    dest.store.getOf("network", net);
    vifMap.set(vif, net);
  }
  const destHost = dest.store.getOf("host", hostRef);
  if (destHost.enabled !== true) throw fault.hostDisabled(hostRef);
  if (!crossPool) {
    const staying = vmSrs(pool, vmRef).filter((sr) => pool.vmVdis(vmRef).some((v) => !vdiMap.has(v) && pool.store.get(v).SR === sr));
    for (const sr of staying) if (!pool.hostSeesSr(hostRef, sr)) throw fault.requiresSr(vmRef, sr);
    if (running && vm.resident_on === hostRef && vdiMap.size === 0) throw fault.operationNotAllowed("nothing to migrate");
  }
  if (running) {
    const needed = pool.vmMemory(vmRef);
    const free = dest.hostFree(hostRef);
    if (needed > free && vm.resident_on !== hostRef) throw fault.notEnoughMemory(needed, free);
  }
  return {
    vmRef,
    dest,
    hostRef,
    running,
    vdiMap,
    vifMap,
    copyMiB: diskMiB + (running ? bytesToMib(pool.vmMemory(vmRef)) : 0),
  };
}

export function assertCanMigrate(ctx: SimContext, pool: SimPool, args: unknown[]): TaskJob {
  planSend(ctx, pool, args);
  return { durationMs: 0, complete: () => undefined, abort: () => undefined };
}

export function migrateSend(ctx: SimContext, pool: SimPool, args: unknown[], taskRef: string): TaskJob {
  const plan = planSend(ctx, pool, args);
  const { vmRef, dest, hostRef, running } = plan;
  const memory = running && pool.store.get(vmRef).resident_on !== hostRef ? pool.vmMemory(vmRef) : 0n;
  dest.reserve(hostRef, memory);
  const unlock = lock(pool, vmRef, taskRef, "migrate_send");
  return {
    durationMs: copyMs(ctx, plan.copyMiB),
    complete: () => {
      dest.release(hostRef, memory);
      unlock();
      const moved = dest === pool ? moveWithinPool(pool, plan) : moveAcrossPools(pool, plan);
      return moved;
    },
    abort: () => {
      dest.release(hostRef, memory);
      unlock();
    },
  };
}

/** Storage motion inside a pool: new VDIs on the mapped SRs (the old ones are destroyed), then residency. */
function moveWithinPool(pool: SimPool, plan: SendPlan): string {
  const s = pool.store;
  for (const vbd of refList(s.get(plan.vmRef).VBDs)) {
    const old = str(s.get(vbd).VDI);
    const sr = plan.vdiMap.get(old);
    if (sr === undefined) continue;
    const copy = newRef();
    s.add("VDI", copy, { ...vdiRecord(str(s.get(old).name_label), sr, int64(s.get(old).virtual_size)), VBDs: [vbd] });
    s.append(sr, "VDIs", copy);
    const oldSr = str(s.get(old).SR);
    s.set(oldSr, { VDIs: refList(s.get(oldSr).VDIs).filter((r) => r !== old) });
    s.delete(old);
    s.set(vbd, { VDI: copy });
  }
  for (const [vif, net] of plan.vifMap) {
    const oldNet = str(s.get(vif).network);
    s.set(oldNet, { VIFs: refList(s.get(oldNet).VIFs).filter((r) => r !== vif) });
    s.append(net, "VIFs", vif);
    s.set(vif, { network: net });
  }
  if (plan.running) pool.setResidency(plan.vmRef, plan.hostRef, "Running");
  else s.set(plan.vmRef, { affinity: plan.hostRef });
  return plan.vmRef;
}

/** Storage XenMotion to another pool: the VM (same UUID) is created there and removed here with its disks. */
function moveAcrossPools(src: SimPool, plan: SendPlan): string {
  const s = src.store;
  const vm = s.get(plan.vmRef);
  const disks: DiskCopy[] = refList(vm.VBDs).map((vbd) => {
    const b = s.get(vbd);
    const vdi = s.get(str(b.VDI));
    return {
      vdi: vdiRecord(str(vdi.name_label), plan.vdiMap.get(str(b.VDI)) ?? "", int64(vdi.virtual_size)),
      vbdOtherConfig: b.other_config as XRecord,
      userdevice: str(b.userdevice),
    };
  });
  const networks = refList(vm.VIFs).map((vif) => plan.vifMap.get(vif) ?? "");
  const identity = {
    name: str(vm.name_label),
    uuid: str(vm.uuid),
    memory: int64(vm.memory_static_max),
    vcpus: Number(int64(vm.VCPUs_max)),
    tags: refList(vm.tags),
  };
  src.destroyVm(plan.vmRef, true);
  const ref = plan.dest.createVm({ ...identity, affinity: plan.running ? plan.hostRef : NULL_REF }, disks, networks);
  if (plan.running) {
    plan.dest.setResidency(ref, plan.hostRef, "Running");
    plan.dest.store.set(ref, { guest_metrics: plan.dest.addGuestMetrics() });
  }
  return ref;
}

export function setHostEnabled(pool: SimPool, args: unknown[], enabled: boolean): TaskJob {
  const hostRef = asString(args[1], "host");
  pool.store.getOf("host", hostRef);
  return {
    durationMs: 0,
    complete: () => {
      pool.store.set(hostRef, { enabled });
      return undefined;
    },
    abort: () => undefined,
  };
}
