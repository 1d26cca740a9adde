import { spawnSync } from "node:child_process";
import unixDgram, { type UnixDgramSocket } from "unix-dgram";

/**
 * sd_notify(3) from the main process: systemd's `Type=notify` protocol over the AF_UNIX datagram socket
 * named by $NOTIFY_SOCKET. Node has no datagram unix sockets, so this sits on `unix-dgram`.
 *
 * - No $NOTIFY_SOCKET (not under systemd, or Type=simple): every call is a no-op.
 * - Paths starting with "/" are sent to directly. Paths starting with "@" name Linux's abstract namespace
 *   (systemd uses them, e.g. in containers): unix-dgram copies the path as a C string, so it cannot
 *   express the leading NUL. The socket is instead connected once, at start, by a short-lived `perl`
 *   helper (perl-base is Essential on Debian) that inherits it as fd 3; connect() acts on the shared
 *   socket, so datagrams are still sent by — and credited to — this process, as NotifyAccess=main needs.
 * - Sending never throws: a failure is reported once per error code through `onError`.
 * - NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are removed from process.env once read (as
 *   sd_notify's unset_environment does), so helpers the drivers spawn do not inherit them.
 */
export interface Notifier {
  /** A notify socket is configured and usable. */
  readonly enabled: boolean;
  /** WATCHDOG_USEC in ms when systemd expects keep-alives from this process (WatchdogSec=), else undefined. */
  readonly watchdogMs: number | undefined;
  /** Sends one datagram of `KEY=value` lines; false when disabled or the send failed. */
  send(fields: Readonly<Record<string, string | number>>): boolean;
  ready(status?: string): void;
  status(line: string): void;
  watchdog(): void;
  /** RELOADING=1 with MONOTONIC_USEC (systemd 253+ wants it; older versions ignore it). */
  reloading(status?: string): void;
  stopping(status?: string): void;
  /** EXTEND_TIMEOUT_USEC: more time for the current state (start, stop) than the unit's timeout. */
  extendTimeout(ms: number): void;
  close(): void;
}

export interface NotifierOptions {
  /** Default process.env (then the variables are removed from it once read). */
  readonly env?: NodeJS.ProcessEnv;
  readonly pid?: number;
  readonly onError?: (message: string) => void;
}

const disabled = (watchdogMs?: number): Notifier => ({
  enabled: false,
  watchdogMs,
  send: () => false,
  ready: () => undefined,
  status: () => undefined,
  watchdog: () => undefined,
  reloading: () => undefined,
  stopping: () => undefined,
  extendTimeout: () => undefined,
  close: () => undefined,
});

/** sun_path holds 108 bytes including the terminating NUL (or the leading one of an abstract name). */
const MAX_SOCKET_PATH = 107;

/** CLOCK_MONOTONIC in µs: libuv's hrtime is CLOCK_MONOTONIC on Linux, the clock systemd compares against. */
export const monotonicUsec = (): bigint => process.hrtime.bigint() / 1000n;

/** One line, printable, bounded: systemctl status shows STATUS= on one line. */
export function oneLine(text: string, max = 400): string {
  // eslint-disable-next-line no-control-regex
  const s = text.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

/** The datagram for fields: `KEY=value` lines; values are made single-line. */
export function formatMessage(fields: Readonly<Record<string, string | number>>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === "number" ? String(v) : oneLine(v)}`)
    .join("\n");
}

/** WATCHDOG_USEC in ms, when it is meant for this process (WATCHDOG_PID unset or ours). */
export function watchdogMsFrom(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || !/^\d+$/.test(usec)) return undefined;
  const wpid = env.WATCHDOG_PID;
  if (wpid !== undefined && wpid !== "" && Number(wpid) !== pid) return undefined;
  const ms = Number(usec) / 1000;
  return ms > 0 ? ms : undefined;
}

/** Connects `socket` to an abstract-namespace address (name without the leading "@") via a perl helper. */
function connectAbstract(socket: UnixDgramSocket, name: string): string | undefined {
  if (name.includes("\0")) return "abstract socket name contains NUL";
  const script = 'use Socket; open(my $s, "+<&=", 3) or die "fd 3: $!\\n"; connect($s, pack_sockaddr_un("\\0" . $ARGV[0])) or die "connect: $!\\n";';
  const r = spawnSync("perl", ["-e", script, "--", name], { stdio: ["ignore", "ignore", "pipe", socket.fd], timeout: 5000, encoding: "utf8" });
  if (r.error) return `perl helper: ${r.error.message}`;
  if (r.status !== 0) return `perl helper: ${(r.stderr || `exit ${String(r.status)}`).trim()}`;
  socket.connected = true;
  return undefined;
}

export function createNotifier(opts: NotifierOptions = {}): Notifier {
  const env = opts.env ?? process.env;
  const pid = opts.pid ?? process.pid;
  const onError = opts.onError ?? ((m: string) => void process.stderr.write(`ballast: sd_notify: ${m}\n`));
  const path = env.NOTIFY_SOCKET;
  const watchdogMs = watchdogMsFrom(env, pid);
  if (env === process.env) {
    delete process.env.NOTIFY_SOCKET;
    delete process.env.WATCHDOG_USEC;
    delete process.env.WATCHDOG_PID;
  }
  if (path === undefined || path === "") return disabled(watchdogMs);
  if (!(path.startsWith("/") || path.startsWith("@"))) {
    onError(`NOTIFY_SOCKET=${path}: only unix socket paths ("/…" or "@…") are supported; notifications are off`);
    return disabled(watchdogMs);
  }
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    onError(`NOTIFY_SOCKET is longer than ${MAX_SOCKET_PATH} bytes; notifications are off`);
    return disabled(watchdogMs);
  }

  let socket: UnixDgramSocket | undefined;
  try {
    socket = unixDgram.createSocket("unix_dgram");
  } catch (e) {
    onError(`cannot create a datagram socket: ${(e as Error).message}; notifications are off`);
    return disabled(watchdogMs);
  }
  // unix-dgram reports some failures as events: keep them from becoming uncaught exceptions.
  socket.on("error", (e: Error) => onError(e.message));
  if (path.startsWith("@")) {
    const err = connectAbstract(socket, path.slice(1));
    if (err) {
      onError(`cannot reach abstract socket ${path}: ${err}; notifications are off`);
      socket.close();
      return disabled(watchdogMs);
    }
  }

  const reported = new Set<string>();
  const send = (fields: Readonly<Record<string, string | number>>): boolean => {
    const s = socket;
    if (!s) return false;
    const buf = Buffer.from(formatMessage(fields), "utf8");
    let ok = true;
    const done = (err?: Error & { code?: number }): void => {
      if (!err) return;
      ok = false;
      const code = String(err.code ?? err.message);
      if (reported.has(code)) return;
      reported.add(code);
      onError(`sending to ${path}: ${err.message}`);
    };
    try {
      if (s.connected) s.send(buf, done);
      else s.send(buf, 0, buf.length, path, done);
    } catch (e) {
      done(e as Error);
    }
    return ok;
  };

  return {
    enabled: true,
    watchdogMs,
    send,
    ready: (status) => void send({ READY: 1, ...(status !== undefined && { STATUS: status }) }),
    status: (line) => void send({ STATUS: line }),
    watchdog: () => void send({ WATCHDOG: 1 }),
    reloading: (status) => void send({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec().toString(), ...(status !== undefined && { STATUS: status }) }),
    stopping: (status) => void send({ STOPPING: 1, ...(status !== undefined && { STATUS: status }) }),
    extendTimeout: (ms) => void send({ EXTEND_TIMEOUT_USEC: Math.max(0, Math.round(ms * 1000)) }),
    close() {
      const s = socket;
      socket = undefined;
      try {
        s?.close();
      } catch {
        // already closed
      }
    },
  };
}

// ------------------------------------------------------------------------------- watchdog and status

/**
 * How long the loop may go without progress before the watchdog pings stop: max(3 × the schedule
 * interval, WatchdogSec). Three intervals tolerate a round that overruns one slot (node-cron skips a
 * slot while a round runs); WatchdogSec is the floor so a fast schedule never trips it by jitter.
 */
export function watchdogBoundMs(scheduleIntervalMs: number | undefined, watchdogMs: number): number {
  return Math.max(3 * (scheduleIntervalMs ?? 0), watchdogMs);
}

export interface LoopState {
  readonly now: number;
  /** A round is running. */
  readonly busy: boolean;
  /** Last sign of progress: a round started, sampled or ended, or a migration job was polled. */
  readonly lastActivityAt: number;
  /** The schedule is armed (without it an idle loop is expected to stay idle). */
  readonly scheduled: boolean;
  readonly boundMs: number;
}

export type Health = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * The loop is healthy while it makes progress. A round that ended with an error is progress too: a
 * restart would not make an unreachable hypervisor reachable, and failed rounds are visible in STATUS=,
 * the metrics and alerts. What the watchdog catches is a wedged loop — a round stuck in a driver call
 * that never returns, a schedule that stopped firing, or a blocked event loop (then no ping is sent at all).
 */
export function loopHealth(s: LoopState): Health {
  const quietMs = s.now - s.lastActivityAt;
  if (quietMs <= s.boundMs) return { ok: true };
  if (s.busy) return { ok: false, reason: `the round in progress has shown no progress for ${Math.round(quietMs / 1000)} s (limit ${Math.round(s.boundMs / 1000)} s)` };
  if (!s.scheduled) return { ok: true };
  return { ok: false, reason: `no round has run for ${Math.round(quietMs / 1000)} s (limit ${Math.round(s.boundMs / 1000)} s)` };
}

/** Longest gap between the next runs of a schedule (irregular expressions have uneven gaps). */
export function scheduleIntervalMs(nextRuns: readonly Date[]): number | undefined {
  let max: number | undefined;
  for (let i = 1; i < nextRuns.length; i++) {
    const gap = (nextRuns[i]?.getTime() ?? 0) - (nextRuns[i - 1]?.getTime() ?? 0);
    if (gap > 0) max = Math.max(max ?? 0, gap);
  }
  return max;
}

export interface StatusInput {
  readonly hosts: number;
  readonly cells: number;
  /** Hosts with a maintenance flag, with the VMs still on them. */
  readonly draining: readonly { readonly host: string; readonly vmsLeft: number }[];
  readonly round: {
    readonly outcome: "ok" | "error";
    readonly startedAt: number;
    readonly durationMs: number;
    readonly moves: number;
    readonly blocked: number;
    readonly error?: string;
    readonly executed?: { readonly move: { readonly vm: string; readonly from: string; readonly to: string }; readonly result: { readonly status: string } };
  };
}

const clockTime = (ms: number): string => new Date(ms).toISOString().slice(11, 19) + " UTC";
const plural = (n: number, one: string, many = one + "s"): string => `${n} ${n === 1 ? one : many}`;

/**
 * The STATUS= line after a round, e.g. "14 hosts in 3 cells, 1 draining (3 VMs left), last round ok at
 * 14:02:11 UTC (0.4 s), 2 moves planned, 0 blocked; migration vm-7 core-h1→core-h3 succeeded". systemd
 * shows it as-is until the next one, so it names the round's time rather than "N s ago".
 */
export function statusLine(s: StatusInput): string {
  const parts = [`${plural(s.hosts, "host")} in ${plural(s.cells, "cell")}`];
  if (s.draining.length > 0) {
    const left = s.draining.reduce((n, d) => n + d.vmsLeft, 0);
    parts.push(`${s.draining.length} draining (${plural(left, "VM")} left)`);
  }
  const r = s.round;
  const ended = `at ${clockTime(r.startedAt + r.durationMs)} (${(r.durationMs / 1000).toFixed(1)} s)`;
  if (r.outcome === "error") {
    parts.push(`last round FAILED ${ended}: ${r.error ?? "unknown error"}`);
    return oneLine(parts.join(", "));
  }
  parts.push(`last round ok ${ended}`, `${plural(r.moves, "move")} planned`, `${r.blocked} blocked`);
  let line = parts.join(", ");
  if (r.executed) line += `; migration ${r.executed.move.vm} ${r.executed.move.from}→${r.executed.move.to} ${r.executed.result.status}`;
  return oneLine(line);
}
