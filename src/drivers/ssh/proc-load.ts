/**
 * Host CPU load and memory from Linux /proc files. Parsing and arithmetic are pure; ProcLoadSampler
 * only keeps the previous /proc/stat reading per host and takes the file reader as a dependency.
 */

/** Aggregate CPU time of the "cpu" line of /proc/stat, in clock ticks. */
export interface CpuTimes {
  readonly busy: number;
  readonly idle: number;
}

export interface ProcStat {
  readonly cpu: CpuTimes;
  /** Online CPUs (cpuN lines). */
  readonly cpus: number;
}

export interface MemInfo {
  readonly totalMiB: number;
  /** MemAvailable (the kernel's estimate of memory usable without swapping). */
  readonly availableMiB: number;
  readonly usedMiB: number;
}

export interface LoadAvg {
  readonly load1: number;
  readonly load5: number;
  readonly load15: number;
}

export class ProcParseError extends Error {
  constructor(file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = "ProcParseError";
  }
}

export function parseProcStat(text: string): ProcStat {
  let cpu: CpuTimes | undefined;
  let cpus = 0;
  for (const line of text.split("\n")) {
    if (/^cpu\d+\s/.test(line)) cpus++;
    else if (/^cpu\s/.test(line)) {
      // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user/nice.
      const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
      if (f.length < 4 || f.some((n) => !Number.isFinite(n) || n < 0)) throw new ProcParseError("/proc/stat", `bad cpu line: ${line}`);
      const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
      // iowait is idle time (the CPU could run something else); steal is time taken by the hypervisor.
      cpu = { busy: user + nice + system + irq + softirq + steal, idle: idle + iowait };
    }
  }
  if (!cpu) throw new ProcParseError("/proc/stat", "no aggregate cpu line");
  if (cpus === 0) throw new ProcParseError("/proc/stat", "no cpuN lines");
  return { cpu, cpus };
}

/** Busy fraction (0–1) of all CPUs between two readings; undefined when no time passed or the counters went back (reboot). */
export function cpuLoad(prev: CpuTimes, next: CpuTimes): number | undefined {
  const busy = next.busy - prev.busy;
  const idle = next.idle - prev.idle;
  if (busy < 0 || idle < 0 || busy + idle === 0) return undefined;
  return busy / (busy + idle);
}

export function parseMeminfo(text: string): MemInfo {
  const kib = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) kib.set(m[1], Number(m[2]));
  }
  const total = kib.get("MemTotal");
  if (total === undefined || total === 0) throw new ProcParseError("/proc/meminfo", "no MemTotal");
  // Kernels before 3.14 have no MemAvailable: approximate it the way free(1) did.
  const available = kib.get("MemAvailable") ?? (kib.get("MemFree") ?? 0) + (kib.get("Buffers") ?? 0) + (kib.get("Cached") ?? 0);
  const mib = (k: number): number => Math.round(k / 1024);
  return { totalMiB: mib(total), availableMiB: mib(Math.min(available, total)), usedMiB: mib(total - Math.min(available, total)) };
}

export function parseLoadavg(text: string): LoadAvg {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (a === undefined || b === undefined || c === undefined || ![a, b, c].every(Number.isFinite)) throw new ProcParseError("/proc/loadavg", `unexpected content: ${text.slice(0, 80)}`);
  return { load1: a, load5: b, load15: c };
}

export interface HostLoadSample {
  /** Busy fraction of all CPUs since the previous sample; undefined on a host's first sample (or within one clock tick of the previous one). */
  readonly cpuLoad: number | undefined;
  readonly cpus: number;
  /** Cumulative CPU time of this reading (for callers that smooth over their own interval). */
  readonly times: CpuTimes;
  readonly memory: MemInfo;
}

/** Reads a remote file (SshSession.readFile with keepOpen in production). */
export type ReadRemoteFile = (path: string) => Promise<Buffer>;

export class ProcLoadSampler {
  #prev: CpuTimes | undefined;

  constructor(private readonly read: ReadRemoteFile) {}

  /** One sample: /proc/stat and /proc/meminfo read concurrently. */
  async sample(): Promise<HostLoadSample> {
    const [stat, mem] = await Promise.all([this.read("/proc/stat"), this.read("/proc/meminfo")]);
    const parsed = parseProcStat(stat.toString("utf8"));
    const prev = this.#prev;
    const load = prev ? cpuLoad(prev, parsed.cpu) : undefined;
    // Samples closer together than one clock tick see no change: keep the older reference so the next one measures the whole span.
    const unchanged = prev !== undefined && prev.busy === parsed.cpu.busy && prev.idle === parsed.cpu.idle;
    if (!unchanged) this.#prev = parsed.cpu;
    return { cpuLoad: load, cpus: parsed.cpus, times: parsed.cpu, memory: parseMeminfo(mem.toString("utf8")) };
  }
}
