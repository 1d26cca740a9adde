import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { checkConfig, type ResolvedConfig } from "../../src/config/index.js";
import { createLogger } from "../../src/daemon/logger.js";
import { startDaemon, type RunningDaemon } from "../../src/daemon/service.js";
import { plan } from "../../src/daemon/planner.js";
import type { Driver, MigrationHandle } from "../../src/drivers/driver.js";
import { createSimCluster, SimDriver } from "../../src/drivers/sim/index.js";
import { hostId, vmId, cellId, type ClusterSnapshot, type HostId, type VmId } from "../../src/model/index.js";
import { parseSnapshot } from "../../src/model/parse-snapshot.js";
import { migrationSchema, thresholdsSchema } from "../../src/config/schema.js";
import { enabledPolicies, policyConfigSchema } from "../../src/policies/registry.js";
import { VirtualClock } from "../../src/util/clock.js";
import { CLI, ROOT, type CliResult } from "../helpers/cli.js";
import { expectNoTrace, fakeShells, HOSTILE_NAMES, readIfAny } from "./hostile.js";

/**
 * Host, cell and VM names full of shell metacharacters, quotes, control characters and 4 KiB of text go
 * through the planner, the daemon, SQLite, the logs, /api/status, /metrics and the CLI's text and JSON
 * output: JSON stays valid and round-trips every name exactly, text output shows control characters
 * escaped, Prometheus labels are escaped, and no shell is ever started (a fake `sh` first on PATH says so).
 */

const dir = mkdtempSync(join(tmpdir(), "ballast-hostile-names-"));
const shellLog = join(dir, "shell-calls.log");
const fakeBin = fakeShells(dir, shellLog);
const PATH = `${fakeBin}:${process.env.PATH ?? ""}`;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** Runs the compiled CLI with the fake shells first on PATH. */
const cli = (args: readonly string[]): CliResult => {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000, env: { ...process.env, PATH } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

/** The same, without blocking this process's event loop (the in-process daemon must answer `ballast status`). */
const cliAsync = (args: readonly string[]): Promise<CliResult> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, PATH } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });

/** One cell named hostilely; every host and VM named from HOSTILE_NAMES; the first host in maintenance. */
function hostileSnapshot(): ClusterSnapshot {
  const cell = "cell $(x) \"q\"\n<b>";
  const hosts = HOSTILE_NAMES.map((name, i) => ({
    name,
    hypervisor: "kvm",
    cell,
    pool: null,
    cpus: 32,
    memoryMiB: 131072,
    cpuLoad: i === 1 ? 0.97 : 0.1,
    memoryUsedMiB: 16384,
    maintenance: i === 0,
    reachable: true,
    sharedStorage: ["nfs `x`"],
  }));
  const vms = HOSTILE_NAMES.flatMap((host, i) =>
    [0, 1].map((j) => ({
      id: `${HOSTILE_NAMES[(i + j + 3) % HOSTILE_NAMES.length] ?? ""}#${i}.${j}`,
      name: `${HOSTILE_NAMES[(i + 5) % HOSTILE_NAMES.length] ?? ""}`,
      host,
      state: "running",
      vcpus: 4,
      memoryMiB: 4096,
      cpuLoad: i === 1 ? 14 : 1,
      storage: { kind: "shared", id: "nfs `x`" },
      tags: ["$(tag)", "__proto__"],
    })),
  );
  return parseSnapshot(JSON.stringify({ takenAt: "2026-01-01T00:00:00Z", hosts, vms }), "hostile");
}

describe("hostile names through `ballast plan --snapshot`", () => {
  const snapshot = hostileSnapshot();
  const file = join(dir, "hostile-snapshot.json");
  writeFileSync(file, JSON.stringify(snapshot));

  it("--json: valid JSON, names exactly as given, the maintenance host drained", () => {
    const r = cli(["plan", "--snapshot", file, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { moves: { vm: string; from: string; to: string }[]; blocked: { vm: string }[] };
    const onFirst = snapshot.vms.filter((v) => v.host === HOSTILE_NAMES[0]).map((v) => v.id as string);
    const drained = out.moves.filter((m) => m.from === HOSTILE_NAMES[0]).map((m) => m.vm);
    expect([...drained, ...out.blocked.map((b) => b.vm)].sort()).toEqual(expect.arrayContaining(onFirst.sort()));
    expect(drained.length).toBeGreaterThan(0);
    for (const m of out.moves) {
      expect(snapshot.vms.some((v) => v.id === m.vm)).toBe(true);
      expect(HOSTILE_NAMES).toContain(m.to);
    }
  });

  it("text: control characters are escaped, one table row per move", () => {
    const r = cli(["plan", "--snapshot", file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const json = JSON.parse(cli(["plan", "--snapshot", file, "--json"]).stdout) as { moves: unknown[]; blocked: unknown[] };
    const rows = r.stdout.split("\n").filter((l) => /^\d+ {2}/.test(l));
    expect(rows).toHaveLength(json.moves.length);
    expect(r.stdout).toContain("\\u001b[2J");
  });

  it("prototype keys as names plan like any other name and leave Object.prototype alone", () => {
    const proto = Object.getOwnPropertyNames(Object.prototype).sort();
    const result = plan(snapshot, {
      policies: enabledPolicies(policyConfigSchema.parse({})),
      thresholds: thresholdsSchema.parse({}),
      migration: migrationSchema.parse({}),
      nowMs: 0,
      explain: true,
    });
    expect(result.moves.length).toBeGreaterThan(0);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(proto);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(typeof ({} as { toString: unknown }).toString).toBe("function");
  });

  it("no shell was started (and the fake shell would have said so)", () => {
    expect(readIfAny(shellLog)).toBe("");
    // The control: anything that does use a shell finds the fake one.
    spawnSync("sh", ["-c", "true"], { env: { PATH: fakeBin } });
    expect(readIfAny(shellLog)).toMatch(/^sh /);
    rmSync(shellLog);
  });
});

/** The simulator with its hosts, cell and VMs renamed hostilely (sim names are generated; the driver seam is not). */
class RenamingDriver implements Driver {
  private readonly hosts = new Map<string, string>();
  private readonly hostsBack = new Map<string, string>();
  private readonly vms = new Map<string, string>();
  private readonly vmsBack = new Map<string, string>();

  constructor(private readonly inner: Driver) {}
  get name(): string {
    return this.inner.name;
  }
  get capabilities(): Driver["capabilities"] {
    return this.inner.capabilities;
  }
  private host(h: string): HostId {
    let n = this.hosts.get(h);
    if (n === undefined) {
      n = HOSTILE_NAMES[this.hosts.size] ?? `overflow ${this.hosts.size}`;
      this.hosts.set(h, n);
      this.hostsBack.set(n, h);
    }
    return hostId(n);
  }
  private vm(v: string): VmId {
    let n = this.vms.get(v);
    if (n === undefined) {
      n = `${HOSTILE_NAMES[this.vms.size % HOSTILE_NAMES.length] ?? ""}#${this.vms.size}`;
      this.vms.set(v, n);
      this.vmsBack.set(n, v);
    }
    return vmId(n);
  }
  private readonly hostBack = (h: HostId): HostId => hostId(this.hostsBack.get(h) ?? h);
  private readonly vmBack = (v: VmId): VmId => vmId(this.vmsBack.get(v) ?? v);

  async sample(): Promise<ClusterSnapshot> {
    const s = await this.inner.sample();
    return {
      ...s,
      hosts: s.hosts.map((h) => ({ ...h, name: this.host(h.name), cell: cellId(`${h.cell} $(cell)\n"<i>"`) })),
      vms: s.vms.map((v) => ({ ...v, id: this.vm(v.id), name: `${v.name}\u202e$(name)`, host: this.host(v.host) })),
    };
  }
  async migrate(r: Parameters<Driver["migrate"]>[0]): Promise<MigrationHandle> {
    return this.inner.migrate({ ...r, vm: this.vmBack(r.vm), from: this.hostBack(r.from), to: this.hostBack(r.to) });
  }
  async locate(vm: VmId): ReturnType<Driver["locate"]> {
    const l = await this.inner.locate(this.vmBack(vm));
    return { vm, placements: l.placements.map((p) => ({ ...p, host: this.host(p.host) })) };
  }
  cancel = (vm: VmId): Promise<void> => this.inner.cancel(this.vmBack(vm));
  resume = (vm: VmId, host: HostId): Promise<void> => this.inner.resume(this.vmBack(vm), this.hostBack(host));
  close = (): Promise<void> => this.inner.close();
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });

describe("hostile names through the daemon: SQLite, logs, HTTP, metrics, history and status", () => {
  const stateDir = join(dir, "state");
  const configFile = join(dir, "ballast.yaml");
  const logLines: string[] = [];
  let running: RunningDaemon;
  let base: string;
  let config: ResolvedConfig;
  const savedPath = process.env.PATH;

  beforeAll(async () => {
    const port = await freePort();
    writeFileSync(
      configFile,
      stringify({
        stateDir,
        http: { listen: "127.0.0.1", port },
        policies: { "hotspot-relief": { sustainMinutes: 0 } },
        sim: { seed: 5, cells: [{ name: "a", hosts: 6, vmsPerHost: 3, sharedStorage: "nfs" }], hotHosts: ["a-h1"], heavyDirtierFraction: 0, migrationFailureRate: 0.3 },
      }),
    );
    const checked = checkConfig(configFile);
    if (!checked.ok) throw new Error(JSON.stringify(checked.errors));
    config = checked.config;
    // In-process: any shell the daemon started would be looked up on this PATH.
    process.env.PATH = PATH;
    const clock = new VirtualClock();
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        logLines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
        cb();
      },
    });
    running = await startDaemon({
      configFile,
      config,
      log: createLogger("debug", sink),
      clock,
      driver: new RenamingDriver(new SimDriver(createSimCluster(config.sim ?? (undefined as never), clock), { ownsCluster: true })),
      schedule: false,
    });
    base = `http://127.0.0.1:${running.httpPort ?? 0}`;
    // Rounds until migrations have run (the hot host is relieved); the virtual clock makes each one instant.
    for (let i = 0; i < 20 && running.store.recentMigrations(10).length < 3; i++) await running.daemon.trigger("test");
    expect(running.store.recentMigrations(10).length).toBeGreaterThanOrEqual(3);
  }, 120_000);

  afterAll(async () => {
    await running.stop();
    process.env.PATH = savedPath;
  });

  const isHostile = (s: unknown): boolean => typeof s === "string" && (HOSTILE_NAMES.includes(s) || HOSTILE_NAMES.some((n) => s.startsWith(`${n}#`)));

  it("logs: every line is one JSON object; names come back exactly", () => {
    expect(logLines.length).toBeGreaterThan(10);
    const records = logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const named = records.filter((r) => r.msg === "migration started" || r.msg === "decision");
    expect(named.length).toBeGreaterThan(0);
    for (const r of named) {
      expect(isHostile(r.vm), String(r.vm)).toBe(true);
      expect(isHostile(r.host), String(r.host)).toBe(true);
      expect(isHostile(r.to), String(r.to)).toBe(true);
    }
  });

  it("/api/status and /api/snapshot: valid JSON; the snapshot round-trips through the snapshot parser", async () => {
    const status = (await (await fetch(`${base}/api/status`)).json()) as { cells: { cell: string; hosts: { name: string }[] }[] };
    const names = status.cells.flatMap((c) => c.hosts.map((h) => h.name));
    expect(names.sort()).toEqual(HOSTILE_NAMES.slice(0, 6).sort());
    const text = await (await fetch(`${base}/api/snapshot`)).text();
    const snap = parseSnapshot(text, "api");
    expect(snap.hosts.map((h) => h.name).sort()).toEqual(HOSTILE_NAMES.slice(0, 6).sort());
  });

  it("the status page carries no cluster data in its markup (it renders names with textContent)", async () => {
    const html = await (await fetch(`${base}/`)).text();
    for (const n of HOSTILE_NAMES.slice(0, 6)) if (n.length > 3) expect(html).not.toContain(n);
    const source = readFileSync(join(ROOT, "src/daemon/status-page.ts"), "utf8");
    expect(source).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });

  it("/metrics: every label escaped (promtool accepts it), each hostile host one series", async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(r.error).toBeUndefined();
    // promtool lints names and help too (exit 3 with warnings); a parse error is what must not happen.
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/error while linting|text format parsing error/);
    for (const line of text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))) {
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")*\})? \S+$/);
    }
    const escaped = (s: string): string => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
    for (const n of HOSTILE_NAMES.slice(0, 6)) expect(text).toContain(`host="${escaped(n)}"`);
  });

  it("`ballast history` and `ballast status`: JSON valid, text escaped, no stack trace", async () => {
    for (const args of [["history"], ["history", "--json"], ["status"], ["status", "--json"], ["history", "--vm", `${HOSTILE_NAMES[0] ?? ""}#0`]]) {
      const r = await cliAsync([...args, "--config", configFile]);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      expectNoTrace(r.stderr);
      if (args.includes("--json")) {
        const text = JSON.stringify(JSON.parse(r.stdout));
        expect(HOSTILE_NAMES.slice(0, 6).some((n) => text.includes(JSON.stringify(n).slice(1, -1)))).toBe(true);
      } else {
        expect(r.stdout, args.join(" ")).not.toMatch(RAW_CONTROL);
      }
    }
  });

  it("no shell was started by the daemon or the CLI", () => {
    expect(readIfAny(shellLog)).toBe("");
  });

  it("the state directory holds only the database, its WAL files, the lock (ballast.pid) and the flag directory", () => {
    const entries = readdirSync(stateDir).sort();
    for (const e of entries) expect(e).toMatch(/^(ballast\.db(-wal|-shm)?|ballast\.pid|maintenance)$/);
    expect(statSync(join(stateDir, "maintenance")).isDirectory()).toBe(true);
  });
});

describe("source: child processes never go through a shell", () => {
  /** Every .ts file under src/, drivers included (those that land later are covered as they land). */
  const files = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(d, e.name)) : e.name.endsWith(".ts") ? [join(d, e.name)] : []));

  it("uses only execFile/spawn with argument lists: no exec(), execSync(), shell: true or sh -c", () => {
    const users: string[] = [];
    for (const f of files(join(ROOT, "src"))) {
      const text = readFileSync(f, "utf8");
      if (!/node:child_process|from "child_process"/.test(text)) continue;
      users.push(f.slice(ROOT.length));
      expect(text, f).not.toMatch(/\bexec(Sync)?\s*\(|import\s*\{[^}]*\bexec(Sync)?\b[^}]*\}\s*from\s*"(node:)?child_process"/);
      expect(text, f).not.toMatch(/shell\s*:\s*(true|["'`])/);
      expect(text, f).not.toMatch(/["'`](\/bin\/)?(ba|da|z)?sh["'`]\s*,\s*\[\s*["'`]-c/);
    }
    // So the check is known to have looked at something: the sd_notify fallback spawns perl with argv.
    expect(users).toContain("src/daemon/notify.ts");
  });
});
