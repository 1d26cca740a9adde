/** Assembles pools, tasks, faults, the RRD model and the HTTP server into the XapiSim test handle. */
import { realClock } from "../../src/util/clock.js";
import { dispatch } from "./api.js";
import type { SimContext } from "./context.js";
import { XapiFault } from "./errors.js";
import { SimFaults } from "./faults.js";
import type { CallRecord, HostState, PoolEndpoint, VmState, XapiSim, XapiSimSpec } from "./index.js";
import { SimPool } from "./pool.js";
import { LoadHistory, rrdUpdates, rrdUpdatesJson, rrdUpdatesLegacy, rrdUpdatesXml, type RrdQuery } from "./rrd.js";
import { SimServer, type Endpoint, type RpcRequest } from "./server.js";
import { TaskRunner } from "./tasks.js";
import { NULL_REF, bytesToMib, int64, refList, str, type XRecord, type XValue } from "./values.js";

const bare = (method: string): string => method.replace(/^Async\./, "");

export async function startSim(spec: XapiSimSpec): Promise<XapiSim> {
  const clock = spec.clock ?? realClock;
  const now = (): number => clock.now();
  const loads = new LoadHistory(clock.now());
  const pools = spec.pools.map((p, i) => SimPool.build(p, i, now, loads));
  const faults = new SimFaults(() => pools.forEach((p) => p.sessions.clear()));
  const tasks = new TaskRunner(clock, spec.tickMs ?? 100, faults);
  const ctx: SimContext = {
    pools,
    tasks,
    faults,
    clock,
    speedMiBps: spec.migrationSpeedMiBps ?? 1024,
    user: spec.user ?? "root",
    password: spec.password ?? "sim-password",
    poolOf: (ref) => pools.find((p) => p.store.has(ref)),
  };
  const calls: CallRecord[] = [];

  const poolNamed = (name: string): SimPool => {
    const p = pools.find((x) => x.name === name);
    if (p === undefined) throw new Error(`no pool ${name}`);
    return p;
  };
  const endpoints: Endpoint[] = pools.flatMap((p) =>
    [...p.hostAddresses].map(([host, address]) => ({ address, pool: p.name, host })),
  );

  function subjectOf(pool: SimPool, method: string, args: readonly unknown[]): string | undefined {
    if (method === "session.login_with_password") return undefined;
    const ref = args[1];
    if (typeof ref !== "string" || !pool.store.has(ref)) return undefined;
    return str(pool.store.get(ref).name_label) || undefined;
  }

  function log(req: Omit<RpcRequest, "signal">): { -readonly [K in keyof CallRecord]: CallRecord[K] } {
    const pool = poolNamed(req.endpoint.pool);
    const record: { -readonly [K in keyof CallRecord]: CallRecord[K] } = {
      method: req.method,
      transport: req.transport,
      pool: pool.name,
      host: req.endpoint.host,
      at: clock.now(),
    };
    const subject = subjectOf(pool, req.method, req.args);
    if (subject !== undefined) record.subject = subject;
    calls.push(record);
    return record;
  }

  function drop(req: Omit<RpcRequest, "signal">): boolean {
    if (!faults.takeDrop(req.method)) return false;
    log(req).dropped = true;
    return true;
  }

  async function rpc(req: RpcRequest): Promise<XValue> {
    const pool = poolNamed(req.endpoint.pool);
    const record = log(req);
    try {
      return await dispatch(ctx, {
        pool,
        onMaster: req.endpoint.host === pool.master,
        method: req.method,
        args: req.args,
        signal: req.signal,
      });
    } catch (e) {
      if (e instanceof XapiFault) record.error = e.code;
      throw e;
    }
  }

  function resource(ep: Endpoint, path: string, query: URLSearchParams): { status: number; type: string; body: string } {
    const pool = poolNamed(ep.pool);
    if (path !== "/rrd_updates") return { status: 404, type: "text/html", body: "<html><body>404</body></html>" };
    if (!pool.sessions.has(query.get("session_id") ?? "")) return { status: 401, type: "text/html", body: "<html><body>401</body></html>" };
    const hostRef = pool.hostRef(ep.host);
    const host = pool.store.get(hostRef);
    const metrics = pool.store.get(str(host.metrics));
    const q: RrdQuery = {
      start: Number(query.get("start") ?? "0"),
      interval: Number(query.get("interval") ?? "5"),
      cf: query.get("cf") ?? "AVERAGE",
      includeHost: query.get("host") === "true",
      ...(query.has("vm_uuid") ? { vmUuid: query.get("vm_uuid") ?? "" } : {}),
    };
    const residents = refList(host.resident_VMs).map((r) => {
      const vm = pool.store.get(r);
      return { uuid: str(vm.uuid), vcpus: Number(int64(vm.VCPUs_max)), memoryBytes: Number(int64(vm.memory_static_max)) };
    });
    const updates = rrdUpdates(
      loads,
      {
        uuid: str(host.uuid),
        cpus: refList(host.host_CPUs).length,
        memoryTotalKib: Number(int64(metrics.memory_total) / 1024n),
        memoryFreeKib: Number(int64(metrics.memory_free) / 1024n),
      },
      residents,
      q,
      clock.now(),
    );
    // The client's getResource() opens a task for each request; XAPI completes it when the handler is done.
    const task = query.get("task_id");
    if (task !== null) tasks.succeed(pool, task);
    if (query.get("json") !== "true") return { status: 200, type: "text/xml", body: rrdUpdatesXml(updates) };
    const body = spec.rrdFormat === "legacy" ? rrdUpdatesLegacy(updates) : rrdUpdatesJson(updates);
    return { status: 200, type: "application/json", body };
  }

  const server = new SimServer(endpoints, { drop, rpc, resource });
  await server.listen();

  const url = (address: string): string => `http://${address}:${server.port}`;

  function findVm(name: string): { pool: SimPool; ref: string } {
    for (const pool of pools) {
      const ref = pool.findVm(name);
      if (ref !== undefined) return { pool, ref };
    }
    throw new Error(`no VM ${name}`);
  }

  function findHost(name: string): { pool: SimPool; ref: string } {
    const pool = pools.find((p) => p.hostRefs.has(name));
    if (pool === undefined) throw new Error(`no host ${name}`);
    return { pool, ref: pool.hostRef(name) };
  }

  const hostNameOrNull = (pool: SimPool, ref: XValue | undefined): string | null =>
    typeof ref === "string" && ref !== NULL_REF && pool.store.has(ref) ? pool.hostName(ref) : null;

  return {
    pools: pools.map(
      (p): PoolEndpoint => ({
        name: p.name,
        url: url(p.masterAddress()),
        hostUrls: Object.fromEntries([...p.hostAddresses].map(([h, a]) => [h, url(a)])),
      }),
    ),
    url: (pool) => url((pool === undefined ? (pools[0] as SimPool) : poolNamed(pool)).masterAddress()),
    hostUrl: (host) => url(findHost(host).pool.hostAddresses.get(host) ?? ""),
    user: ctx.user,
    password: ctx.password,
    port: server.port,
    vm(name): VmState {
      const { pool, ref } = findVm(name);
      const vm = pool.store.get(ref);
      const vbds = refList(vm.VBDs).map((b) => pool.store.get(b));
      const uuid = str(vm.uuid);
      return {
        name,
        uuid,
        ref,
        pool: pool.name,
        powerState: vm.power_state === "Running" ? "Running" : "Halted",
        host: hostNameOrNull(pool, vm.resident_on),
        affinity: hostNameOrNull(pool, vm.affinity),
        memoryMiB: bytesToMib(int64(vm.memory_static_max)),
        vcpus: Number(int64(vm.VCPUs_max)),
        cpuLoad: loads.current(uuid).load,
        vdis: vbds.map((b) => {
          const vdi = pool.store.get(str(b.VDI));
          return {
            uuid: str(vdi.uuid),
            sr: str(pool.store.get(str(vdi.SR)).name_label),
            sizeMiB: bytesToMib(int64(vdi.virtual_size)),
            volume: (b.other_config as XRecord).osvol === "True",
          };
        }),
        networks: refList(vm.VIFs).map((v) => str(pool.store.get(str(pool.store.get(v).network)).name_label)),
        tags: refList(vm.tags),
      };
    },
    host(name): HostState {
      const { pool, ref } = findHost(name);
      const h = pool.store.get(ref);
      const t = clock.now();
      return {
        name,
        uuid: str(h.uuid),
        ref,
        pool: pool.name,
        address: str(h.address),
        master: ref === pool.masterRef,
        enabled: h.enabled === true,
        residentVms: refList(h.resident_VMs)
          .filter((r) => pool.store.get(r).is_control_domain !== true)
          .map((r) => pool.hostName(r)),
        memoryMiB: pool.memoryMib(ref),
        memoryFreeMiB: bytesToMib(pool.hostFree(ref)),
        cpuLoad: Math.min(1, loads.hostBusy(str(h.uuid), t, t + 1) / refList(h.host_CPUs).length),
      };
    },
    defaultSr(poolName) {
      const pool = poolNamed(poolName);
      const sr = pool.defaultSr();
      return sr === NULL_REF ? null : str(pool.store.get(sr).name_label);
    },
    setVmCpu(name, load) {
      const { pool, ref } = findVm(name);
      loads.setLoad(str(pool.store.get(ref).uuid), load, clock.now());
    },
    setHostEnabled(name, enabled) {
      const { pool, ref } = findHost(name);
      pool.store.set(ref, { enabled });
    },
    faults,
    calls,
    callCount: (method, subject) =>
      calls.filter((c) => bare(c.method) === bare(method) && (subject === undefined || c.subject === subject)).length,
    clearCalls: () => {
      calls.length = 0;
    },
    async close() {
      tasks.stop();
      for (const p of pools) p.store.wakeAll();
      await server.close();
    },
  };
}
