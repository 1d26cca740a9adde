/**
 * The load model and /rrd_updates. Each VM's CPU load (fraction of its vCPUs) and residency are kept as a
 * history of changes in simulated time, so any past RRD row can be computed exactly: a VM's value is its
 * time-averaged load over the row's interval, a host's cpu_avg the vCPU-weighted load of the VMs resident
 * on it then, over its CPU count. As in XAPI (xcp-rrdd), a host reports itself and the VMs resident on it
 * now, rows newest first, legend "CF:class:uuid:name", values printed by f_to_s (see the renderers below).
 */

interface Segment {
  readonly t: number;
  readonly host: string | null;
  readonly load: number;
}

/** XAPI's archives: step in seconds and rows kept (5 s × 10 min, 1 min × 2 h, 1 h × 1 week, 1 day × 1 year). */
const ARCHIVES = [
  { step: 5, rows: 120 },
  { step: 60, rows: 120 },
  { step: 3600, rows: 168 },
  { step: 86400, rows: 366 },
] as const;

export class LoadHistory {
  /** RRDs start with the simulation: earlier rows are NaN (no data), as for a freshly installed host. */
  constructor(readonly startedAt: number) {}

  private readonly vms = new Map<string, Segment[]>();
  private readonly vcpus = new Map<string, number>();
  /** VMs that were ever resident on each host: a host's past rows only need these. */
  private readonly visitors = new Map<string, Set<string>>();

  register(vmUuid: string, vcpus: number, load: number, t: number): void {
    this.vms.set(vmUuid, [{ t, host: null, load }]);
    this.vcpus.set(vmUuid, vcpus);
  }

  place(vmUuid: string, hostUuid: string | null, t: number): void {
    this.push(vmUuid, t, { host: hostUuid });
    if (hostUuid === null) return;
    const set = this.visitors.get(hostUuid) ?? new Set<string>();
    this.visitors.set(hostUuid, set.add(vmUuid));
  }

  setLoad(vmUuid: string, load: number, t: number): void {
    this.push(vmUuid, t, { load: Math.max(0, Math.min(1, load)) });
  }

  current(vmUuid: string): Segment {
    const segs = this.vms.get(vmUuid);
    const last = segs?.[segs.length - 1];
    if (last === undefined) throw new Error(`no load history for VM ${vmUuid}`);
    return last;
  }

  /** Time-average over (from, to] (ms) of the VM's load while it was on host (any host when host is undefined). */
  average(vmUuid: string, from: number, to: number, host?: string): number {
    const segs = this.vms.get(vmUuid) ?? [];
    let sum = 0;
    segs.forEach((s, i) => {
      const end = segs[i + 1]?.t ?? Infinity;
      const a = Math.max(from, s.t);
      const b = Math.min(to, end);
      if (b > a && s.host !== null && (host === undefined || s.host === host)) sum += s.load * (b - a);
    });
    return to > from ? sum / (to - from) : 0;
  }

  /** vCPU-weighted load of everything on host over (from, to], in host CPUs. */
  hostBusy(hostUuid: string, from: number, to: number): number {
    let busy = 0;
    for (const uuid of this.visitors.get(hostUuid) ?? []) busy += this.average(uuid, from, to, hostUuid) * (this.vcpus.get(uuid) ?? 1);
    return busy;
  }

  private push(vmUuid: string, t: number, change: Partial<Segment>): void {
    const segs = this.vms.get(vmUuid);
    if (segs === undefined) throw new Error(`no load history for VM ${vmUuid}`);
    const last = segs[segs.length - 1] as Segment;
    const next = { ...last, ...change, t };
    if (last.t === t) segs[segs.length - 1] = next;
    else segs.push(next);
  }
}

export interface RrdHost {
  readonly uuid: string;
  readonly cpus: number;
  readonly memoryTotalKib: number;
  readonly memoryFreeKib: number;
}

export interface RrdVm {
  readonly uuid: string;
  readonly vcpus: number;
  readonly memoryBytes: number;
}

export interface RrdQuery {
  /** Seconds since the epoch; negative = relative to now. */
  readonly start: number;
  readonly interval: number;
  readonly cf: string;
  readonly includeHost: boolean;
  readonly vmUuid?: string;
}

export interface RrdUpdates {
  readonly meta: {
    readonly start: number;
    readonly step: number;
    readonly end: number;
    readonly rows: number;
    readonly columns: number;
    readonly legend: string[];
  };
  readonly data: { readonly t: number; readonly values: string[] }[];
}

/** Rows for one host and the VMs resident on it (all VMs' data is computed from the shared history). */
export function rrdUpdates(
  loads: LoadHistory,
  host: RrdHost,
  residents: readonly RrdVm[],
  q: RrdQuery,
  nowMs: number,
): RrdUpdates {
  const now = Math.floor(nowMs / 1000);
  const start = q.start < 0 ? now + q.start : q.start;
  const archive =
    ARCHIVES.find((a) => a.step >= q.interval && now - a.step * a.rows <= start) ??
    ARCHIVES.find((a) => a.step >= q.interval) ??
    ARCHIVES[ARCHIVES.length - 1];
  const { step, rows: kept } = archive as (typeof ARCHIVES)[number];
  const vms = q.vmUuid === undefined ? residents : residents.filter((v) => v.uuid === q.vmUuid);

  const legend: string[] = [];
  const columns: ((from: number, to: number) => number)[] = [];
  if (q.includeHost) {
    // All VMs ever on this host count for its past rows, not only today's residents; one scan per row.
    let cached = { from: NaN, value: 0 };
    const hostCpu = (from: number, to: number): number => {
      if (cached.from !== from) cached = { from, value: Math.min(1, loads.hostBusy(host.uuid, from, to) / host.cpus) };
      return cached.value;
    };
    legend.push(`${q.cf}:host:${host.uuid}:cpu_avg`);
    columns.push(hostCpu);
    for (let i = 0; i < host.cpus; i++) {
      legend.push(`${q.cf}:host:${host.uuid}:cpu${i}`);
      columns.push(hostCpu);
    }
    legend.push(`${q.cf}:host:${host.uuid}:memory_total_kib`, `${q.cf}:host:${host.uuid}:memory_free_kib`);
    columns.push(
      () => host.memoryTotalKib,
      () => host.memoryFreeKib,
    );
  }
  for (const vm of vms) {
    for (let i = 0; i < vm.vcpus; i++) {
      legend.push(`${q.cf}:vm:${vm.uuid}:cpu${i}`);
      columns.push((from, to) => loads.average(vm.uuid, from, to));
    }
    legend.push(`${q.cf}:vm:${vm.uuid}:memory`);
    columns.push(() => vm.memoryBytes);
  }

  const last = Math.floor(now / step) * step;
  const data: RrdUpdates["data"] = [];
  for (let i = 0; i < kept; i++) {
    const t = last - i * step;
    if (t < start) break;
    const to = t * 1000;
    const from = Math.max((t - step) * 1000, loads.startedAt);
    data.push({ t, values: columns.map((col) => fToS(to <= from ? NaN : col(from, to))) });
  }
  return {
    meta: { start: (Math.floor(start / step) + 1) * step, step, end: last, rows: data.length, columns: legend.length, legend },
    data,
  };
}

/** xcp-rrd's Utils.f_to_s: four decimals, "0.0", NaN and ±Infinity spelled as in JavaScript. */
function fToS(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "Infinity" : "-Infinity";
  return v === 0 ? "0.0" : v.toFixed(4);
}

/** Current XAPI (Yojson): valid JSON, every value a string. */
export const rrdUpdatesJson = (u: RrdUpdates): string => JSON.stringify(u);

/**
 * XAPI before the Yojson rewrite (e.g. XCP-ng 8.2): JavaScript rather than JSON, with bare keys and bare
 * numbers, NaN included (why Xen Orchestra parses it with JSON5).
 */
export function rrdUpdatesLegacy(u: RrdUpdates): string {
  const m = u.meta;
  const legend = m.legend.map((l) => `"${l}"`).join(",");
  const rows = u.data.map((r) => `{t:${r.t},values:[${r.values.join(",")}]}`).join(",");
  return `{meta: {start:${m.start},step:${m.step},end:${m.end},rows:${m.rows},columns:${m.columns},legend:[${legend}]},data:[${rows}]}`;
}

/** The rrdtool xport XML rendering (json=false). */
export function rrdUpdatesXml(u: RrdUpdates): string {
  const rows = u.data.map((r) => `<row><t>${r.t}</t>${r.values.map((v) => `<v>${v}</v>`).join("")}</row>`).join("");
  const m = u.meta;
  return (
    `<?xml version="1.0" encoding="UTF-8"?><xport><meta><start>${m.start}</start><step>${m.step}</step><end>${m.end}</end>` +
    `<rows>${m.rows}</rows><columns>${m.columns}</columns><legend>${m.legend.map((l) => `<entry>${l}</entry>`).join("")}</legend>` +
    `</meta><data>${rows}</data></xport>`
  );
}
