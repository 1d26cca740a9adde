import type { LoadView } from "./mapping.js";
import { emaWeight, LOAD_TAU_MS } from "../../model/index.js";

/**
 * XAPI's /rrd_updates?json=true: a legend of "CF:class:uuid:metric" names and rows of values, newest row
 * first. Host CPU is `cpu_avg` (0–1 of the host) or, without it, the mean of `cpuN`; VM CPU is the sum of its
 * `cpuN` (each 0–1 of one vCPU), i.e. host CPUs in use.
 */
export interface RrdUpdate {
  /** Seconds since the epoch of the newest row (XAPI's meta.end). */
  readonly end: number;
  readonly rows: readonly { readonly t: number; readonly hosts: ReadonlyMap<string, number>; readonly vms: ReadonlyMap<string, number> }[];
}

export class RrdParseError extends Error {
  override readonly name = "RrdParseError";
}

interface RawRrd {
  meta?: { end?: unknown; legend?: unknown };
  data?: unknown;
}

/** Older XAPI writes JavaScript, not JSON: bare keys and NaN/Infinity literals. */
function lenientJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const fixed = text
      .replace(/([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:/g, '$1"$2":')
      .replace(/(?<=[[,:]\s*)-?(?:NaN|Infinity)(?=\s*[\],}])/g, "null");
    try {
      return JSON.parse(fixed);
    } catch (e) {
      throw new RrdParseError(`rrd_updates: not JSON (${(e as Error).message})`);
    }
  }
}

const value = (v: unknown): number => (typeof v === "number" ? v : typeof v === "string" ? Number(v) : NaN);

/** Parses one /rrd_updates reply. Unknown metrics are ignored; NaN cells (no data) are skipped. */
export function parseRrdUpdates(text: string): RrdUpdate {
  const raw = lenientJson(text) as RawRrd;
  const legend = raw?.meta?.legend;
  if (!Array.isArray(legend) || !Array.isArray(raw.data)) throw new RrdParseError("rrd_updates: missing meta.legend or data");
  // Column → [class, uuid, metric] for CPU columns only.
  const cols: { i: number; cls: "host" | "vm"; uuid: string; metric: string }[] = [];
  legend.forEach((name, i) => {
    if (typeof name !== "string") return;
    const [, cls, uuid, metric] = name.split(":");
    if ((cls === "host" || cls === "vm") && uuid && metric && /^cpu(\d+|_avg)$/.test(metric)) cols.push({ i, cls, uuid, metric });
  });
  const rows: RrdUpdate["rows"][number][] = [];
  for (const r of raw.data as unknown[]) {
    const row = r as { t?: unknown; values?: unknown };
    const t = value(row.t);
    if (!Number.isFinite(t) || !Array.isArray(row.values)) continue;
    const vals = row.values as unknown[];
    const hostAvg = new Map<string, number>();
    const hostSum = new Map<string, { sum: number; n: number }>();
    const vms = new Map<string, number>();
    for (const c of cols) {
      const v = value(vals[c.i]);
      if (!Number.isFinite(v)) continue;
      if (c.cls === "vm") vms.set(c.uuid, (vms.get(c.uuid) ?? 0) + Math.max(0, v));
      else if (c.metric === "cpu_avg") hostAvg.set(c.uuid, v);
      else {
        const s = hostSum.get(c.uuid) ?? { sum: 0, n: 0 };
        s.sum += v;
        s.n++;
        hostSum.set(c.uuid, s);
      }
    }
    const hosts = new Map(hostAvg);
    for (const [uuid, s] of hostSum) if (!hosts.has(uuid) && s.n > 0) hosts.set(uuid, s.sum / s.n);
    rows.push({ t, hosts, vms });
  }
  rows.sort((a, b) => a.t - b.t);
  const end = value(raw.meta?.end);
  return { end: Number.isFinite(end) ? end : (rows.at(-1)?.t ?? 0), rows };
}

interface Ema {
  value: number;
  t: number;
}

/**
 * Exponentially smoothed CPU loads (τ = 60 s, weighted by the time between RRD rows, as the simulator
 * smooths its samples). The first value of a series is taken as is.
 */
export class SmoothedLoad implements LoadView {
  private readonly hosts = new Map<string, Ema>();
  private readonly vms = new Map<string, Ema>();

  constructor(private readonly tauMs = LOAD_TAU_MS) {}

  add(update: RrdUpdate): void {
    for (const row of update.rows) {
      const tMs = row.t * 1000;
      for (const [uuid, v] of row.hosts) this.step(this.hosts, uuid, v, tMs);
      for (const [uuid, v] of row.vms) this.step(this.vms, uuid, v, tMs);
    }
  }

  private step(map: Map<string, Ema>, key: string, v: number, tMs: number): void {
    const e = map.get(key);
    if (!e) {
      map.set(key, { value: v, t: tMs });
      return;
    }
    if (tMs <= e.t) return; // rows already seen (overlapping windows)
    e.value += emaWeight(tMs - e.t, this.tauMs) * (v - e.value);
    e.t = tMs;
  }

  host(uuid: string): number | undefined {
    return this.hosts.get(uuid)?.value;
  }

  vm(uuid: string): number | undefined {
    return this.vms.get(uuid)?.value;
  }
}
