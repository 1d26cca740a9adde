import type { Scenario } from "../../config/scenario.js";
import { hostId, type HostId, type VmId } from "../../model/index.js";
import type { SimCluster } from "./cluster.js";

/** One thing that happens at an offset from the start of a run. Repeating events are expanded. */
export type TimelineAction =
  | { readonly atMs: number; readonly kind: "drain"; readonly host: HostId; readonly reason: string }
  | { readonly atMs: number; readonly kind: "undrain"; readonly host: HostId }
  | { readonly atMs: number; readonly kind: "burst-start" | "burst-end"; readonly burst: number; readonly cpu: number; readonly tenant?: string; readonly hosts?: readonly HostId[] };

/**
 * The scenario's events as a list sorted by time (events at the same time keep file order, and a burst that
 * ends frees its VMs before one that starts then). Only actions before `durationMs` are listed; a burst still on
 * at the end has no end action.
 */
export function expandTimeline(scenario: Scenario, durationMs: number): TimelineAction[] {
  const out: { action: TimelineAction; order: number }[] = [];
  let burst = 0;
  for (const [order, e] of scenario.events.entries()) {
    const last = Math.min(durationMs, e.until ?? Infinity);
    const step = e.every ?? Infinity;
    for (let at = e.at; at < durationMs && at <= last; at += step) {
      if (e.drain !== undefined) out.push({ order, action: { atMs: at, kind: "drain", host: hostId(e.drain), reason: e.reason ?? `scenario ${scenario.name}` } });
      else if (e.undrain !== undefined) out.push({ order, action: { atMs: at, kind: "undrain", host: hostId(e.undrain) } });
      else if (e.burst !== undefined) {
        const b = e.burst;
        const target = b.tenant !== undefined ? { tenant: b.tenant } : { hosts: (b.hosts ?? []).map(hostId) };
        const id = burst++;
        out.push({ order, action: { atMs: at, kind: "burst-start", burst: id, cpu: b.cpu, ...target } });
        if (at + b.for < durationMs) out.push({ order: -1, action: { atMs: at + b.for, kind: "burst-end", burst: id, cpu: b.cpu, ...target } });
      }
      if (!Number.isFinite(step)) break;
    }
  }
  out.sort((a, b) => a.action.atMs - b.action.atMs || a.order - b.order);
  return out.map((x) => x.action);
}

/**
 * Applies burst actions to a simulated cluster. A burst picks its VMs when it starts (a host's VMs are those on
 * it then) and boosts each by `cpu` of its vCPUs; overlapping bursts on one VM add up.
 */
export class BurstApplier {
  private readonly vmsOf = new Map<number, readonly VmId[]>();
  private readonly share = new Map<VmId, number>();

  constructor(private readonly cluster: SimCluster) {}

  apply(action: TimelineAction & { kind: "burst-start" | "burst-end" }): void {
    const start = action.kind === "burst-start";
    let vms = this.vmsOf.get(action.burst);
    if (start) {
      vms = action.tenant !== undefined ? this.cluster.vmsTagged(`tenant=${action.tenant}`) : (action.hosts ?? []).flatMap((h) => this.cluster.vmsOn(h));
      this.vmsOf.set(action.burst, vms);
    } else {
      this.vmsOf.delete(action.burst);
    }
    for (const vm of vms ?? []) {
      // Rounded so that bursts that started and ended leave exactly zero behind.
      const s = Math.round(((this.share.get(vm) ?? 0) + (start ? action.cpu : -action.cpu)) * 1e9) / 1e9;
      this.share.set(vm, s);
      this.cluster.setBoost(vm, s);
    }
  }
}
