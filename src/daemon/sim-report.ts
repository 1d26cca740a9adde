import { imbalance, type ClusterSnapshot, type HostId, type VmId } from "../model/index.js";

/** A VM back on a host it left less than this long ago is a ping-pong. */
export const PING_PONG_WINDOW_MS = 6 * 3_600_000;

/** One migration job as the simulated cluster ended it, whoever started it. */
export interface MigrationRecord {
  readonly vm: VmId;
  readonly from: HostId;
  readonly to: HostId;
  readonly status: "succeeded" | "failed" | "aborted";
  readonly startedAt: number;
  readonly endedAt: number;
  /** Data copied, MiB (succeeded jobs only). */
  readonly dataMiB: number;
  /** What asked for it: a ballast policy, or a baseline's name. */
  readonly policy: string;
}

export interface SimulationReport {
  readonly scenario?: { readonly name: string; readonly description: string };
  readonly algorithm: string;
  readonly durationHours: number;
  readonly rounds: number;
  readonly migrations: { readonly total: number; readonly byOutcome: Record<string, number>; readonly byPolicy: Record<string, number> };
  readonly gibCopied: number;
  /** Time hosts spent at or above cpuHigh, summed over hosts. */
  readonly hotspotHostMinutes: number;
  /** Per-cell standard deviation of host load (time-weighted mean, and maximum, over the run). */
  readonly imbalance: { readonly meanCpu: number; readonly maxCpu: number; readonly meanMemory: number; readonly maxMemory: number };
  /** Successful migrations that put a VM back on a host it had left within PING_PONG_WINDOW_MS. */
  readonly pingPongs: number;
  readonly blockedByReason: Record<string, number>;
  readonly convergenceFailures: number;
}

/** Ping-pongs in a migration history (any order): a VM arriving on a host it left within `windowMs`. */
export function countPingPongs(records: readonly MigrationRecord[], windowMs: number = PING_PONG_WINDOW_MS): number {
  const moves = records.filter((r) => r.status === "succeeded").sort((a, b) => a.endedAt - b.endedAt);
  const left = new Map<string, number>();
  let n = 0;
  for (const m of moves) {
    const back = left.get(`${m.vm}\u0000${m.to}`);
    if (back !== undefined && m.endedAt - back <= windowMs) n++;
    left.set(`${m.vm}\u0000${m.from}`, m.endedAt);
  }
  return n;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * The one place a simulation's figures are computed, for ballast and the baselines alike: cluster samples (each
 * stands for the time until the next one), migrations as the simulator ended them, and blocked moves by code.
 */
export class ReportCollector {
  private last: { snapshot: ClusterSnapshot; atMs: number } | undefined;
  private hotMs = 0;
  private weightMs = 0;
  private cpuSum = 0;
  private memSum = 0;
  private cpuMax = 0;
  private memMax = 0;
  private readonly records: MigrationRecord[] = [];
  private readonly blockedCounts: Record<string, number> = {};

  constructor(private readonly cpuHigh: number) {}

  sample(snapshot: ClusterSnapshot, atMs: number): void {
    this.close(atMs);
    this.last = { snapshot, atMs };
  }

  migration(record: MigrationRecord): void {
    this.records.push(record);
  }

  blocked(code: string): void {
    this.blockedCounts[code] = (this.blockedCounts[code] ?? 0) + 1;
  }

  /** Accounts the last sample up to `atMs`. */
  private close(atMs: number): void {
    if (!this.last) return;
    const dt = atMs - this.last.atMs;
    if (dt <= 0) return;
    const { snapshot } = this.last;
    const hot = snapshot.hosts.filter((h) => h.reachable && h.cpuLoad >= this.cpuHigh).length;
    this.hotMs += hot * dt;
    for (const c of imbalance(snapshot)) {
      this.cpuSum += c.cpu * dt;
      this.memSum += c.memory * dt;
      this.weightMs += dt;
      this.cpuMax = Math.max(this.cpuMax, c.cpu);
      this.memMax = Math.max(this.memMax, c.memory);
    }
    this.last = { snapshot, atMs };
  }

  report(meta: { algorithm: string; scenario?: { name: string; description: string }; startMs: number; endMs: number; rounds: number }): SimulationReport {
    this.close(meta.endMs);
    const byOutcome: Record<string, number> = {};
    const byPolicy: Record<string, number> = {};
    let mib = 0;
    for (const m of this.records) {
      byOutcome[m.status] = (byOutcome[m.status] ?? 0) + 1;
      byPolicy[m.policy] = (byPolicy[m.policy] ?? 0) + 1;
      mib += m.dataMiB;
    }
    const w = this.weightMs || 1;
    return {
      ...(meta.scenario && { scenario: meta.scenario }),
      algorithm: meta.algorithm,
      durationHours: (meta.endMs - meta.startMs) / 3_600_000,
      rounds: meta.rounds,
      migrations: { total: this.records.length, byOutcome, byPolicy },
      gibCopied: round3(mib / 1024),
      hotspotHostMinutes: round3(this.hotMs / 60_000),
      imbalance: { meanCpu: round3(this.cpuSum / w), maxCpu: round3(this.cpuMax), meanMemory: round3(this.memSum / w), maxMemory: round3(this.memMax) },
      pingPongs: countPingPongs(this.records),
      blockedByReason: { ...this.blockedCounts },
      convergenceFailures: byOutcome.aborted ?? 0,
    };
  }
}
