import type { ClusterSnapshot, HostId, VmId } from "../model/index.js";
import type { LoadPoint } from "../policies/types.js";

/** Recent smoothed CPU load per host, kept for the sustained-overload check; bounded by a time window. */
export class LoadHistory {
  private readonly points = new Map<HostId, LoadPoint[]>();
  private vmBefore = new Map<VmId, LoadPoint>();
  private vmLast = new Map<VmId, LoadPoint>();

  constructor(private windowMs: number) {}

  setWindow(ms: number): void {
    this.windowMs = ms;
  }

  seed(history: ReadonlyMap<HostId, readonly LoadPoint[]>): void {
    for (const [host, pts] of history) this.points.set(host, [...pts]);
  }

  record(snapshot: ClusterSnapshot, atMs: number): void {
    const cutoff = atMs - this.windowMs;
    const seen = new Set<HostId>();
    for (const h of snapshot.hosts) {
      seen.add(h.name);
      const list = this.points.get(h.name) ?? [];
      list.push({ atMs, cpuLoad: h.cpuLoad });
      let drop = 0;
      while (drop < list.length && (list[drop]?.atMs ?? 0) < cutoff) drop++;
      this.points.set(h.name, drop > 0 ? list.slice(drop) : list);
    }
    for (const host of this.points.keys()) if (!seen.has(host)) this.points.delete(host);
    // VMs keep one earlier point each (a trend, not a history: 60,000 VMs stay cheap); gone VMs drop out.
    this.vmBefore = this.vmLast;
    this.vmLast = new Map(snapshot.vms.map((v) => [v.id, { atMs, cpuLoad: v.cpuLoad }]));
  }

  /** Each VM's load at the sample before the latest one. */
  get vmLoadBefore(): ReadonlyMap<VmId, LoadPoint> {
    return this.vmBefore;
  }

  get view(): ReadonlyMap<HostId, readonly LoadPoint[]> {
    return this.points;
  }
}
