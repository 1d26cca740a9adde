/**
 * Crash safety with a real SIGKILL (issue 8, item 1). The daemon runs as a child process (the compiled CLI,
 * `ballast run`) against the XAPI simulator, which lives in this test process and so outlives every kill, as
 * a real pool outlives a crashed ballast. The child is killed at seeded random points chosen by what it is
 * doing — start-up and reconciliation, sampling and planning, between the journalled intent and the driver
 * call, mid-migration, after XAPI finished but before the journal was closed, right around the journal and
 * round writes, a maintenance flag change — and restarted on the same state directory. After each restart:
 * the stale lock was taken over, every VM is on exactly one host in its original power state, no task of a
 * dead instance is still pending in XAPI, every journal record it left open was closed with the outcome
 * XAPI shows, and the database is intact. Drains rotate over the hosts until the kill budget is spent; each
 * completed drain leaves its host empty and disabled, and the others enabled.
 *
 * The phase of each kill is read from evidence (the journal and rounds in the database, the log lines and
 * the XAPI calls the dead instance had made), not from what the kill aimed at. Nothing outside the state and
 * flag directories is written: HOME and TMPDIR stay empty, and no file open for writing elsewhere is seen
 * in /proc at any kill.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { createClient, type Xapi } from "xen-api";
import { stringify } from "yaml";
import { seededRng, type Rng } from "../../src/util/rng.js";
import { startBallast, type RunningCli } from "../helpers/cli.js";
import { startXapiSim, type CallRecord, type PoolSpec, type PowerState, type VmSpec, type XapiSim } from "../xapi-sim/index.js";
import { tree } from "./hostile.js";

const GiB = 1024;
/** MiB copied per second: guests of 1–3 GiB move in 0.5–1.5 s, long enough to be killed half-way. */
const SPEED = 2048;
const HOSTS = ["h1", "h2", "h3"] as const;
const KILLS_WANTED = 50;

interface Variant {
  readonly name: string;
  readonly seed: number;
  readonly kills: number;
  /** Local-disk guests move cold (shutdown, disk copy, start) instead of by Storage XenMotion. */
  readonly cold: boolean;
}

const VARIANTS: readonly Variant[] = [
  { name: "live moves (pool_migrate and Storage XenMotion)", seed: 8101, kills: 20, cold: false },
  { name: "cold moves of local-disk guests", seed: 8102, kills: 16, cold: true },
  { name: "live moves, second seed", seed: 8103, kills: 20, cold: false },
];

type Target = "startup" | "sampling" | "sample-writes" | "round" | "recheck" | "driver-call" | "migrating" | "guest-stopped" | "verify" | "journal-close" | "flag-change";

interface Kill {
  readonly target: Target;
  readonly phase: string;
  /** Journal records open right after the kill, by id. */
  readonly open: readonly number[];
  /** XAPI VM tasks pending right after the kill. */
  readonly pendingTasks: readonly string[];
  /** What reconciliation closed the open records as (filled after the restart). */
  outcomes: string[];
}

const tally = {
  kills: [] as Kill[],
  drains: 0,
  restarts: 0,
  startedAt: Date.now(),
  fdViolations: [] as string[],
  recoveries: {} as Record<string, number>,
  /** Spawn to first sample, per restart that got there. */
  readyMs: [] as number[],
  variants: [] as string[],
};

/** What restarts did to repair what a kill left, by the log line that says so. */
const RECOVERY_LINES = new Set([
  "replaced a stale lock left by a process that is gone",
  "reconciled unfinished migration",
  "started a guest an unfinished cold move had stopped",
  "host re-enabled in XAPI after maintenance",
]);

afterAll(() => {
  const count = (key: (k: Kill) => string): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const k of tally.kills) out[key(k)] = (out[key(k)] ?? 0) + 1;
    return out;
  };
  const byOutcome: Record<string, number> = {};
  for (const k of tally.kills) for (const o of k.outcomes.length ? k.outcomes : ["nothing open"]) byOutcome[o] = (byOutcome[o] ?? 0) + 1;
  console.log(
    [
      `[sigkill] ${tally.kills.length} SIGKILLs, ${tally.restarts} restarts, ${tally.drains} drains completed, ${((Date.now() - tally.startedAt) / 1000).toFixed(1)} s`,
      `[sigkill] by phase: ${JSON.stringify(count((k) => k.phase), null, 1).replace(/\n\s*/g, " ")}`,
      `[sigkill] by target: ${JSON.stringify(count((k) => k.target), null, 1).replace(/\n\s*/g, " ")}`,
      `[sigkill] by reconciled outcome: ${JSON.stringify(byOutcome, null, 1).replace(/\n\s*/g, " ")}`,
      `[sigkill] repairs logged by restarts (before their first sample): ${JSON.stringify(tally.recoveries, null, 1).replace(/\n\s*/g, " ")}`,
      `[sigkill] restart to first sample (ms): median ${percentile(tally.readyMs, 0.5)}, p95 ${percentile(tally.readyMs, 0.95)}, max ${percentile(tally.readyMs, 1)} over ${tally.readyMs.length}`,
      ...tally.variants.map((x) => `[sigkill] ${x}`),
    ].join("\n"),
  );
});

function percentile(xs: readonly number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

// ------------------------------------------------------------------------------------------------ cluster

const guest = (name: string, host: string, memoryMiB: number, extra: Partial<VmSpec> = {}): VmSpec => ({
  name,
  host,
  powerState: "Running",
  memoryMiB,
  vcpus: 2,
  cpuLoad: 0.05,
  disks: [{ sr: "nfs", sizeMiB: 4 * GiB }],
  ...extra,
});

/** Three hosts; h1, drained first, holds most guests: shared-disk ones, local-disk ones and a halted one. */
function poolSpec(v: Variant, rng: Rng): PoolSpec {
  const mem = (): number => rng.int(2, 6) * 512;
  const local = (name: string): VmSpec =>
    guest(name, "h1", 1 * GiB, { disks: [{ sr: "local-h1", sizeMiB: 1 * GiB }], ...(v.cold && { tags: ["cold-ok"] }) });
  return {
    name: "p1",
    hosts: HOSTS.map((h) => ({ name: h, cpus: 16, memoryMiB: 64 * GiB })),
    srs: [{ name: "nfs", type: "nfs", shared: true, default: true }, ...HOSTS.map((h) => ({ name: `local-${h}`, type: "ext" as const, shared: false, host: h }))],
    vms: [
      ...Array.from({ length: 5 }, (_, i) => guest(`web${i}`, "h1", mem())),
      local("db0"),
      local("db1"),
      guest("stopped", "h1", 1 * GiB, { powerState: "Halted" }),
      guest("app0", "h2", mem()),
      guest("app1", "h2", mem()),
      guest("app2", "h3", mem()),
    ],
  };
}

interface Cluster {
  readonly v: Variant;
  readonly rng: Rng;
  readonly sim: XapiSim;
  readonly xapi: Xapi;
  readonly dir: string;
  readonly stateDir: string;
  readonly flagDir: string;
  /** HOME and TMPDIR of the daemon: must stay empty. */
  readonly canary: string;
  readonly cfgFile: string;
  readonly db: string;
  readonly lock: string;
  readonly names: readonly string[];
  readonly nameOf: ReadonlyMap<string, string>;
  readonly initial: ReadonlyMap<string, { power: PowerState; host: string }>;
  /** Every daemon process of this cluster, for the credentials check of all their output. */
  readonly runs: RunningCli[];
  drained: string;
}

async function cluster(v: Variant): Promise<Cluster> {
  const rng = seededRng(v.seed);
  const spec = poolSpec(v, rng);
  const sim = await startXapiSim({ pools: [spec], migrationSpeedMiBps: SPEED });
  const dir = mkdtempSync(join(tmpdir(), "ballast-sigkill-"));
  const stateDir = join(dir, "state");
  const flagDir = join(dir, "flags");
  const canary = join(dir, "canary");
  for (const d of [join(dir, "etc"), join(canary, "home"), join(canary, "tmp")]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const credentialsFile = join(dir, "etc", "xapi.credentials");
  writeFileSync(credentialsFile, `${sim.user}:${sim.password}\n`, { mode: 0o600 });
  const cfgFile = join(dir, "etc", "ballast.yaml");
  writeFileSync(
    cfgFile,
    stringify({
      stateDir,
      maintenanceDir: flagDir,
      schedule: "*/1 * * * * *",
      flagRescanSeconds: 1,
      logLevel: "info",
      http: { enabled: true, listen: "127.0.0.1", port: 0 },
      migration: { pollIntervalMs: 100, allowBlockMigration: !v.cold, allowColdForTags: v.cold ? ["cold-ok"] : [] },
      // A VM whose migration was interrupted is taken up again at once (the default back-off would stall the drain).
      guards: { failureCooldownMinutes: 0, maxMigrationsPerHour: 100_000, hostFailureLimit: 100_000 },
      xenserver: { pools: [{ name: "p1", url: sim.url("p1"), credentialsFile }] },
    }),
  );
  const xapi = createClient({ url: sim.url("p1"), auth: { user: sim.user, password: sim.password }, allowUnauthorized: false, transport: "json-rpc", watchEvents: false });
  await xapi.connect();
  const names = spec.vms.map((x) => x.name);
  return {
    runs: [],
    v,
    rng,
    sim,
    xapi,
    dir,
    stateDir,
    flagDir,
    canary,
    cfgFile,
    db: join(stateDir, "ballast.db"),
    lock: join(stateDir, "ballast.pid"),
    names,
    nameOf: new Map(names.map((n) => [sim.vm(n).uuid, n])),
    initial: new Map(names.map((n) => [n, { power: sim.vm(n).powerState, host: placement(sim, n) }])),
    drained: "h1",
  };
}

/** Where ballast sees a VM: its resident host when running, its affinity (home server) when halted. */
function placement(sim: XapiSim, name: string): string {
  const vm = sim.vm(name);
  const host = vm.powerState === "Running" ? vm.host : vm.affinity;
  if (host === null) throw new Error(`${name} has no host`);
  return host;
}

// ----------------------------------------------------------------------------------------- the daemon

interface Instance {
  readonly run: RunningCli;
  readonly pid: number;
  readonly spawnedAt: number;
  /** PID in the lock file a dead instance left, if any: this instance must report taking it over. */
  readonly staleLockPid: number | undefined;
}

interface LogLine {
  readonly msg?: string;
  readonly vm?: string;
  readonly migration?: number;
  readonly level?: number;
  readonly stalePid?: number;
}

const parse = (line: string): LogLine => {
  try {
    return JSON.parse(line) as LogLine;
  } catch {
    return {};
  }
};

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function spawnDaemon(c: Cluster): Instance {
  const stale = existsSync(c.lock) ? Number(readFileSync(c.lock, "utf8").split("\n")[0]) : undefined;
  const run = startBallast(["run", "-c", c.cfgFile], { HOME: join(c.canary, "home"), TMPDIR: join(c.canary, "tmp") });
  const pid = run.child.pid;
  if (pid === undefined) throw new Error("ballast did not start");
  c.runs.push(run);
  tally.restarts++;
  return { run, pid, spawnedAt: Date.now(), staleLockPid: stale };
}

/** Waits for the instance's first sample, which comes after start-up reconciliation. */
async function ready(inst: Instance): Promise<void> {
  await inst.run.waitFor((l) => parse(l).msg === "ready (first sample taken)", 30_000);
  tally.readyMs.push(Date.now() - inst.spawnedAt);
}

/** Files the process holds open for writing outside its state and flag directories. */
function writableFdsOutside(pid: number, allowed: readonly string[]): string[] {
  const out: string[] = [];
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out; // gone already
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (!target.startsWith("/") || target.startsWith("/dev/")) continue; // pipes, sockets, anon inodes, ttys
      const flags = /^flags:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"))?.[1];
      const accmode = parseInt(flags ?? "0", 8) & 3;
      if (accmode !== 0 && !allowed.some((a) => target.startsWith(`${a}/`))) out.push(target);
    } catch {
      // closed between the listing and the read
    }
  }
  return out;
}

async function sigkill(c: Cluster, inst: Instance): Promise<void> {
  tally.fdViolations.push(...writableFdsOutside(inst.pid, [c.stateDir, c.flagDir]));
  inst.run.child.kill("SIGKILL");
  await inst.run.exited;
  expect(inst.run.child.signalCode, "killed by our SIGKILL, not dead already").toBe("SIGKILL");
  countRecoveries(inst);
}

function countRecoveries(inst: Instance): void {
  for (const line of inst.run.lines) {
    const msg = parse(line).msg ?? "";
    if (msg === "ready (first sample taken)") return;
    if (RECOVERY_LINES.has(msg)) tally.recoveries[msg] = (tally.recoveries[msg] ?? 0) + 1;
  }
}

// ---------------------------------------------------------------------------------------- the journal

interface Row {
  readonly id: number;
  readonly vm: string;
  readonly from: string;
  readonly to: string;
  readonly kind: string;
  readonly status: string;
  readonly startedAt: number;
  readonly error: string | null;
}

/** The round last started, with what it had written. */
interface RoundState {
  readonly id: number;
  readonly finished: boolean;
  /** Host samples written at or after its start. */
  readonly samples: number;
  /** Migrations journalled for it. */
  readonly migrations: number;
}

/** A read-only look at the daemon's database (WAL lets a reader in while it writes). */
function readJournal(c: Cluster): { rows: Row[]; integrity: string; round: RoundState | undefined } {
  if (!existsSync(c.db)) return { rows: [], integrity: "ok", round: undefined };
  const db = new Database(c.db, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare(`SELECT id, vm, from_host AS "from", to_host AS "to", kind, status, started_at AS startedAt, error FROM migrations ORDER BY id`).all() as Row[];
    const integrity = String(db.pragma("integrity_check", { simple: true }));
    const round = db
      .prepare(
        `SELECT r.id, r.finished_at IS NOT NULL AS finished,
           (SELECT count(*) FROM host_samples s WHERE s.at >= r.started_at) AS samples,
           (SELECT count(*) FROM migrations m WHERE m.round_id = r.id) AS migrations
         FROM rounds r ORDER BY r.id DESC LIMIT 1`,
      )
      .get() as { id: number; finished: number; samples: number; migrations: number } | undefined;
    return { rows, integrity, round: round && { ...round, finished: round.finished === 1 } };
  } finally {
    db.close();
  }
}

/** Id of the round last started and time of the last host samples (through a connection kept open while a kill is aimed). */
const progress = (db: Database.Database): { round: number; sampledAt: number } =>
  db.prepare("SELECT (SELECT coalesce(max(id), 0) FROM rounds) AS round, (SELECT coalesce(max(at), 0) FROM host_samples) AS sampledAt").get() as {
    round: number;
    sampledAt: number;
  };

const OPEN = new Set(["intent", "running"]);

/**
 * The journal replayed from the start must put every VM where XAPI has it: each migration starts where the
 * VM was, a succeeded one moves it, any other outcome leaves it on its source. A VM whose migration is still
 * open (the live instance's) is on its source or, if XAPI already finished, its destination.
 */
function checkCluster(c: Cluster): void {
  // The simulator runs in this process, so it cannot change during this synchronous block; it is read first
  // because the daemon writes the journal only after XAPI has acted.
  const actual = new Map(c.names.map((n) => [n, placement(c.sim, n)]));
  const resident = new Map<string, number>();
  for (const h of HOSTS) for (const n of c.sim.host(h).residentVms) resident.set(n, (resident.get(n) ?? 0) + 1);
  for (const n of c.names) {
    const init = c.initial.get(n);
    expect(c.sim.vm(n).powerState, `${n} keeps its power state`).toBe(init?.power);
    expect(resident.get(n) ?? 0, `${n} resident on exactly one host when running, none when halted`).toBe(init?.power === "Running" ? 1 : 0);
  }
  expect([...resident.keys()].sort()).toEqual(c.names.filter((n) => c.initial.get(n)?.power === "Running").sort());

  const { rows, integrity } = readJournal(c);
  expect(integrity).toBe("ok");
  const pos = new Map([...c.initial].map(([n, i]) => [n, i.host]));
  const open = new Map<string, Row>();
  for (const r of rows) {
    const n = c.nameOf.get(r.vm);
    expect(n, `journal VM ${r.vm} is one of the cluster's`).toBeDefined();
    if (n === undefined) continue;
    expect(open.has(n), `migration #${r.id}: ${n} has no earlier record still open`).toBe(false);
    const before = rows.filter((x) => x.vm === r.vm && x.id <= r.id).map((x) => `#${x.id} ${x.from}→${x.to} ${x.status}${x.error ? ` (${x.error})` : ""}`);
    expect(r.from, `migration #${r.id} of ${n} starts where the VM was; its records: ${before.join("; ")}`).toBe(pos.get(n));
    if (OPEN.has(r.status)) open.set(n, r);
    else if (r.status === "succeeded") pos.set(n, r.to);
    else expect(["failed", "aborted", "interrupted"]).toContain(r.status);
  }
  expect(open.size, "at most one migration in flight").toBeLessThanOrEqual(1);
  for (const n of c.names) {
    const o = open.get(n);
    if (o) expect([o.from, o.to], `${n} (migration #${o.id} in flight)`).toContain(actual.get(n));
    else expect(actual.get(n), `${n} is where its closed journal records put it`).toBe(pos.get(n));
  }
}

/** Pending XAPI tasks of VM operations (ballast's migrations, shutdowns, starts), by ref. */
async function pendingVmTasks(c: Cluster): Promise<string[]> {
  const tasks = (await c.xapi.call("task.get_all_records")) as Record<string, { status: string; name_label: string }>;
  return Object.entries(tasks)
    .filter(([, t]) => t.status === "pending" && t.name_label.startsWith("VM."))
    .map(([ref]) => ref);
}

async function taskStatus(c: Cluster, ref: string): Promise<string> {
  try {
    return ((await c.xapi.call("task.get_record", ref)) as { status: string }).status;
  } catch {
    return "destroyed";
  }
}

// ------------------------------------------------------------------------------------------ kill points

const DRIVER_CALLS = new Set(["Async.VM.pool_migrate", "Async.VM.migrate_send", "Async.VM.clean_shutdown", "Async.VM.start_on", "VM.set_affinity"]);

/** A drain is complete when nothing runs on or belongs to the flagged host and no migration is open. */
function drainComplete(c: Cluster): boolean {
  if (c.names.some((n) => placement(c.sim, n) === c.drained)) return false;
  return readJournal(c).rows.every((r) => !OPEN.has(r.status));
}

/** What the dead instance was doing, from its journal and rounds, its log lines and the XAPI calls it had made. */
function phaseOf(c: Cluster, lines: readonly { l: LogLine; at: number }[], open: readonly Row[], round: RoundState | undefined, target: Target): string {
  if (!lines.some((x) => x.l.msg === "ready (first sample taken)")) return "start-up (connect, reconcile)";
  const r = open[0];
  if (r) {
    const name = c.nameOf.get(r.vm) ?? r.vm;
    const calls = c.sim.calls.filter((x: CallRecord) => x.at >= r.startedAt - 5 && x.subject === name);
    const driver = calls.findIndex((x) => DRIVER_CALLS.has(x.method));
    if (driver < 0) return "intent journalled, before the driver call";
    if (!calls.slice(driver).some((x) => x.method === "VM.get_record")) return `migration in progress (${r.kind})`;
    return "XAPI finished, verification and journal close pending";
  }
  // Flag changes are acted on outside rounds: the kill came before the round they trigger had journalled anything.
  if (target === "flag-change" && !lines.some((x) => x.at > 0 && x.l.msg === "decision")) return "maintenance flag change (host.disable/enable)";
  if (!round || round.finished) return "between rounds (round closed)";
  if (round.migrations > 0) return "journal closed, round close pending (history writes)";
  if (round.samples === 0) return "round started: reconcile and sampling";
  return "sampled: sample writes and planning";
}

interface Aim {
  readonly target: Target;
  /** For targets that fire at a time rather than on an event: the moment (ms since epoch). */
  readonly at?: number;
}

/**
 * Watches the instance (its log lines and the XAPI calls reaching the simulator) until the target's moment
 * comes, then kills it. Resolves "drained" instead when the drain completes first. Polls every millisecond:
 * the child is another process, there is nothing to await.
 */
async function killAt(c: Cluster, inst: Instance, aim: Aim): Promise<Kill | "drained"> {
  const { target } = aim;
  const rng = c.rng;
  // Lines from before this call are evidence (was the instance ready?), not triggers.
  const armed = inst.run.lines.length;
  const lines: { l: LogLine; at: number }[] = inst.run.lines.slice(0, armed).map((x) => ({ l: parse(x), at: 0 }));
  let seenLines = armed;
  let seenCalls = c.sim.calls.length;
  let fireAt = aim.at;
  let vm: string | undefined; // name of the VM whose migration the target follows
  let driverCalled = false;
  let shutDown = false;
  let lastDrainCheck = 0;
  const deadline = Date.now() + 60_000;
  // A round starting, or its samples being written, is seen in the database (no log line marks either).
  const db = (target === "sampling" || target === "sample-writes") && existsSync(c.db) ? new Database(c.db, { readonly: true, fileMustExist: true }) : undefined;
  const atArming = db && progress(db);
  try {
    for (;;) {
      const now = Date.now();
      if (db && atArming && fireAt === undefined) {
        const p = progress(db);
        if (target === "sampling" ? p.round > atArming.round : p.sampledAt > atArming.sampledAt) fireAt = now;
      }
      for (; seenLines < inst.run.lines.length; seenLines++) {
        const l = parse(inst.run.lines[seenLines] ?? "");
        lines.push({ l, at: now });
        if (fireAt !== undefined) continue;
        if (l.msg === "migration started") {
          vm = c.nameOf.get(l.vm ?? "");
          driverCalled = false;
          shutDown = false;
        }
        if ((l.msg === "migration finished" || l.msg === "migration did not succeed") && (target === "round" || target === "journal-close")) {
          fireAt = now + (target === "round" ? rng.int(3, 80) : rng.int(0, 3));
        }
      }
      for (; seenCalls < c.sim.calls.length; seenCalls++) {
        const call = c.sim.calls[seenCalls];
        if (fireAt !== undefined || vm === undefined || call?.subject !== vm) continue;
        const step = DRIVER_CALLS.has(call.method);
        if (target === "recheck" && !driverCalled && call.method === "VM.get_record") fireAt = now;
        else if (target === "verify" && driverCalled && call.method === "VM.get_record") fireAt = now;
        // The step after a cold move's clean shutdown: the guest is halted, on its way.
        else if (target === "guest-stopped" && shutDown && step) fireAt = now;
        if (step && !driverCalled) {
          driverCalled = true;
          if (target === "driver-call") fireAt = now;
          if (target === "migrating") fireAt = now + rng.int(0, 1200);
        }
        if (call.method === "Async.VM.clean_shutdown") shutDown = true;
      }
      if (fireAt !== undefined && now >= fireAt) {
        await sigkill(c, inst);
        const { rows, round } = readJournal(c);
        const open = rows.filter((r) => OPEN.has(r.status));
        const pendingTasks = await pendingVmTasks(c);
        return { target, phase: phaseOf(c, lines, open, round, target), open: open.map((r) => r.id), pendingTasks, outcomes: [] };
      }
      if (inst.run.child.exitCode !== null) throw new Error(`ballast exited on its own (${inst.run.child.exitCode}):\n${inst.run.lines.slice(-30).join("\n")}`);
      if (now - lastDrainCheck >= 100 && target !== "startup" && target !== "flag-change") {
        lastDrainCheck = now;
        if (drainComplete(c)) return "drained";
      }
      if (now > deadline) throw new Error(`kill point ${target} not reached in 60 s:\n${inst.run.lines.slice(-30).join("\n")}`);
      await pause(1);
    }
  } finally {
    db?.close();
  }
}

/** After a restart has reconciled: what the dead instances left is accounted for and undone. */
async function checkAfterRestart(c: Cluster, inst: Instance, kills: readonly Kill[]): Promise<void> {
  if (inst.staleLockPid !== undefined) {
    const replaced = inst.run.lines.map(parse).find((l) => l.msg === "replaced a stale lock left by a process that is gone");
    expect(replaced?.stalePid, "the lock of the killed instance is taken over").toBe(inst.staleLockPid);
  }
  const { rows } = readJournal(c);
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const k of kills) {
    for (const id of k.open) {
      const r = byId.get(id);
      expect(r && !OPEN.has(r.status), `migration #${id} left open by a kill is closed after the restart`).toBe(true);
      if (r) k.outcomes.push(r.status);
      // Only reconciliation closes a dead instance's record, and only with what XAPI shows (checkCluster).
      // One pool: the VM is always on its source or its destination, so nothing else is a true outcome.
      expect(["succeeded", "interrupted"], `outcome of #${id}`).toContain(r?.status);
    }
    for (const ref of k.pendingTasks) expect(await taskStatus(c, ref), `task ${ref} of a dead instance is not left pending`).not.toBe("pending");
  }
  checkCluster(c);
}

/** Moves the maintenance flag to the next host (undrain the drained one), as an operator would. */
function rotateDrain(c: Cluster): void {
  const next = HOSTS[(HOSTS.indexOf(c.drained as (typeof HOSTS)[number]) + 1) % HOSTS.length] ?? "h1";
  writeFileSync(join(c.flagDir, next), `sigkill test: drain ${next}\n`);
  unlinkSync(join(c.flagDir, c.drained));
  c.drained = next;
}

function checkDrained(c: Cluster): void {
  checkCluster(c);
  for (const h of HOSTS) {
    const host = c.sim.host(h);
    if (h === c.drained) {
      expect(host.residentVms, `${h} is fully drained`).toEqual([]);
      expect(host.enabled, `${h} is disabled in XAPI while drained`).toBe(false);
    } else {
      expect(host.enabled, `${h} is enabled in XAPI (not in maintenance)`).toBe(true);
    }
  }
  tally.drains++;
}

const TARGETS: readonly Target[] = ["sampling", "sample-writes", "round", "recheck", "driver-call", "migrating", "verify", "journal-close"];

async function crashDrains(v: Variant): Promise<Kill[]> {
  const began = Date.now();
  const c = await cluster(v);
  const kills: Kill[] = [];
  let drains = 0;
  let inst: Instance | undefined;
  try {
    inst = spawnDaemon(c);
    await ready(inst);
    mkdirSync(c.flagDir, { recursive: true });
    writeFileSync(join(c.flagDir, c.drained), "sigkill test: drain h1\n");
    let unchecked: Kill[] = [];
    // Every target once, then at random. Cold moves first wait for a guest the move has shut down (it must run
    // again after the restart).
    const script: Aim[] = [...(v.cold ? (["guest-stopped", "guest-stopped"] as const) : []), ...TARGETS].map((target) => ({ target }));
    let next: Aim | undefined;
    while (kills.length < v.kills) {
      const aim = next ?? script.shift() ?? { target: c.rng.pick(TARGETS) };
      next = undefined;
      const k = await killAt(c, inst, aim);
      if (k === "drained") {
        checkDrained(c);
        drains++;
        rotateDrain(c);
        // The daemon dies as it learns of the flag change: at once the first time (before it could tell XAPI,
        // which leaves the undrained host disabled there), later at random.
        if (drains === 1 || c.rng.next() < 0.5) next = { target: "flag-change", at: Date.now() + (drains === 1 ? 0 : c.rng.int(0, 40)) };
        continue;
      }
      kills.push(k);
      unchecked.push(k);
      inst = spawnDaemon(c);
      // Sometimes the restart itself is killed, before or while it reconciles.
      if (c.rng.next() < 0.2 && kills.length < v.kills) {
        next = { target: "startup", at: inst.spawnedAt + c.rng.int(0, 900) };
        continue;
      }
      await ready(inst);
      await checkAfterRestart(c, inst, unchecked);
      unchecked = [];
    }
    if (unchecked.length > 0) {
      await ready(inst);
      await checkAfterRestart(c, inst, unchecked);
    }
    // The budget is spent: the last drain runs to its end undisturbed.
    const deadline = Date.now() + 60_000;
    while (!drainComplete(c)) {
      if (Date.now() > deadline) throw new Error(`drain of ${c.drained} did not complete:\n${inst.run.lines.slice(-30).join("\n")}`);
      await pause(50);
    }
    checkDrained(c);
    drains++;
    inst.run.child.kill("SIGTERM");
    expect(await inst.run.exited, "a graceful stop after all the kills").toBe(0);
    countRecoveries(inst);
    inst = undefined;
    // Quiet now: no VM operation of any instance is left in XAPI, no record open.
    expect(await pendingVmTasks(c)).toEqual([]);
    expect(readJournal(c).rows.filter((r) => OPEN.has(r.status))).toEqual([]);
    checkCluster(c);
    // Credentials are read from a file and never logged, whatever state a process was killed in.
    for (const r of c.runs) expect(`${r.lines.join("\n")}\n${r.stderr()}`, "the XAPI password in ballast's output").not.toContain(c.sim.password);
    expect(tree(c.canary), "nothing written to HOME or TMPDIR").toEqual(["home/", "tmp/"]);
    expect(tree(c.stateDir).filter((f) => !/^ballast\.db(-wal|-shm)?$/.test(f)), "the state directory holds the database only").toEqual([]);
    expect(tree(c.dir).filter((f) => !f.startsWith("state/")), "config, credentials and flags as the test left them").toEqual(
      ["canary/", "canary/home/", "canary/tmp/", "etc/", "etc/ballast.yaml", "etc/xapi.credentials", "flags/", `flags/${c.drained}`],
    );
    tally.variants.push(`${v.name}: ${kills.length} kills, ${drains} drains, ${((Date.now() - began) / 1000).toFixed(1)} s`);
    return kills;
  } finally {
    if (inst && inst.run.child.exitCode === null && inst.run.child.signalCode === null) {
      inst.run.child.kill("SIGKILL");
      await inst.run.exited;
    }
    await c.xapi.disconnect().catch(() => undefined);
    await c.sim.close();
    rmSync(c.dir, { recursive: true, force: true });
  }
}

describe("SIGKILL of the real daemon against the XAPI simulator", () => {
  it.each(VARIANTS)("$name: $kills kills at random points, every restart reconciles; nothing lost, duplicated or left stopped", async (v) => {
    tally.kills.push(...(await crashDrains(v)));
  }, 240_000);

  it(`at least ${KILLS_WANTED} kill points in all, covering every phase`, () => {
    expect(tally.kills.length).toBeGreaterThanOrEqual(KILLS_WANTED);
    const phases = new Set(tally.kills.map((k) => k.phase.replace(/ \(.*\)$/, "")));
    for (const p of [
      "start-up",
      "round started: reconcile and sampling",
      "intent journalled, before the driver call",
      "migration in progress",
      "XAPI finished, verification and journal close pending",
      "maintenance flag change",
    ]) {
      expect(phases, `a kill ${p}`).toContain(p);
    }
    // History writes take microseconds: kills are aimed at the moments they happen in bulk (journal and round
    // close, host samples), and the integrity check after every kill covers the rest.
    expect(["journal closed, round close pending", "sampled: sample writes and planning"].some((p) => phases.has(p)), "a kill around history writes").toBe(true);
    expect(tally.fdViolations, "files written outside the state and flag directories").toEqual([]);
  });
});
