import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { acquireLock, EX_TEMPFAIL, LOCK_FILE, LockError, processStartTime } from "../../src/daemon/lock.js";
import { ballast } from "../helpers/cli.js";
import { demoConfig, killIfRunning, msg, runDaemon, type Daemon } from "./helpers.js";

/** A PID that certainly belongs to no process: one that just exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(r.stdout);
}

describe("state directory lock", () => {
  const dirs: string[] = [];
  const tmp = (): string => {
    const d = mkdtempSync(join(tmpdir(), "ballast-lock-"));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("writes its PID and start time, and refuses a second holder in the same process", () => {
    const dir = tmp();
    const lock = acquireLock(dir);
    expect(readFileSync(join(dir, LOCK_FILE), "utf8")).toBe(`${process.pid}\nstarttime=${processStartTime(process.pid)}\n`);
    expect(() => acquireLock(dir)).toThrow(LockError);
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    acquireLock(dir).release();
  });

  it("refuses while another live process holds it, naming the PID and the lock file", async () => {
    const dir = tmp();
    const other = spawn("sleep", ["30"]);
    try {
      await new Promise((r) => other.once("spawn", r));
      const pid = other.pid ?? -1;
      writeFileSync(join(dir, LOCK_FILE), `${pid}\nstarttime=${processStartTime(pid)}\n`);
      let err: unknown;
      try {
        acquireLock(dir);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LockError);
      expect((err as LockError).holderPid).toBe(pid);
      expect((err as Error).message).toContain(`PID ${pid}`);
      expect((err as Error).message).toContain(join(dir, LOCK_FILE));
    } finally {
      other.kill();
    }
  });

  it.each([
    ["its process is gone (SIGKILL)", () => `${deadPid()}\n`],
    ["its PID was reused by another process (start time differs)", () => `${process.ppid}\nstarttime=1\n`],
    ["it names this very process (same PID after a container restart)", () => `${process.pid}\n`],
    ["it holds garbage", () => "not a pid\n"],
  ])("takes over a stale lock: %s", (_name, content) => {
    const dir = tmp();
    const text = content();
    writeFileSync(join(dir, LOCK_FILE), text);
    const lock = acquireLock(dir);
    expect(readFileSync(join(dir, LOCK_FILE), "utf8")).toMatch(new RegExp(`^${process.pid}\\n`));
    const stale = /^\d+/.exec(text)?.[0];
    expect(lock.replacedStalePid).toBe(stale === undefined ? undefined : Number(stale));
    lock.release();
  });

  it("leaves another holder's lock in place on release", () => {
    const dir = tmp();
    const lock = acquireLock(dir);
    writeFileSync(join(dir, LOCK_FILE), "1\n"); // replaced behind our back
    lock.release();
    expect(readFileSync(join(dir, LOCK_FILE), "utf8")).toBe("1\n");
  });
});

/**
 * Two `ballast run` on one state directory: the second exits 75 (EX_TEMPFAIL) naming the lock and the first
 * one's PID. A daemon killed with SIGKILL leaves its lock behind; the next start detects it as stale.
 */
describe("double start", () => {
  const cfg = demoConfig("double", { sim: { hotHosts: [] } });
  let first: Daemon | undefined;
  let third: Daemon | undefined;
  afterAll(() => {
    killIfRunning(first);
    killIfRunning(third);
    cfg.cleanup();
  });

  it("refuses a second daemon, and starts again after the first was killed", async () => {
    first = runDaemon(["run", "--config", cfg.file]);
    await first.waitFor(msg("ballast running"), 15_000);
    const pid = first.child.pid ?? -1;
    const lockFile = join(cfg.dir, "state", LOCK_FILE);
    expect(readFileSync(lockFile, "utf8").split("\n")[0]).toBe(String(pid));

    const second = ballast(["run", "--config", cfg.file]);
    expect(second.code).toBe(EX_TEMPFAIL);
    expect(second.stderr).toContain(`PID ${pid}`);
    expect(second.stderr).toContain(lockFile);
    expect(second.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(first.child.exitCode).toBeNull();

    // SIGKILL: no clean-up, the lock file stays with a dead PID.
    first.child.kill("SIGKILL");
    await first.exited;
    expect(existsSync(lockFile)).toBe(true);

    third = runDaemon(["run", "--config", cfg.file]);
    const replaced = await third.waitFor(msg("replaced a stale lock left by a process that is gone"), 15_000);
    expect((JSON.parse(replaced) as { stalePid: number }).stalePid).toBe(pid);
    await third.waitFor(msg("ballast running"), 15_000);
    third.child.kill("SIGTERM");
    expect(await third.exited).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
  }, 45_000);
});
