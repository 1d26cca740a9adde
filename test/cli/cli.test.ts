import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ballast, CLI, ROOT, type CliResult } from "../helpers/cli.js";

/**
 * The compiled `ballast` CLI end to end (the global setup builds dist/): exit codes, output shapes and
 * messages that scripts and operators rely on.
 */

const STACK_TRACE = /at .*\.js:\d+/;
const dir = mkdtempSync(join(tmpdir(), "ballast-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `name` under the test's temp folder and returns its path. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A clean error: the exit code, a short message on stderr naming what is wrong, nothing on stdout, no stack trace. */
function expectCleanError(r: CliResult, code: number, message: string | RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stdout).toBe("");
  expect(r.stderr).toMatch(/^ballast: /);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(STACK_TRACE);
  expect(r.stderr.trim().split("\n").length).toBeLessThanOrEqual(3);
}

type Json = Record<string, unknown>;

const host = (name: string, cell: string, extra: Json = {}): Json => ({
  name,
  hypervisor: "kvm",
  cell,
  pool: null,
  cpus: 32,
  memoryMiB: 131072,
  cpuLoad: 0.1,
  memoryUsedMiB: 8192,
  maintenance: false,
  reachable: true,
  sharedStorage: [`nfs-${cell}`],
  ...extra,
});

const vm = (id: string, on: string, extra: Json = {}): Json => ({
  id,
  name: `${id}-name`,
  host: on,
  state: "running",
  vcpus: 4,
  memoryMiB: 8192,
  cpuLoad: 1,
  storage: { kind: "shared", id: `nfs-${on.slice(0, 1)}` },
  volumes: 0,
  tags: [],
  ...extra,
});

/**
 * Cell a: a1 in maintenance with a shared-storage VM (drained) and a local-disk one (blocked: block
 * migration is off by default). Cell b: b1 is a CPU hotspot (95 %), b2 idle.
 */
const small = (over: Json = {}): Json => ({
  takenAt: "2024-05-01T12:00:00Z",
  hosts: [
    host("a1", "a", { cpuLoad: 0.2, memoryUsedMiB: 20480, maintenance: true, maintenanceReason: "disk swap" }),
    host("a2", "a"),
    host("b1", "b", { cpus: 16, memoryMiB: 65536, cpuLoad: 0.95, memoryUsedMiB: 24576 }),
    host("b2", "b", { cpus: 16, memoryMiB: 65536 }),
  ],
  vms: [
    vm("v1", "a1"),
    vm("v2", "a1", { storage: { kind: "local" } }),
    vm("v3", "b1", { vcpus: 8, cpuLoad: 6 }),
    vm("v4", "b1", { vcpus: 8, cpuLoad: 6 }),
    vm("v5", "b1", { vcpus: 2, memoryMiB: 4096, cpuLoad: 0.5 }),
  ],
  ...over,
});

interface PlanJson {
  moves: Record<string, unknown>[];
  blocked: Record<string, unknown>[];
}

/** A config for the simulated cluster with its state in `stateDir` and no HTTP server. */
function simConfig(name: string, extra = ""): { path: string; stateDir: string; flagDir: string } {
  const stateDir = join(dir, `${name}-state`);
  const path = file(
    `${name}.yaml`,
    [
      `stateDir: ${JSON.stringify(stateDir)}`,
      "http:",
      "  enabled: false",
      "sim:",
      "  seed: 7",
      "  meanUtilisation: 0.1 # cool hosts: no hotspot whatever the time of day, so plans hold only drains",
      "  cells:",
      "    - name: a",
      "      hosts: 3",
      "      cpus: 16",
      "      memoryMiB: 65536",
      "      vmsPerHost: 4",
      "      sharedStorage: nfs-a",
      extra,
    ].join("\n"),
  );
  return { path, stateDir, flagDir: join(stateDir, "maintenance") };
}

/** Every file and folder under `root`, relative to it. */
function tree(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, encoding: "utf8" }).sort();
}

describe("ballast plan --snapshot", () => {
  const snap = file("small.json", JSON.stringify(small()));

  it("prints {moves, blocked} with DESIGN.md's fields, moves in execution order, and exits 0", () => {
    const r = ballast(["plan", "--snapshot", snap, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout) as PlanJson;
    expect(Object.keys(out)).toEqual(["moves", "blocked"]);
    for (const m of out.moves) expect(Object.keys(m)).toEqual(["vm", "from", "to", "policy", "reason", "kind"]);
    for (const b of out.blocked) expect(Object.keys(b)).toEqual(["vm", "policy", "reason"]);
    expect(out.moves).toEqual([
      { vm: "v1", from: "a1", to: "a2", policy: "maintenance-drain", reason: "host a1 in maintenance: disk swap", kind: "live-shared" },
      expect.objectContaining({ from: "b1", to: "b2", policy: "hotspot-relief", kind: "live-shared" }),
    ]);
    expect(out.blocked).toEqual([{ vm: "v2", policy: "maintenance-drain", reason: expect.stringMatching(/block migration is disabled/) as unknown }]);
  });

  it("prints a table without --json", () => {
    const r = ballast(["plan", "--snapshot", snap]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^2 move\(s\), in execution order:\n#\s+vm\s+from\s+to\s+kind\s+policy\s+reason\n/);
    expect(r.stdout).toMatch(/\n1 blocked:\n/);
  });

  it("takes policy parameters from --config: block migration allowed moves the local-disk VM", () => {
    const { path } = simConfig("plan-override", "migration:\n  allowBlockMigration: true");
    const r = ballast(["plan", "--snapshot", snap, "--config", path, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as PlanJson;
    expect(out.blocked).toEqual([]);
    expect(out.moves).toContainEqual(expect.objectContaining({ vm: "v2", from: "a1", to: "a2", kind: "live-block" }));
  });

  it.each([
    { name: "bad JSON", file: "bad-json.json", text: '{"hosts": [}', message: /bad-json\.json:1:12: invalid JSON at position 11: unexpected "}", expected a value/ },
    { name: "an empty file", file: "empty.json", text: "", message: /empty\.json: the input is empty, expected a JSON snapshot/ },
    { name: "a VM on an unknown host", file: "unknown-host.json", text: JSON.stringify(small({ vms: [vm("v1", "a9")] })), message: /vms\[0\]\.host: got "a9", expected the name of a host listed in hosts\[\]/ },
    { name: "negative memory", file: "negative-memory.json", text: JSON.stringify(small({ vms: [vm("v1", "a1", { memoryMiB: -1 })] })), message: /vms\[0\]\.memoryMiB: got -1, expected a number > 0/ },
    { name: "a host without a name", file: "nameless-host.json", text: JSON.stringify(small({ hosts: [host("a1", "a", { name: undefined })], vms: [] })), message: /hosts\[0\]\.name: got nothing \(field missing\), expected a non-empty string/ },
  ])("rejects $name with exit 65 (EX_DATAERR) and a clear message", ({ file: name, text, message }) => {
    const path = file(name, text);
    const r = ballast(["plan", "--snapshot", path, "--json"]);
    expectCleanError(r, 65, message);
    expect(r.stderr).toContain(path);
  });

  it("a missing file exits 66 (EX_NOINPUT)", () => {
    const path = join(dir, "no-such-snapshot.json");
    expectCleanError(ballast(["plan", "--snapshot", path, "--json"]), 66, `${path}: cannot read snapshot: ENOENT`);
  });

  it("lists many problems at once, still without a stack trace", () => {
    const vms = Array.from({ length: 80 }, (_, i) => vm(`v${i}`, "a1", { vcpus: 0 }));
    const r = ballast(["plan", "--snapshot", file("many.json", JSON.stringify(small({ vms }))), "--json"]);
    expect(r.code).toBe(65);
    expect(r.stderr).toMatch(/invalid snapshot \(51 problems\)/);
    expect(r.stderr).toMatch(/… and 30 more/);
    expect(r.stderr).not.toMatch(STACK_TRACE);
  });
});

describe("ballast check-config", () => {
  it.each(["config/demo.yaml", "config/ballast.example.yaml"])("accepts %s (exit 0)", (cfg) => {
    const r = ballast(["check-config", "--config", cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${cfg}: ok\n`);
  });

  it("reports an invalid file with file:line:column and exits 78 (EX_CONFIG)", () => {
    const path = file("bad.yaml", "# comment\nthresholds:\n  cpuHigh: 1.5\nsim:\n  cells:\n    - name: a\n      hosts: 2\n");
    const r = ballast(["check-config", "--config", path]);
    expect(r.code).toBe(78);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`${path}:3:12: thresholds.cpuHigh: got 1.5, expected a number ≤ 1`);
    expect(r.stderr).toContain(`${path}: 1 error(s)`);
    expect(r.stderr).not.toMatch(STACK_TRACE);
  });

  it("other commands refuse an invalid config with 78 too", () => {
    const path = file("bad-drain.yaml", "stateDir: 5\nsim: {cells: [{name: a, hosts: 2}]}\n");
    const r = ballast(["drain", "a-h1", "--config", path]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(new RegExp(`^ballast: ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:1:\\d+: stateDir: `));
    expect(r.stderr).not.toMatch(STACK_TRACE);
  });
});

describe("ballast drain / undrain", () => {
  const { path, stateDir, flagDir } = simConfig("drain");

  it("drain writes the flag file with the reason; undrain removes it", () => {
    const set = ballast(["drain", "a-h2", "--config", path, "--reason", "firmware update"]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe(`a-h2: maintenance flag set in ${flagDir}; the daemon drains it within seconds\n`);
    expect(readFileSync(join(flagDir, "a-h2"), "utf8")).toBe("firmware update\n");
    expect(tree(flagDir)).toEqual(["a-h2"]);

    const cleared = ballast(["undrain", "a-h2", "--config", path]);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toBe("a-h2: maintenance flag removed\n");
    expect(existsSync(join(flagDir, "a-h2"))).toBe(false);

    const again = ballast(["undrain", "a-h2", "--config", path]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe("a-h2: was not in maintenance\n");
  });

  it("the drained host shows in a plan on the live (simulated) cluster", () => {
    expect(ballast(["drain", "a-h1", "--config", path, "-r", "disk"]).code).toBe(0);
    const r = ballast(["plan", "--config", path, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as PlanJson;
    expect(out.moves.length).toBeGreaterThan(0);
    for (const m of out.moves) expect(m).toMatchObject({ from: "a-h1", policy: "maintenance-drain", reason: "host a-h1 in maintenance: disk" });
    for (const b of out.blocked) expect(b).toMatchObject({ policy: "maintenance-drain" });
    // Every one of a-h1's 4 VMs is either moved or reported blocked.
    expect(out.moves.length + out.blocked.length).toBe(4);
    expect(ballast(["undrain", "a-h1", "--config", path]).code).toBe(0);
  });

  it.each(["../x", "a/b", "$(reboot)", "..", ".hidden", "-", "a b", "x".repeat(300)])("refuses the host name %j with exit 64 and writes nothing", (name) => {
    mkdirSync(flagDir, { recursive: true });
    const before = tree(dir);
    for (const cmd of ["drain", "undrain"]) {
      const r = ballast([cmd, "--config", path, "--", name]);
      expectCleanError(r, 64, `${cmd} ${JSON.stringify(name)}: invalid host name`);
    }
    expect(tree(dir)).toEqual(before);
    expect(tree(flagDir)).toEqual([]);
    expect(existsSync(join(stateDir, "x"))).toBe(false);
  });
});

describe("ballast snapshot → plan --snapshot", () => {
  const { path, stateDir } = simConfig("roundtrip");

  it("a snapshot taken from the simulated cluster is accepted by plan --snapshot", () => {
    const snap = ballast(["snapshot", "--config", path, "--json"]);
    expect(snap.code, snap.stderr).toBe(0);
    const parsed = JSON.parse(snap.stdout) as { hosts: { name: string; cell: string }[]; vms: unknown[] };
    expect(parsed.hosts.map((h) => h.name)).toEqual(["a-h1", "a-h2", "a-h3"]);
    expect(parsed.vms).toHaveLength(12);

    const r = ballast(["plan", "--snapshot", file("roundtrip.json", snap.stdout), "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys(JSON.parse(r.stdout) as PlanJson)).toEqual(["moves", "blocked"]);
    // Sampling directly (no daemon, no HTTP) leaves no database behind.
    expect(existsSync(join(stateDir, "ballast.db"))).toBe(false);
  });

  it("prints a host table without --json", () => {
    const r = ballast(["snapshot", "--config", path]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Sampled from sim at \S+: 3 hosts, 12 VMs\nhost\s+cell\s+cpu\s+mem\s+vms\s+maintenance\n/);
  });
});

describe("ballast: usage and unavailable services", () => {
  it("--help exits 0 and lists every command", () => {
    const r = ballast(["--help"]);
    expect(r.code).toBe(0);
    for (const cmd of ["run", "plan", "snapshot", "status", "history", "drain", "undrain", "check-config", "simulate"]) {
      expect(r.stdout).toMatch(new RegExp(`\\n  ${cmd} `));
    }
  });

  it("--version prints package.json's version", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    expect(ballast(["--version"])).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it("an unknown command or option exits 64 (EX_USAGE)", () => {
    const r = ballast(["frobnicate"]);
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(ballast(["plan", "--snapshott", "x"]).code).toBe(64);
  });

  it("bad option values exit 64", () => {
    const { path } = simConfig("usage");
    expectCleanError(ballast(["simulate", "--config", path, "--duration", "soon"]), 64, /--duration: got "soon", expected a duration like 90s/);
    expectCleanError(ballast(["history", "--config", path, "--limit", "0"]), 64, /--limit: expected a positive integer/);
  });

  it("history without a database exits 69 (EX_UNAVAILABLE) with a clear message", () => {
    const { path, stateDir } = simConfig("history");
    expectCleanError(ballast(["history", "--config", path]), 69, `${join(stateDir, "ballast.db")}: no history yet (has the daemon run with this config?)`);
    expect(existsSync(join(stateDir, "ballast.db"))).toBe(false);
  });

  it("status without a running daemon exits 69", () => {
    const { path } = simConfig("status", "");
    const cfg = file("status-port.yaml", readFileSync(path, "utf8").replace("enabled: false", "enabled: true\n  port: 1"));
    expectCleanError(ballast(["status", "--config", cfg]), 69, /no daemon answered at http:\/\/127\.0\.0\.1:1\/api\/status/);
  });

  it("plan with neither a snapshot nor a readable config exits 78 naming the file", () => {
    const missing = join(dir, "missing.yaml");
    const r = ballast(["plan", "--config", missing]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(missing);
    expect(r.stderr).not.toMatch(STACK_TRACE);
  });
});

describe("start-up: each command loads only what it needs", () => {
  /** The URLs of every module the CLI loads for `args`, seen by a module loader hook. */
  function loadedModules(args: readonly string[]): string[] {
    const hooks = `import { writeSync } from "node:fs";
      export async function load(url, context, next) { writeSync(2, "BALLAST_LOADED " + url + "\\n"); return next(url, context); }`;
    const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
    const r = spawnSync(process.execPath, ["--import", `data:text/javascript,${encodeURIComponent(register)}`, CLI, ...args], { cwd: ROOT, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    return r.stderr.split("\n").flatMap((l) => (l.startsWith("BALLAST_LOADED ") ? [l.slice("BALLAST_LOADED ".length)] : []));
  }
  const DAEMON_ONLY = [
    /\/node_modules\/(yaml|prom-client|pino|better-sqlite3)\//,
    /^node:https?$/,
    /\/dist\/src\/(config\/load|store\/|daemon\/(service|daemon|metrics|http|logger|executor)|drivers\/sim\/)/,
  ];

  it("plan --snapshot FILE --json loads no YAML parser, metrics, logger, SQLite, HTTP server or daemon", () => {
    const loaded = loadedModules(["plan", "--snapshot", file("startup.json", JSON.stringify(small())), "--json"]);
    expect(loaded.some((u) => u.endsWith("/dist/src/daemon/planner.js"))).toBe(true);
    for (const pattern of DAEMON_ONLY) expect(loaded.filter((u) => pattern.test(u))).toEqual([]);
  });

  it("--help loads no command's modules at all", () => {
    const loaded = loadedModules(["--help"]);
    expect(loaded.filter((u) => /\/node_modules\/(?!commander\/)/.test(u) || /\/dist\/src\/(config|daemon|policies|drivers|store)\//.test(u))).toEqual([]);
  });
});

describe("ballast simulate", () => {
  it("fast-forwards the daemon over the demo cluster and reports what it did", () => {
    const r = ballast(["simulate", "--config", "config/demo.yaml", "--duration", "2h", "--json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as {
      durationHours: number;
      rounds: number;
      migrations: { total: number; byOutcome: Record<string, number> };
      gibCopied: number;
      hotspotHostMinutes: number;
      imbalance: { meanCpu: number; maxCpu: number };
    };
    expect(report.durationHours).toBe(2);
    expect(report.rounds).toBe(120);
    // The demo's hot host is relieved: at least one migration, data copied, hot minutes bounded.
    expect(report.migrations.byOutcome.succeeded).toBeGreaterThanOrEqual(1);
    expect(report.gibCopied).toBeGreaterThan(0);
    expect(report.hotspotHostMinutes).toBeLessThan(30);
    expect(report.imbalance.maxCpu).toBeGreaterThanOrEqual(report.imbalance.meanCpu);
    // Deterministic: the same seed gives the same report.
    expect(ballast(["simulate", "--config", "config/demo.yaml", "--duration", "2h", "--json"]).stdout).toBe(r.stdout);
  });

  it("a bad duration exits 64 with the expected format", () => {
    const r = ballast(["simulate", "--config", "config/demo.yaml", "--duration", "forever"]);
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/--duration: got "forever", expected a duration like 90s/);
  });
});
