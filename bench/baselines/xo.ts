/**
 * (c) Xen Orchestra's load balancer, performance mode, with its published defaults: critical CPU 90 %; a host
 * is overloaded above 0.85 × critical and relieved down to 0.65 × critical; loads are 0.75 × the last
 * minute + 0.25 × the 30-minute average; a VM is not moved again within 30 minutes; at most 2 migrations at
 * once; a plan every minute. For each overloaded host (busiest first), its VMs busiest first go to the least
 * loaded host of the pool (here: the cell) that has the memory, unless the move would leave the destination
 * busier than the source; planning stops for a host once it is below the low mark.
 */
import type { VmId } from "../../src/model/index.js";
import { applyOnPaper, freeMiB, movable, paperHosts, type BaselineAlgorithm, type BaselineMove, type PaperHost } from "./runner.js";

export const XO_DEFAULTS = {
  criticalCpu: 0.9,
  highFactor: 0.85,
  lowFactor: 0.65,
  lastMinuteWeight: 0.75,
  windowMs: 30 * 60_000,
  vmCooldownMs: 30 * 60_000,
  concurrency: 2,
  intervalMs: 60_000,
} as const;

/** Load samples over the last 30 minutes, per key. */
class Window {
  private readonly points = new Map<string, { atMs: number; value: number }[]>();

  add(key: string, atMs: number, value: number): void {
    const list = this.points.get(key) ?? [];
    list.push({ atMs, value });
    while (list.length > 0 && (list[0]?.atMs ?? atMs) < atMs - XO_DEFAULTS.windowMs) list.shift();
    this.points.set(key, list);
  }

  /** 0.75 × the latest sample + 0.25 × the window's mean. */
  weighted(key: string, latest: number): number {
    const list = this.points.get(key) ?? [];
    const mean = list.length ? list.reduce((a, p) => a + p.value, 0) / list.length : latest;
    return XO_DEFAULTS.lastMinuteWeight * latest + (1 - XO_DEFAULTS.lastMinuteWeight) * mean;
  }
}

export function xoPerformance(): BaselineAlgorithm {
  const hostLoad = new Window();
  const vmLoad = new Window();
  const lastMoved = new Map<VmId, number>();
  const high = XO_DEFAULTS.criticalCpu * XO_DEFAULTS.highFactor;
  const low = XO_DEFAULTS.criticalCpu * XO_DEFAULTS.lowFactor;
  return {
    name: "xo-perf",
    concurrency: XO_DEFAULTS.concurrency,
    intervalMs: XO_DEFAULTS.intervalMs,
    observe: (snapshot, nowMs) => {
      for (const h of snapshot.hosts) hostLoad.add(h.name, nowMs, h.cpuLoad);
      for (const v of snapshot.vms) vmLoad.add(v.id, nowMs, v.cpuLoad);
    },
    plan: (input) => {
      const { nowMs } = input;
      const hosts = paperHosts(input);
      for (const h of hosts.values()) h.cpu = hostLoad.weighted(h.host.name, h.host.cpuLoad);
      const moves: BaselineMove[] = [];
      const vms = movable(input).filter((v) => nowMs - (lastMoved.get(v.id) ?? -Infinity) >= XO_DEFAULTS.vmCooldownMs);
      const exceeded = [...hosts.values()].filter((h) => h.cpu > high).sort((a, b) => b.cpu - a.cpu || a.host.name.localeCompare(b.host.name));
      for (const source of exceeded) {
        const own = vms
          .filter((v) => v.host === source.host.name)
          .map((v) => ({ ...v, cpuLoad: vmLoad.weighted(v.id, v.cpuLoad) }))
          .sort((a, b) => b.cpuLoad - a.cpuLoad || a.id.localeCompare(b.id));
        for (const vm of own) {
          if (source.cpu <= low) break;
          let dest: PaperHost | undefined;
          for (const h of hosts.values()) {
            if (h === source || h.host.cell !== source.host.cell) continue;
            if (!dest || h.cpu < dest.cpu || (h.cpu === dest.cpu && h.host.name < dest.host.name)) dest = h;
          }
          if (!dest) break;
          const share = (h: PaperHost): number => vm.cpuLoad / h.host.cpus;
          // XO skips a VM whose move would leave the destination busier than the source, or that does not fit.
          if (source.cpu - share(source) < dest.cpu + share(dest) || freeMiB(dest) < vm.memoryMiB) continue;
          applyOnPaper(vm, source, dest);
          lastMoved.set(vm.id, nowMs);
          moves.push({ vm: vm.id, to: dest.host.name });
        }
      }
      return { moves, blocked: [] };
    },
  };
}
