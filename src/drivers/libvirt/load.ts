/**
 * Host and VM load from libvirt counters, smoothed like the simulator's (EMA, τ = 60 s): a VM's load in host
 * CPUs from its cumulative CPU time; a host's as a 0–1 fraction, either from node CPU statistics or from the sum
 * of its domains' loads (`loadSource: domains`, the only per-host truth when fake hosts share one machine).
 */
import type { NodeCpuStats, NodeMemoryStats, TypedParams } from "./native/index.js";
import { emaWeight } from "../../model/index.js";

const MIB_KIB = 1024;

/** A typed parameter as a number (BigInt counters included); undefined when absent or not numeric. */
export function numParam(params: TypedParams, key: string): number | undefined {
  const v = params[key];
  return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : undefined;
}

export function bigParam(params: TypedParams, key: string): bigint | undefined {
  const v = params[key];
  return typeof v === "bigint" ? v : typeof v === "number" && Number.isInteger(v) ? BigInt(v) : undefined;
}

/** Smoothed rate of one cumulative counter. */
class Smoothed {
  private last: { at: number; value: bigint; base: bigint } | undefined;
  value: number | undefined;

  /** `value` counts up (ns of CPU time; `base` the matching wall-time ns for node counters, else undefined). */
  update(at: number, value: bigint, base?: bigint): number | undefined {
    const prev = this.last;
    this.last = { at, value, base: base ?? 0n };
    // First reading, no time passed, or the counter restarted (a guest that moved or restarted starts at 0).
    if (!prev || at <= prev.at || value < prev.value || (base !== undefined && base <= prev.base)) return this.value;
    const raw = base !== undefined ? Number(value - prev.value) / Number(base - prev.base) : Number(value - prev.value) / ((at - prev.at) * 1e6);
    this.value = this.value === undefined ? raw : this.value + emaWeight(at - prev.at) * (raw - this.value);
    return this.value;
  }
}

/** Smoothed CPU rates by key (a domain UUID, or a host); keys not seen in a round are dropped. */
export class RateBook {
  private readonly rates = new Map<string, Smoothed>();

  /** A domain's load in host CPUs from its cumulative CPU time (ns); 0 until two readings exist. */
  cpu(key: string, at: number, cpuTimeNs: bigint): number {
    return Math.max(0, this.entry(key).update(at, cpuTimeNs) ?? 0);
  }

  /** A node's busy fraction from virNodeGetCPUStats totals (kernel + user over everything); 0 until two readings. */
  node(key: string, at: number, stats: NodeCpuStats): number {
    const busy = (stats.kernel ?? 0n) + (stats.user ?? 0n);
    return this.busyFraction(key, at, busy, busy + (stats.idle ?? 0n) + (stats.iowait ?? 0n));
  }

  /** A busy fraction from cumulative busy and total time (any unit: node stats in ns, /proc/stat in ticks). */
  busyFraction(key: string, at: number, busy: bigint, total: bigint): number {
    return clamp01(this.entry(key).update(at, busy, total) ?? 0);
  }

  /** Forgets keys other than these (domains that left, so a returning one starts afresh). */
  retain(keys: ReadonlySet<string>): void {
    for (const k of this.rates.keys()) if (!keys.has(k)) this.rates.delete(k);
  }

  private entry(key: string): Smoothed {
    let s = this.rates.get(key);
    if (!s) this.rates.set(key, (s = new Smoothed()));
    return s;
  }
}

export const clamp01 = (x: number): number => Math.min(1, Math.max(0, x));

/** Host load as a fraction from the sum of its VMs' loads (in CPUs). */
export function hostLoadFromDomains(vmLoads: readonly number[], cpus: number): number {
  const sum = vmLoads.reduce((a, b) => a + b, 0);
  return cpus > 0 ? clamp01(sum / cpus) : 0;
}

/** Memory in use on the node: total less free, buffers and page cache (KiB counters) in MiB. */
export function nodeMemoryUsedMiB(stats: NodeMemoryStats): number {
  const total = stats.total ?? 0n;
  const reclaimable = (stats.free ?? 0n) + (stats.buffers ?? 0n) + (stats.cached ?? 0n);
  return total > reclaimable ? Number(total - reclaimable) / MIB_KIB : 0;
}

/** Memory a running domain holds: its balloon's current size when reported, else its configured size. */
export function domainMemoryMiB(params: TypedParams, configuredMiB: number): number {
  const kib = numParam(params, "balloon.current");
  return kib !== undefined && kib > 0 ? kib / MIB_KIB : configuredMiB;
}

/** Rounds like the simulator's snapshot (three decimals for VM loads, four for host fractions). */
export const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;
