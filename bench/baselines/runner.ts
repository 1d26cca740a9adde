/**
 * Runs a baseline algorithm (a peer's published method) on the simulated cluster through the same simulator
 * migrations as ballast: same link, same timings, same failure model. A baseline plans on the sampled cluster,
 * queues its moves and starts them as its concurrency allows; the simulator refuses what the hypervisor would
 * (another cell, not enough free memory, storage not mounted). ballast's guards do not apply to baselines.
 */
import type { Balancer, BalancerFactory, SimWorld } from "../../src/daemon/simulate.js";
import { flagsFor, migrationKind } from "../../src/daemon/migration-kind.js";
import { DriverError } from "../../src/drivers/driver.js";
import type { ClusterSnapshot, Host, HostId, Vm, VmId } from "../../src/model/index.js";

export interface BaselineMove {
  readonly vm: VmId;
  readonly to: HostId;
}

/** What a baseline plans on: the sample (maintenance overlaid) and what is migrating now. */
export interface PlanInput {
  readonly snapshot: ClusterSnapshot;
  readonly nowMs: number;
  /** VMs with a migration job in flight. */
  readonly migrating: ReadonlySet<VmId>;
  /** Memory promised to incoming migrations, per destination host. */
  readonly incomingMiB: ReadonlyMap<HostId, number>;
}

export interface BaselineAlgorithm {
  readonly name: string;
  /** Migrations in flight at once. */
  readonly concurrency: number;
  /** Time between planning runs (a run is skipped while moves of the previous one are still queued). */
  readonly intervalMs: number;
  /** Sees every round's sample (for algorithms that average load over time). */
  observe?(snapshot: ClusterSnapshot, nowMs: number): void;
  plan(input: PlanInput): { readonly moves: readonly BaselineMove[]; readonly blocked: readonly string[] };
}

/** A host's working figures while a baseline plans "on paper". */
export interface PaperHost {
  readonly host: Host;
  /** Fraction of its CPUs. */
  cpu: number;
  memUsedMiB: number;
}

/** Hosts that can take part in a move: reachable and not in maintenance, with incoming memory counted as used. */
export function paperHosts(input: PlanInput): Map<HostId, PaperHost> {
  const out = new Map<HostId, PaperHost>();
  for (const h of input.snapshot.hosts) {
    if (!h.reachable || h.maintenance) continue;
    out.set(h.name, { host: h, cpu: h.cpuLoad, memUsedMiB: h.memoryUsedMiB + (input.incomingMiB.get(h.name) ?? 0) });
  }
  return out;
}

export const freeMiB = (h: PaperHost): number => h.host.memoryMiB - h.memUsedMiB;

/** VMs that a baseline may move: running or paused (shut-off guests carry no load), not already migrating. */
export function movable(input: PlanInput): Vm[] {
  return input.snapshot.vms.filter((v) => v.state !== "shutoff" && !input.migrating.has(v.id));
}

/** Records a move on paper: the VM's CPU and memory leave the source and land on the destination. */
export function applyOnPaper(vm: Vm, from: PaperHost, to: PaperHost): void {
  from.cpu -= vm.cpuLoad / from.host.cpus;
  to.cpu += vm.cpuLoad / to.host.cpus;
  from.memUsedMiB -= vm.memoryMiB;
  to.memUsedMiB += vm.memoryMiB;
}

/**
 * An operator's drain on the baselines' platforms (XAPI host.evacuate, ProxLB maintenance_nodes): every VM
 * of a host in maintenance goes to the host of its cell with the most free memory that can hold it.
 */
export function evacuation(input: PlanInput): { moves: BaselineMove[]; blocked: string[] } {
  const hosts = paperHosts(input);
  const drained = new Set(input.snapshot.hosts.filter((h) => h.maintenance).map((h) => h.name));
  const moves: BaselineMove[] = [];
  const blocked: string[] = [];
  for (const vm of movable(input)) {
    if (!drained.has(vm.host)) continue;
    const cell = input.snapshot.hosts.find((h) => h.name === vm.host)?.cell;
    let best: PaperHost | undefined;
    for (const h of hosts.values()) {
      if (h.host.cell !== cell || freeMiB(h) < vm.memoryMiB) continue;
      if (!best || freeMiB(h) > freeMiB(best)) best = h;
    }
    if (!best) {
      blocked.push("evacuate/no-memory");
      continue;
    }
    best.memUsedMiB += vm.memoryMiB;
    moves.push({ vm: vm.id, to: best.host.name });
  }
  return { moves, blocked };
}

/** The Balancer for a baseline: evacuations first, then the algorithm's runs; one queue of moves, started as slots free. */
export function baseline(algorithm: BaselineAlgorithm): BalancerFactory {
  return (world: SimWorld): Balancer => {
    const { cluster, driver, clock, config } = world;
    let queue: BaselineMove[] = [];
    let lastRun = -Infinity;
    return {
      name: algorithm.name,
      start: () => Promise.resolve(),
      // Maintenance reaches the baseline through the sampled snapshot (flag overlaid by the runner).
      drain: () => Promise.resolve(),
      undrain: () => Promise.resolve(),
      policyOf: () => algorithm.name,
      stop: () => Promise.resolve(),
      round: async (snapshot) => {
        const now = clock.now();
        algorithm.observe?.(snapshot, now);
        const jobs = cluster.jobs();
        const vmById = new Map(snapshot.vms.map((v) => [v.id, v] as const));
        const incomingMiB = new Map<HostId, number>();
        for (const j of jobs) incomingMiB.set(j.to, (incomingMiB.get(j.to) ?? 0) + (vmById.get(j.vm)?.memoryMiB ?? 0));
        const input: PlanInput = { snapshot, nowMs: now, migrating: new Set(jobs.map((j) => j.vm)), incomingMiB };
        const blocked: string[] = [];
        const evac = evacuation(input);
        blocked.push(...evac.blocked);
        if (evac.moves.length > 0) {
          queue = evac.moves;
        } else if (queue.length === 0 && now - lastRun >= algorithm.intervalMs) {
          lastRun = now;
          const planned = algorithm.plan(input);
          queue = [...planned.moves];
          blocked.push(...planned.blocked);
        }
        const hosts = new Map(snapshot.hosts.map((h) => [h.name, h] as const));
        let free = algorithm.concurrency - jobs.length;
        while (free > 0 && queue.length > 0) {
          const move = queue.shift() as BaselineMove;
          const vm = vmById.get(move.vm);
          const from = vm && hosts.get(vm.host);
          const to = hosts.get(move.to);
          // A queued move whose VM or destination changed since it was planned is dropped, as the peers re-check.
          if (!vm || !from || !to || to.maintenance || vm.host === move.to || input.migrating.has(vm.id)) continue;
          const kind = migrationKind(vm, from, to, config.migration);
          if (!kind.ok) {
            blocked.push(`${algorithm.name}/${kind.code}`);
            continue;
          }
          try {
            await driver.migrate({
              vm: vm.id,
              from: from.name,
              to: to.name,
              kind: kind.kind,
              flags: flagsFor(kind.kind, config.migration, from.cell),
              maxDowntimeMs: config.migration.maxDowntimeMs,
            });
            free--;
          } catch (e) {
            if (!(e instanceof DriverError)) throw e;
            blocked.push(`${algorithm.name}/refused-${e.code}`);
          }
        }
        return blocked;
      },
    };
  };
}

/** (a) No balancing: nothing moves except what an operator's drain evacuates. */
export const noBalancing: BaselineAlgorithm = { name: "none", concurrency: 1, intervalMs: Infinity, plan: () => ({ moves: [], blocked: [] }) };
