import { closeSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";

/**
 * One daemon per state directory: `<stateDir>/ballast.pid`, created atomically (written to a temporary
 * file, then hard-linked into place, which fails if the lock exists), holding
 *
 *     <pid>
 *     starttime=<field 22 of /proc/<pid>/stat>
 *
 * A lock whose process is gone (ESRCH), or whose PID now belongs to another process (a different start
 * time: PID reused after a crash or reboot), is stale and taken over, so a daemon killed with SIGKILL never
 * blocks the next start. The first line alone is a conventional pid file (`kill -HUP "$(head -1 …)"`).
 */
export const LOCK_FILE = "ballast.pid";

/**
 * sysexits EX_TEMPFAIL: `ballast run` exits with it when another instance holds the lock. Temporary by
 * nature (the other instance will stop), so systemd's Restart=on-failure retries it, unlike 78 (config).
 */
export const EX_TEMPFAIL = 75;

export class LockError extends Error {
  constructor(
    message: string,
    readonly path: string,
    readonly holderPid?: number,
  ) {
    super(message);
    this.name = "LockError";
  }
}

export interface Lock {
  readonly path: string;
  readonly pid: number;
  /** The PID of a stale lock this acquisition replaced (for the log). */
  readonly replacedStalePid?: number;
  /** Removes the lock file if it is still ours. Idempotent. */
  release(): void;
}

interface Holder {
  readonly pid: number;
  readonly starttime?: string;
}

/** Start time of a process in clock ticks since boot, or undefined when /proc does not show it. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19]; // field 22 overall; rest[0] is field 3
  } catch {
    return undefined;
  }
}

function parse(text: string): Holder | undefined {
  const [first, ...others] = text.split("\n");
  if (!first || !/^\d+$/.test(first.trim())) return undefined;
  const pid = Number(first.trim());
  const st = others.find((l) => l.startsWith("starttime="))?.slice("starttime=".length).trim();
  return { pid, ...(st && { starttime: st }) };
}

function content(pid: number): string {
  const st = processStartTime(pid);
  return `${pid}\n${st !== undefined ? `starttime=${st}\n` : ""}`;
}

/** Why the holder is not running, or undefined when it (probably) is. */
function staleReason(h: Holder, self: number): string | undefined {
  if (h.pid === self) return "it names this process (left by an earlier run with the same PID)";
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return `process ${h.pid} is not running`;
    // EPERM: alive, another user's. Its /proc entry may be hidden (ProtectProc=invisible); compare if not.
  }
  if (h.starttime !== undefined) {
    const now = processStartTime(h.pid);
    if (now !== undefined && now !== h.starttime) return `PID ${h.pid} now belongs to another process`;
  }
  return undefined;
}

/** Locks this process holds: a second daemon in the same process is refused too (its PID would look stale). */
const held = new Set<string>();

const readOrUndefined = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
};

/** Takes the state directory's lock or throws LockError naming the running holder. The directory must exist. */
export function acquireLock(stateDir: string, opts: { pid?: number } = {}): Lock {
  const pid = opts.pid ?? process.pid;
  const path = join(stateDir, LOCK_FILE);
  const tmp = join(stateDir, `.${LOCK_FILE}.${pid}.${Date.now()}.tmp`);
  if (held.has(path)) throw new LockError(`state directory ${stateDir} is already in use by this process (PID ${pid}, lock file ${path})`, path, pid);
  const mine = content(pid);
  let replacedStalePid: number | undefined;
  // 0600 like every state file: outside systemd (UMask=0077) a umask of 022 or 000 must not widen it.
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, mine);
  } finally {
    closeSync(fd);
  }
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(tmp, path);
        held.add(path);
        let released = false;
        return {
          path,
          pid,
          ...(replacedStalePid !== undefined && { replacedStalePid }),
          release() {
            if (released) return;
            released = true;
            held.delete(path);
            try {
              if (readOrUndefined(path) === mine) unlinkSync(path);
            } catch {
              // gone already, or the directory is no longer writable: the next start detects it as stale
            }
          },
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const text = readOrUndefined(path);
      if (text === undefined) continue; // released meanwhile: try again
      const holder = parse(text);
      const why = holder ? staleReason(holder, pid) : "its content is not a PID";
      if (!why && holder) {
        throw new LockError(
          `state directory ${stateDir} is in use by another ballast process (PID ${holder.pid}, lock file ${path}); ` +
            `stop that one first (systemctl stop ballast) or give this instance its own stateDir`,
          path,
          holder.pid,
        );
      }
      // Stale: remove it only if it is still the file we judged (another starter may have replaced it).
      if (readOrUndefined(path) === text) {
        try {
          unlinkSync(path);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        }
        replacedStalePid = holder?.pid;
      }
    }
    throw new LockError(`could not take the lock ${path}: it kept changing (several instances starting at once?)`, path);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // best effort
    }
  }
}
