/**
 * Crash safety and faults on the real libvirt lab (issue 8, items 1 and 2). Real libvirtd, QEMU, sshd and SQLite;
 * real time throughout, except the injected clock of the clock-jump case.
 *
 * 1. The daemon as a real `ballast run` process drains hosts and is SIGKILLed at seeded points (right after the
 *    flag, at the intent, mid-migration, as the guest lands, after a migration); each time it restarts on the same
 *    state directory, and after reconciliation every guest runs on exactly one host, unpaused, still counting, and
 *    every journal record is closed with the outcome that matches where the guest is.
 * 2. Faults during a real, bandwidth-limited migration by the daemon: destination libvirtd killed, destination QEMU
 *    killed, source libvirtd restarted, SSH dropped, history disk full, clock jumps. Each ends with the guest running
 *    on one host, the record closed with its cause, no retry storm, and /metrics still served.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { ResolvedConfig } from "../../src/config/index.js";
import { startDaemon, type RunningDaemon } from "../../src/daemon/service.js";
import { openHistory } from "../../src/store/index.js";
import type { MigrationRow } from "../../src/store/types.js";
import { realClock, type Clock } from "../../src/util/clock.js";
import { seededRng } from "../../src/util/rng.js";
import { CLI, ROOT } from "../helpers/cli.js";
import { testConfig } from "../helpers/daemon-fixture.js";
import { labPrerequisites, startLab, type GuestSpec, type Lab, type LabHostName } from "./lab.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const execFileP = promisify(execFile);
const SEED = 8;
/** Every lab migration here is capped to this, so a 32 MiB guest takes seconds to copy: long enough to hit. */
const BANDWIDTH_MIBPS = 8;
/**
 * Dirties 32 MiB at 32 MiB/s, four times what the link copies: the migration cannot finish before the fault is
 * injected (the guard would end it only after several seconds). Pages hold data after its first 1 s sweep.
 */
const UNENDING: GuestSpec["kind"] = { dirtyMiB: 32, rateMiBps: 32 };

let lab: Lab;
let work: string;
/** Lines for the issue note, printed at the end. */
const report: string[] = [];

async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${what}: not reached within ${timeoutMs / 1000} s`);
    await sleep(everyMs);
  }
}

const hostNames = (): LabHostName[] => lab.hosts.map((h) => h.name);

async function guestsOn(host: LabHostName): Promise<string[]> {
  return (await lab.virsh(host, "list", "--all", "--name")).split("\n").map((l) => l.trim()).filter(Boolean);
}

/** Destroys and undefines every guest, so each case starts on an empty lab. */
async function wipeGuests(): Promise<void> {
  for (const h of hostNames()) {
    for (const g of await guestsOn(h)) {
      await lab.virsh(h, "destroy", g).catch(() => undefined);
      await lab.virsh(h, "undefine", g).catch(() => undefined);
    }
  }
}

/** QEMU processes of the lab running this guest (an orphaned incoming QEMU counts too). */
function qemuPidsOf(guest: string): number[] {
  return lab.pids().filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const i = argv.indexOf("-name");
      return argv[0]?.includes("qemu-system") === true && i >= 0 && (argv[i + 1] ?? "").startsWith(`guest=${guest},`);
    } catch {
      return false;
    }
  });
}

/**
 * The guest is defined and running on exactly one host, not paused, one QEMU process in the whole lab, and its
 * counters still advance. Returns the host.
 */
async function expectRunningOnce(guest: string): Promise<LabHostName> {
  const where = await lab.where(guest);
  expect(where.defined, `${guest} defined on`).toHaveLength(1);
  expect(where.running, `${guest} running on`).toEqual(where.defined);
  const host = where.running[0] as LabHostName;
  expect((await lab.virsh(host, "domstate", guest)).trim(), `${guest} state on ${host}`).toBe("running");
  expect(qemuPidsOf(guest), `QEMU processes of ${guest}`).toHaveLength(1);
  const a = await lab.counters(host, guest);
  await sleep(300);
  const b = await lab.counters(host, guest);
  expect(b.magic).toBe(0xba11a570);
  expect(b.ticks, `${guest} counters on ${host}`).toBeGreaterThan(a.ticks);
  return host;
}

async function uuidOf(guest: string): Promise<string> {
  const host = (await lab.where(guest)).defined[0];
  if (host === undefined) throw new Error(`${guest} is defined nowhere`);
  return (await lab.virsh(host, "domuuid", guest)).trim();
}

/**
 * Follows a VM's journal records in order from where it started: each starts where the previous left it, and a
 * succeeded one leaves it on its destination, any other on its source (unless the record says it is elsewhere).
 * Returns where the records say the VM is now.
 */
function replayRecords(start: LabHostName, records: readonly MigrationRow[]): string {
  let at: string = start;
  for (const r of records) {
    expect(["succeeded", "failed", "aborted", "interrupted"], `record #${r.id} is closed`).toContain(r.status);
    if (r.status === "succeeded") {
      expect(r.from, `record #${r.id} starts where the VM was`).toBe(at);
      at = r.to;
    } else {
      const elsewhere = /VM is on (h\d) \(/.exec(r.error ?? "")?.[1];
      if (elsewhere === undefined) expect(r.from, `record #${r.id} (${r.status}: ${r.error}) starts where the VM was`).toBe(at);
      at = elsewhere ?? at;
    }
  }
  return at;
}

async function metricsText(port: number | undefined): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return { status: res.status, body: await res.text() };
}

function metricValue(body: string, line: string): number {
  const m = body.split("\n").find((l) => l.startsWith(`${line} `));
  return m === undefined ? 0 : Number(m.slice(line.length + 1));
}

// ───────────────────────────── a daemon as a child process ─────────────────────────────

interface LogLine {
  readonly msg?: string;
  readonly vm?: string;
  readonly host?: string;
  readonly to?: string;
  readonly port?: number;
  readonly outcome?: string;
  readonly err?: { readonly message?: string };
  readonly raw: string;
}

interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly lines: LogLine[];
  /** The first line from index `from` on that matches. */
  waitFor(pred: (l: LogLine) => boolean, ms: number, from?: number): Promise<LogLine>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
}

/** Starts a command whose stdout/stderr are the daemon's JSON log lines, collected as they arrive. */
function spawnLogged(cmd: string, args: readonly string[]): Child {
  const env = { ...process.env };
  delete env.JOURNAL_STREAM; // no syslog prefixes: plain JSON lines
  delete env.NOTIFY_SOCKET;
  const proc = spawn(cmd, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env });
  if (proc.pid === undefined) throw new Error(`could not start ${cmd}`);
  const lines: LogLine[] = [];
  const waiters: { pred: (l: LogLine) => boolean; from: number; resolve: (l: LogLine) => void }[] = [];
  const collect = (): ((d: Buffer) => void) => {
    let buf = "";
    return (d) => {
      buf += d.toString("utf8");
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const raw = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let line: LogLine;
        try {
          line = { ...(JSON.parse(raw) as object), raw };
        } catch {
          line = { raw };
        }
        lines.push(line);
        for (const w of [...waiters]) {
          if (lines.length - 1 >= w.from && w.pred(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    };
  };
  proc.stdout?.on("data", collect());
  proc.stderr?.on("data", collect());
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    }),
  );
  return {
    proc,
    pid: proc.pid,
    lines,
    exited,
    alive: () => !done,
    waitFor(pred, ms, from = 0) {
      const found = lines.slice(from).find(pred);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no such log line within ${ms} ms; last lines:\n${lines.slice(-25).map((l) => l.raw).join("\n")}`)), ms);
        waiters.push({ pred, from, resolve: (l) => (clearTimeout(t), resolve(l)) });
      });
    },
  };
}

const msgIs =
  (...msgs: string[]) =>
  (l: LogLine): boolean =>
    l.msg !== undefined && msgs.includes(l.msg);

async function killHard(child: Child): Promise<void> {
  if (child.alive()) process.kill(child.pid, "SIGKILL");
  await child.exited;
}

async function stopGracefully(child: Child): Promise<void> {
  if (!child.alive()) return;
  process.kill(child.pid, "SIGTERM");
  const r = await child.exited;
  expect(r, child.lines.slice(-10).map((l) => l.raw).join("\n")).toEqual({ code: 0, signal: null });
}

/** The config file of a `ballast run` over the lab. */
function writeRunConfig(file: string, stateDir: string, extra: Record<string, unknown>): void {
  writeFileSync(
    file,
    stringify({
      stateDir,
      schedule: "*/3 * * * * *",
      flagRescanSeconds: 1,
      logLevel: "info",
      http: { enabled: false },
      migration: { bandwidthMiBps: BANDWIDTH_MIBPS, pollIntervalMs: 500 },
      libvirt: lab.libvirtConfig(),
      ...extra,
    }),
  );
}

function setFlag(stateDir: string, host: LabHostName, present: boolean): void {
  const dir = join(stateDir, "maintenance");
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  if (present) writeFileSync(join(dir, host), "faults test\n");
  else rmSync(join(dir, host), { force: true });
}

interface Reconciled {
  readonly status: string;
  readonly placements: readonly { readonly host: string; readonly state: string }[];
}

interface Records {
  readonly records: MigrationRow[];
  readonly open: number;
  readonly reconciled: Reconciled[];
}

const reconciledOf = (events: readonly { kind: string; message: string; data: unknown }[]): Reconciled[] =>
  events
    .filter((e) => e.kind === "reconciled")
    .reverse()
    .map((e) => ({ status: /closed as (\w+)/.exec(e.message)?.[1] ?? e.message, placements: (e.data as Pick<Reconciled, "placements"> | null)?.placements ?? [] }));

/**
 * The history of a daemon running in a mount namespace of its own, read by `ballast history --json` run inside it
 * (SQLite resolves the /proc/PID/root link, so the file cannot be opened from here).
 */
async function readRecordsInside(pid: number, cfg: string): Promise<Records> {
  const { stdout } = await execFileP("nsenter", ["--target", String(pid), "--mount", "--", process.execPath, CLI, "history", "--json", "-n", "1000", "-c", cfg], { cwd: ROOT });
  const h = JSON.parse(stdout) as { migrations: MigrationRow[]; events: { kind: string; message: string; data: unknown }[] };
  const records = [...h.migrations].reverse();
  return { records, open: records.filter((r) => r.status === "intent" || r.status === "running").length, reconciled: reconciledOf(h.events) };
}

function readRecords(dbFile: string): Records {
  const store = openHistory(dbFile, { readonly: true });
  try {
    return {
      records: store.recentMigrations(1000).reverse(),
      open: store.openIntents().length,
      reconciled: reconciledOf(store.recentEvents(1000, { kind: "reconciled" })),
    };
  } finally {
    store.close();
  }
}

// ───────────────────────────── an in-process daemon (startDaemon, HTTP on port 0) ─────────────────────────────

interface InProcess {
  readonly running: RunningDaemon;
  readonly config: ResolvedConfig;
  readonly logs: string[];
  flag(host: LabHostName): void;
  stop(): Promise<void>;
}

/** Back-off after one failure: the host is neither source nor destination for 30 min, the VM waits 60 min. */
const BACKOFF = { failureCooldownMinutes: 60, hostFailureLimit: 1, hostBackoffMinutes: 30, maxMigrationsPerHour: 100 };

async function inProcessDaemon(name: string, overrides: Record<string, unknown> = {}, clock: Clock = realClock): Promise<InProcess> {
  const stateDir = mkdtempSync(join(work, `${name}-`));
  const config = testConfig(stateDir, {
    sim: undefined,
    libvirt: lab.libvirtConfig(),
    http: { enabled: true, listen: "127.0.0.1", port: 0 },
    logLevel: "info",
    flagRescanSeconds: 1,
    migration: { bandwidthMiBps: BANDWIDTH_MIBPS, pollIntervalMs: 500 },
    guards: BACKOFF,
    // A failing case must not wait out a migration in flight when it stops its daemon.
    shutdown: { action: "abort" },
    ...overrides,
  });
  const logs: string[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void logs.push(line) });
  const running = await startDaemon({ configFile: join(stateDir, "test.yaml"), config, log, clock, schedule: false });
  let stopped = false;
  return {
    running,
    config,
    logs,
    flag(host) {
      mkdirSync(config.maintenanceDir, { recursive: true, mode: 0o750 });
      writeFileSync(join(config.maintenanceDir, host), "faults test\n");
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await running.stop();
    },
  };
}

/** The daemon log's tail, for failure messages. */
const tail = (d: InProcess): string => d.logs.slice(-30).join("");

/** Drains `source` and resolves once the migration it starts has copied `minMiB`: the moment to strike. */
async function migrationUnderway(d: InProcess, source: LabHostName, minMiB = 3): Promise<{ dest: LabHostName; id: number }> {
  d.flag(source);
  await until("a migration copying", () => (d.running.daemon.inFlight?.stats?.dataProcessedMiB ?? 0) >= minMiB, 60_000, 100).catch((e: unknown) => {
    throw new Error(`${String(e)}\n${tail(d)}`);
  });
  const f = d.running.daemon.inFlight;
  if (!f) throw new Error("the migration ended before the fault could be injected");
  return { dest: f.move.to as LabHostName, id: f.migrationId };
}

async function closedRecord(d: InProcess, id: number, timeoutMs = 90_000): Promise<MigrationRow> {
  let row: MigrationRow | undefined;
  await until(
    `migration #${id} closed`,
    () => {
      row = d.running.store.migration(id);
      return row !== undefined && row.status !== "intent" && row.status !== "running" && !d.running.daemon.busy;
    },
    timeoutMs,
  ).catch((e: unknown) => {
    throw new Error(`${String(e)}\n${tail(d)}`);
  });
  return row as MigrationRow;
}

/**
 * No retry storm: `rounds` more rounds run, none starts a migration, each refuses the backed-off host; /metrics is
 * still served. Returns the refusals counted.
 */
async function expectBackedOff(d: InProcess, rounds = 3): Promise<number> {
  const before = d.running.store.recentMigrations(100).length;
  const ran = d.running.daemon.roundsRun;
  for (let i = 0; i < rounds; i++) await d.running.daemon.trigger("test");
  expect(d.running.daemon.roundsRun).toBeGreaterThanOrEqual(ran + rounds);
  expect(d.running.daemon.lastRound?.outcome, tail(d)).toBe("ok");
  expect(d.running.store.recentMigrations(100), "no new migration while backed off").toHaveLength(before);
  expect(d.running.daemon.lastPlan?.moves ?? [], "nothing planned while backed off").toEqual([]);
  const m = await metricsText(d.running.httpPort);
  expect(m.status).toBe(200);
  const refused = metricValue(m.body, 'ballast_guard_refusals_total{reason="host-backoff"}');
  expect(refused, "host-backoff refusals").toBeGreaterThanOrEqual(rounds);
  return refused;
}

beforeAll(async () => {
  expect(labPrerequisites(), "this machine lacks what the lab needs (run scripts/test-deps.sh as root)").toEqual([]);
  lab = await startLab({ hosts: 3, ssh: true });
  work = mkdtempSync(join(tmpdir(), "ballast-faults-"));
}, 180_000);

afterAll(async () => {
  await lab?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  if (report.length > 0) console.log(["faults on the lab:", ...report].join("\n"));
});

// ───────────────────────────── 1. SIGKILL at seeded points ─────────────────────────────

type KillPoint = "after-flag" | "at-intent" | "mid-migration" | "as-guest-lands" | "after-migration";

describe("SIGKILL of the ballast process during drains (real lab)", () => {
  afterEach(wipeGuests);

  it("after each kill and a restart on the same state dir, every guest runs once and every record is closed with the truth", async () => {
    const guests = ["kp-1", "kp-2", "kp-3"];
    // Short migrations (2–4 s each at 8 MiB/s) keep six drains with a restart each to about 90 s.
    for (const g of guests) await lab.defineGuest("h3", { name: g, memoryMiB: 24, kind: { dirtyMiB: 16, rateMiBps: 2 } });
    const uuids = new Map<string, string>();
    for (const g of guests) uuids.set(await uuidOf(g), g);
    const stateDir = join(work, "kill-state");
    const cfg = join(work, "kill.yaml");
    // The drain must go on after each restart: an interrupted record's back-off is tested with the faults below.
    writeRunConfig(cfg, stateDir, { guards: { failureCooldownMinutes: 0, hostFailureLimit: 100, maxMigrationsPerHour: 1000 } });
    const dbFile = join(stateDir, "ballast.db");
    const run = (): Child => spawnLogged(process.execPath, [CLI, "run", "-c", cfg]);

    const rng = seededRng(SEED);
    const points: KillPoint[] = ["after-flag", "at-intent", "mid-migration", "mid-migration", "as-guest-lands", "after-migration"];
    for (let i = points.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [points[i], points[j]] = [points[j] as KillPoint, points[i] as KillPoint];
    }
    const tally: string[] = [];
    let daemon = run();
    await daemon.waitFor(msgIs("ready (first sample taken)"), 30_000);
    let drained: LabHostName | undefined;
    try {
      for (const point of points) {
        // Drain the host holding most guests, so this episode has migrations to interrupt.
        const count = new Map<LabHostName, number>();
        for (const h of hostNames()) count.set(h, (await guestsOn(h)).length);
        const target = [...count.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] as LabHostName;
        const from = daemon.lines.length;
        const t0 = Date.now();
        if (drained !== undefined) setFlag(stateDir, drained, false);
        setFlag(stateDir, target, true);
        drained = target;

        let delayMs = 0;
        if (point === "after-flag") {
          delayMs = rng.int(0, 1500);
          await sleep(delayMs);
        } else if (point === "at-intent") {
          await daemon.waitFor(msgIs("migration started"), 60_000, from);
        } else if (point === "mid-migration") {
          await daemon.waitFor(msgIs("migration started"), 60_000, from);
          delayMs = rng.int(500, 2500);
          await sleep(delayMs);
        } else if (point === "as-guest-lands") {
          const started = await daemon.waitFor(msgIs("migration started"), 60_000, from);
          const dest = started.to as LabHostName;
          // The incoming domain is paused until the copy ends; "running" there means the job just finished.
          await until("the guest running on its destination", async () => (await lab.virsh(dest, "domstate", started.vm ?? "").catch(() => "")).trim() === "running", 60_000, 20);
        } else {
          await daemon.waitFor(msgIs("migration finished", "migration did not succeed"), 60_000, from);
          delayMs = rng.int(0, 300);
          await sleep(delayMs);
        }
        const killedAfterMs = Date.now() - t0;
        await killHard(daemon);
        const before = readRecords(dbFile);

        daemon = run();
        await daemon.waitFor(msgIs("ready (first sample taken)"), 30_000);
        await until(
          `${target} drained after the restart`,
          async () => (await guestsOn(target)).length === 0 && readRecords(dbFile).open === 0,
          120_000,
          500,
        ).catch((e: unknown) => {
          throw new Error(`${String(e)}\n${daemon.lines.slice(-25).map((l) => l.raw).join("\n")}`);
        });

        // Every guest once, running, counting; no paused domain anywhere.
        const where = new Map<string, string>(await Promise.all(guests.map(async (g) => [g, await expectRunningOnce(g)] as const)));
        for (const h of hostNames()) expect(await lab.virsh(h, "list", "--state-paused", "--name"), `paused on ${h}`).toMatch(/^\s*$/);
        // Every record closed, and they agree with where each guest is.
        const after = readRecords(dbFile);
        expect(after.open).toBe(0);
        for (const [uuid, g] of uuids) expect(replayRecords("h3", after.records.filter((r) => r.vm === uuid)), `${g}'s records`).toBe(where.get(g));
        // Reconciliation saw the guest in one place (not a cancelled job's destination still tearing down).
        const reconciled = after.reconciled.slice(before.reconciled.length);
        for (const r of reconciled) expect(r.placements, JSON.stringify(r)).toHaveLength(1);
        tally.push(
          `  kill ${tally.length + 1}: ${point.padEnd(15)} drain of ${target}, SIGKILL ${killedAfterMs} ms after the flag${delayMs ? ` (+${delayMs} ms seeded)` : ""}; ` +
            `records open at the kill: ${before.open}; reconciled on restart: ${reconciled.map((r) => `${r.status} (on ${r.placements.map((p) => `${p.host} ${p.state}`).join(", ")})`).join(", ") || "none"}; ` +
            `records now ${after.records.length} (${["succeeded", "interrupted", "failed", "aborted"].map((s) => `${after.records.filter((r) => r.status === s).length} ${s}`).join(", ")})`,
        );
      }
    } finally {
      await stopGracefully(daemon).catch(() => killHard(daemon));
    }
    report.push(`SIGKILL points survived: ${tally.length} (seed ${SEED})`, ...tally);
    expect(tally).toHaveLength(points.length);
  }, 420_000);
});

// ───────────────────────────── 2. faults during a real migration ─────────────────────────────

/** A clock whose wall time can be stepped by hours (an NTP step, a VM restored from a snapshot); timers stay real. */
class JumpingClock implements Clock {
  offsetMs = 0;
  now(): number {
    return Date.now() + this.offsetMs;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return realClock.sleep(ms, signal);
  }
  every(ms: number, fn: () => void): () => void {
    return realClock.every(ms, fn);
  }
  monotonicMs(): number {
    return performance.now();
  }
}

const HOUR = 3_600_000;

describe("faults during a real migration by the daemon (real lab)", () => {
  afterEach(wipeGuests);

  it("destination libvirtd killed mid-migration: failed with the cause, guest on its source, hosts backed off", async () => {
    await lab.defineGuest("h1", { name: "f-dlv", kind: UNENDING });
    await sleep(1200);
    const d = await inProcessDaemon("dest-libvirtd");
    try {
      const { dest, id } = await migrationUnderway(d, "h1");
      const t0 = Date.now();
      process.kill(lab.host(dest).libvirtdPid, "SIGKILL");
      const rec = await closedRecord(d, id);
      const closedMs = Date.now() - t0;
      expect(rec.status, rec.error ?? "").toBe("failed");
      expect(rec.error).toMatch(/destination|connection|closed|unreachable/i);
      await lab.restartLibvirtd(dest);
      expect(await expectRunningOnce("f-dlv")).toBe("h1");
      const refused = await expectBackedOff(d);
      report.push(`destination libvirtd SIGKILLed mid-migration (h1→${dest}): ${rec.status} in ${closedMs} ms ("${rec.error}"); guest running on h1; ${refused} host-backoff refusals, no retry`);
    } finally {
      await d.stop();
    }
  }, 180_000);

  it("destination QEMU killed mid-migration: failed with the cause, guest on its source, hosts backed off", async () => {
    await lab.defineGuest("h2", { name: "f-dqemu", kind: UNENDING });
    await sleep(1200);
    const d = await inProcessDaemon("dest-qemu");
    try {
      const { dest, id } = await migrationUnderway(d, "h2");
      const incoming = qemuPidsOf("f-dqemu").filter((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes("-incoming"));
      expect(incoming, "the destination's incoming QEMU").toHaveLength(1);
      const t0 = Date.now();
      process.kill(incoming[0] as number, "SIGKILL");
      const rec = await closedRecord(d, id);
      const closedMs = Date.now() - t0;
      expect(rec.status, rec.error ?? "").toBe("failed");
      expect(rec.error).not.toBe("");
      expect(await expectRunningOnce("f-dqemu")).toBe("h2");
      const refused = await expectBackedOff(d);
      report.push(`destination QEMU SIGKILLed mid-migration (h2→${dest}): ${rec.status} in ${closedMs} ms ("${rec.error}"); guest running on h2; ${refused} host-backoff refusals, no retry`);
    } finally {
      await d.stop();
    }
  }, 180_000);

  // As `systemctl restart`: SIGTERM, then SIGKILL after TimeoutStopSec (5 s here). libvirtd 9.0 closes its clients at
  // once but waits for the migration job, which no one can end then; meanwhile the destination still lists the
  // paused incoming domain and the source answers nothing.
  it("source libvirtd restarted mid-migration: the record is closed with the cause, the guest runs once, hosts backed off", async () => {
    await lab.defineGuest("h3", { name: "f-slv", kind: UNENDING });
    await sleep(1200);
    const d = await inProcessDaemon("source-libvirtd");
    try {
      const { dest, id } = await migrationUnderway(d, "h3");
      const t0 = Date.now();
      await lab.restartLibvirtd("h3", { signal: "SIGTERM", stopTimeoutMs: 5000 });
      const restartMs = Date.now() - t0;
      const rec = await closedRecord(d, id);
      const closedMs = Date.now() - t0;
      const host = await expectRunningOnce("f-slv");
      expect(replayRecords("h3", [rec]), `${JSON.stringify(rec)} after ${restartMs} ms of restart\n${tail(d)}`).toBe(host);
      expect(rec.status, rec.error ?? "").not.toBe("succeeded");
      const refused = await expectBackedOff(d);
      report.push(`source libvirtd restarted (SIGTERM, SIGKILL after 5 s) mid-migration (h3→${dest}, restart took ${restartMs} ms): ${rec.status} in ${closedMs} ms ("${rec.error}"); guest running on ${host}; ${refused} host-backoff refusals, no retry`);
    } finally {
      await d.stop();
    }
  }, 180_000);

  it("SSH dropped and not answering during a drain: sampling falls back to libvirt, the drain goes on, the session reconnects", async () => {
    await lab.defineGuest("h1", { name: "f-ssh", kind: "idle" });
    const libvirt = lab.libvirtConfig();
    const d = await inProcessDaemon("ssh", { libvirt: { ...libvirt, hosts: libvirt.hosts.map((h) => (h.name === "h1" ? { ...h, loadSource: "proc" } : h)) } });
    const ssh = lab.host("h1").ssh;
    if (!ssh) throw new Error("the lab has no sshd");
    const sshLog = join(lab.dir, "h1", "sshd.log");
    const accepted = (): number => (readFileSync(sshLog, "utf8").match(/Accepted publickey/g) ?? []).length;
    const h1 = (): { reachable: boolean; memoryUsedMiB: number } | undefined => d.running.daemon.lastSnapshot?.hosts.find((h) => h.name === "h1");
    let stopped = false;
    try {
      await until("a first round", () => d.running.daemon.lastRound !== undefined && !d.running.daemon.busy, 30_000);
      // From /proc over SSH: the whole machine's memory in use, far more than the one 64 MiB guest.
      const procMiB = h1()?.memoryUsedMiB ?? 0;
      expect(procMiB).toBeGreaterThan(200);
      const acceptedBefore = accepted();
      // The drop: the session's processes die, and the listener stops answering (new connections hang, as
      // behind a dead link), so the reconnect cannot succeed until it answers again.
      process.kill(ssh.sshdPid, "SIGSTOP");
      stopped = true;
      for (const pid of descendantsOf(ssh.sshdPid)) process.kill(pid, "SIGKILL");
      const t0 = Date.now();
      d.flag("h1");
      await until("the drain's migration", () => d.running.store.recentMigrations(1).length === 1, 30_000, 100).catch((e: unknown) => {
        throw new Error(`${String(e)}\n${tail(d)}`);
      });
      const startedMs = Date.now() - t0;
      // That round sampled h1 through libvirt alone: reachable, memory = its guest's.
      expect(h1()).toMatchObject({ reachable: true, memoryUsedMiB: 64 });
      const rec = await closedRecord(d, (d.running.store.recentMigrations(1)[0] as MigrationRow).id);
      expect(rec.status, rec.error ?? "").toBe("succeeded");
      process.kill(ssh.sshdPid, "SIGCONT");
      stopped = false;
      const t1 = Date.now();
      await until(
        "h1 sampled from /proc again",
        async () => {
          await d.running.daemon.trigger("test");
          return (h1()?.memoryUsedMiB ?? 0) > 200;
        },
        60_000,
        500,
      );
      const reconnectMs = Date.now() - t1;
      expect(accepted()).toBeGreaterThan(acceptedBefore);
      expect(await expectRunningOnce("f-ssh")).toBe(rec.to);
      expect((await metricsText(d.running.httpPort)).status).toBe(200);
      report.push(
        `SSH of h1 dropped (session killed, sshd not answering): the drain's migration started ${startedMs} ms after the flag with h1 sampled through libvirt (memory ${h1()?.memoryUsedMiB ?? "?"} MiB from /proc before, 64 MiB from domains during), ${rec.status}; /proc sampling back ${reconnectMs} ms after sshd answered again`,
      );
    } finally {
      if (stopped) process.kill(ssh.sshdPid, "SIGCONT");
      await d.stop();
    }
  }, 180_000);

  it("history disk full (a tiny tmpfs in the daemon's own mount namespace): no migration without a journal, the daemon keeps serving, records closed once there is room", async () => {
    // 32 MiB dirtied at 8 MiB/s over a 16 MiB/s link: a few seconds per migration, and it converges. By the time
    // the disk has room again (≥ 6 s), every page has been written once.
    for (const g of ["f-db-1", "f-db-2"]) await lab.defineGuest("h1", { name: g, kind: { dirtyMiB: 32, rateMiBps: 8 } });
    const uuids = new Map<string, string>();
    for (const g of ["f-db-1", "f-db-2"]) uuids.set(await uuidOf(g), g);
    const stateDir = join(work, "full-state");
    const flags = join(work, "full-flags");
    mkdirSync(stateDir, { mode: 0o700 });
    mkdirSync(flags, { mode: 0o750 });
    const cfg = join(work, "full.yaml");
    writeRunConfig(cfg, stateDir, {
      maintenanceDir: flags,
      schedule: "*/2 * * * * *",
      http: { enabled: true, listen: "127.0.0.1", port: 0 },
      migration: { bandwidthMiBps: 16, pollIntervalMs: 500 },
      guards: BACKOFF,
    });
    // unshare execs sh, which mounts the tmpfs over the state dir in the new namespace only, then execs node.
    const child = spawnLogged("unshare", ["--mount", "--propagation", "private", "--", "sh", "-c", 'mount -t tmpfs -o size=16m,mode=0700 ballast-state "$0" && exec "$@"', stateDir, process.execPath, CLI, "run", "-c", cfg]);
    // The daemon's files as its namespace sees them.
    const inside = (p: string): string => `/proc/${child.pid}/root${p}`;
    const filler = inside(join(stateDir, "filler"));
    const fill = (): number => {
      const fd = openSync(filler, "a");
      const mib = Buffer.alloc(1 << 20, 1);
      let written = 0;
      try {
        for (;;) written += writeSync(fd, mib);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
      } finally {
        closeSync(fd);
      }
      return written;
    };
    const metrics = async (): Promise<{ status: number; errors: number }> => {
      const m = await metricsText(port);
      return { status: m.status, errors: metricValue(m.body, 'ballast_rounds_total{outcome="error"}') };
    };
    let port: number | undefined;
    try {
      port = (await child.waitFor(msgIs("http listening"), 30_000)).port;
      await child.waitFor(msgIs("ready (first sample taken)"), 30_000);
      expect(readFileSync("/proc/self/mounts", "utf8"), "the tmpfs is not in the test's namespace").not.toContain(stateDir);

      // Full before the drain: the flag is seen, rounds fail to write, nothing is migrated.
      fill();
      let from = child.lines.length;
      writeFileSync(join(flags, "h1"), "faults test\n");
      await child.waitFor((l) => l.msg === "round failed" && /full/i.test(l.err?.message ?? ""), 30_000, from);
      await sleep(4000); // two more scheduled rounds
      expect(child.alive(), child.lines.slice(-10).map((l) => l.raw).join("\n")).toBe(true);
      expect(child.lines.slice(from).filter(msgIs("migration started"))).toEqual([]);
      const full1 = await metrics();
      expect(full1.status).toBe(200);
      expect(full1.errors).toBeGreaterThanOrEqual(2);
      expect(await guestsOn("h1")).toEqual(expect.arrayContaining(["f-db-1", "f-db-2"]));

      // Room again: the drain starts; the disk fills up again mid-migration.
      unlinkSync(filler);
      from = child.lines.length;
      const first = await child.waitFor(msgIs("migration started"), 30_000, from);
      // The incoming domain appears on the destination once the copy is about to start: the disk fills now.
      await until("the incoming domain", async () => (await lab.virsh(first.to as LabHostName, "domstate", first.vm ?? "").catch(() => "")).trim() === "paused", 30_000, 50);
      fill();
      const ended = await child.waitFor((l) => msgIs("migration finished", "migration did not succeed")(l) && l.vm === first.vm, 60_000, from);
      from = child.lines.length;
      await sleep(4000);
      expect(child.alive(), child.lines.slice(-10).map((l) => l.raw).join("\n")).toBe(true);
      expect((await metrics()).status).toBe(200);
      // Its record could not be closed: it stays open (the guards refuse the VM) until it can be reconciled…
      const open = await readRecordsInside(child.pid, cfg);
      expect(["intent", "running"]).toContain(open.records.find((r) => r.vm === first.vm)?.status);
      // …and no other migration starts without a journal.
      expect(child.lines.slice(from).filter(msgIs("migration started"))).toEqual([]);
      expect(await guestsOn("h1")).toContain(uuids.get(first.vm ?? "") === "f-db-1" ? "f-db-2" : "f-db-1");

      unlinkSync(filler);
      await until("h1 drained and every record closed", async () => (await guestsOn("h1")).length === 0 && (await readRecordsInside(child.pid, cfg)).open === 0, 90_000, 500);
      const after = await readRecordsInside(child.pid, cfg);
      // The open record was closed by reconciliation, with what the hypervisor shows: where the migration took it.
      const closedBy = after.reconciled.slice(open.reconciled.length);
      expect(closedBy.map((r) => r.status)).toEqual([ended.outcome === "succeeded" ? "succeeded" : "interrupted"]);
      for (const [uuid, g] of uuids) expect(replayRecords("h1", after.records.filter((r) => r.vm === uuid)), `${g}'s records`).toBe(await expectRunningOnce(g));
      report.push(
        `history disk full: ${full1.errors} rounds failed (counted in /metrics, which kept answering 200) and nothing moved while full; ` +
          `the migration under way when it filled again ended ${ended.outcome ?? "?"}, its record stayed open while full and was closed by reconciliation as ${closedBy.map((r) => r.status).join(", ")}; the drain then finished (${after.records.length} records, all closed)`,
      );
      await stopGracefully(child);
    } finally {
      if (child.alive()) await killHard(child);
    }
  }, 240_000);

  it("clock jumps of hours during and after a failing migration: aborted with the cause, no retry, a host link back within seconds", async () => {
    await lab.defineGuest("h1", { name: "f-clock", memoryMiB: 64, kind: { dirtyMiB: 48, rateMiBps: 50 } });
    await sleep(1500); // one sweep, so every dirtied page holds data
    const clock = new JumpingClock();
    const d = await inProcessDaemon("clock", { migration: { bandwidthMiBps: 10, pollIntervalMs: 500, escalateAfterSamples: 3, progressTimeoutSec: 20, timeoutAction: "abort" } }, clock);
    try {
      const { dest, id } = await migrationUnderway(d, "h1", 1);
      clock.offsetMs = -3 * HOUR;
      await sleep(1500);
      clock.offsetMs = 3 * HOUR;
      const rec = await closedRecord(d, id);
      expect(rec.status, rec.error ?? "").toBe("aborted");
      expect(rec.error).toMatch(/dirty rate \d+ MiB\/s ≥ bandwidth|no new low|budget/);
      // Seconds of migration, not the hours the wall clock moved by.
      expect(rec.actualMs).toBeGreaterThan(0);
      expect(rec.actualMs).toBeLessThan(120_000);
      expect(await expectRunningOnce("f-clock")).toBe("h1");
      await expectBackedOff(d);
      // Back six hours: the failure now lies in the future; still backed off, no retry.
      clock.offsetMs = -3 * HOUR;
      await expectBackedOff(d);

      // A host whose libvirtd died is retried with back-off; a step back of hours must not stretch that back-off.
      const other = (["h1", "h2", "h3"] as const).find((h) => h !== "h1" && h !== dest) ?? "h3";
      const reachable = (): boolean | undefined => d.running.daemon.lastSnapshot?.hosts.find((h) => h.name === other)?.reachable;
      process.kill(lab.host(other).libvirtdPid, "SIGKILL");
      await until(`${other} sampled unreachable`, async () => (await d.running.daemon.trigger("test"), reachable() === false), 30_000, 300);
      // One more round tries to reconnect, is refused, and sets the next attempt a second or so ahead…
      await d.running.daemon.trigger("test");
      expect(reachable()).toBe(false);
      // …which a step back of six hours must not turn into six hours.
      clock.offsetMs -= 6 * HOUR;
      await lab.restartLibvirtd(other);
      const t0 = Date.now();
      await until(`${other} reachable again`, async () => (await d.running.daemon.trigger("test"), reachable() === true), 20_000, 500);
      const backMs = Date.now() - t0;
      expect((await metricsText(d.running.httpPort)).status).toBe(200);
      report.push(
        `clock jumps (−3 h then +3 h mid-migration, −6 h and −6 h more after): ${rec.status} ("${rec.error}"), recorded duration ${rec.actualMs} ms; no retry in 6 rounds; ${other}'s libvirtd restarted after a −6 h step was reachable again in ${backMs} ms`,
      );
    } finally {
      await d.stop();
    }
  }, 180_000);
});

/** Every process below `pid` (an sshd listener's per-connection children and theirs). */
function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const ppid = Number(/^\d+ \(.*\) \S+ (\d+)/s.exec(readFileSync(`/proc/${e}/stat`, "utf8"))?.[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  for (let queue = [pid]; queue.length > 0; ) {
    const next = children.get(queue.shift() as number) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}
