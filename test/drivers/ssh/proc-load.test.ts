import { describe, expect, it } from "vitest";
import { cpuLoad, parseLoadavg, parseMeminfo, parseProcStat, ProcLoadSampler } from "../../../src/drivers/ssh/proc-load.js";

const STAT = (user: number, idle: number, extra = ""): string =>
  [`cpu  ${user} 10 20 ${idle} 5 0 4 6 100 0`, `cpu0 ${user / 2} 5 10 ${idle / 2} 2 0 2 3 50 0`, `cpu1 ${user / 2} 5 10 ${idle / 2} 3 0 2 3 50 0`, extra, "intr 1 2 3", "ctxt 99", "btime 1700000000", "processes 10", ""].join("\n");

describe("parseProcStat", () => {
  it.each([
    ["counts busy (user nice system irq softirq steal) and idle (idle iowait); guest is inside user already", STAT(1000, 5000), { cpu: { busy: 1000 + 10 + 20 + 0 + 4 + 6, idle: 5000 + 5 }, cpus: 2 }],
    ["old kernels with only four fields", "cpu  1 2 3 4\ncpu0 1 2 3 4\n", { cpu: { busy: 6, idle: 4 }, cpus: 1 }],
  ])("%s", (_name, text, expected) => {
    expect(parseProcStat(text)).toEqual(expected);
  });
  it.each([
    ["no aggregate line", "cpu0 1 2 3 4\n", /no aggregate cpu line/],
    ["no per-CPU lines", "cpu  1 2 3 4\n", /no cpuN lines/],
    ["garbage numbers", "cpu  1 x 3 4\ncpu0 1 2 3 4\n", /bad cpu line/],
    ["empty", "", /no aggregate/],
  ])("rejects %s", (_name, text, message) => {
    expect(() => parseProcStat(text)).toThrow(message);
  });
});

describe("cpuLoad", () => {
  it.each([
    ["half busy", { busy: 100, idle: 100 }, { busy: 150, idle: 150 }, 0.5],
    ["fully busy", { busy: 0, idle: 0 }, { busy: 40, idle: 0 }, 1],
    ["idle", { busy: 7, idle: 0 }, { busy: 7, idle: 90 }, 0],
    ["no time passed", { busy: 5, idle: 5 }, { busy: 5, idle: 5 }, undefined],
    ["counters went back (reboot)", { busy: 500, idle: 500 }, { busy: 10, idle: 20 }, undefined],
  ])("%s", (_name, prev, next, expected) => {
    expect(cpuLoad(prev, next)).toBe(expected);
  });
});

describe("parseMeminfo", () => {
  it("uses MemAvailable", () => {
    expect(parseMeminfo("MemTotal:       2097152 kB\nMemFree:         100000 kB\nMemAvailable:   1048576 kB\nActive(anon):       1632 kB\n")).toEqual({ totalMiB: 2048, availableMiB: 1024, usedMiB: 1024 });
  });
  it("falls back to MemFree + Buffers + Cached on kernels without MemAvailable", () => {
    expect(parseMeminfo("MemTotal: 4096000 kB\nMemFree: 1024000 kB\nBuffers: 512000 kB\nCached: 512000 kB\n")).toEqual({ totalMiB: 4000, availableMiB: 2000, usedMiB: 2000 });
  });
  it("rejects a file without MemTotal", () => {
    expect(() => parseMeminfo("MemFree: 1 kB\n")).toThrow(/no MemTotal/);
  });
});

describe("parseLoadavg", () => {
  it("reads the three averages", () => {
    expect(parseLoadavg("0.52 0.58 0.59 1/467 12345\n")).toEqual({ load1: 0.52, load5: 0.58, load15: 0.59 });
  });
  it("rejects garbage", () => {
    expect(() => parseLoadavg("nonsense")).toThrow(/unexpected content/);
  });
});

describe("ProcLoadSampler", () => {
  it("gives no CPU load on the first sample, then the busy fraction since the previous one", async () => {
    const stats = [STAT(1000, 5000), STAT(1300, 5100)];
    const reads: string[] = [];
    const sampler = new ProcLoadSampler((path) => {
      reads.push(path);
      if (path === "/proc/meminfo") return Promise.resolve(Buffer.from("MemTotal: 1048576 kB\nMemAvailable: 262144 kB\n"));
      return Promise.resolve(Buffer.from(stats.shift() ?? ""));
    });
    const first = await sampler.sample();
    expect(first).toEqual({ cpuLoad: undefined, cpus: 2, times: parseProcStat(STAT(1000, 5000)).cpu, memory: { totalMiB: 1024, availableMiB: 256, usedMiB: 768 } });
    const second = await sampler.sample();
    expect(second.cpuLoad).toBeCloseTo(300 / 400, 6);
    expect(reads.sort()).toEqual(["/proc/meminfo", "/proc/meminfo", "/proc/stat", "/proc/stat"]);
  });

  it("measures from the older reading when a sample comes within one clock tick of the previous one", async () => {
    const stats = [STAT(1000, 5000), STAT(1000, 5000), STAT(1100, 5100)];
    const sampler = new ProcLoadSampler((path) => Promise.resolve(Buffer.from(path === "/proc/meminfo" ? "MemTotal: 1024 kB\nMemAvailable: 512 kB\n" : (stats.shift() ?? ""))));
    await sampler.sample();
    expect((await sampler.sample()).cpuLoad).toBeUndefined();
    expect((await sampler.sample()).cpuLoad).toBeCloseTo(0.5, 6);
  });
});
