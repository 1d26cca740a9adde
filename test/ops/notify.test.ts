import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import unixDgram, { type UnixDgramSocket } from "unix-dgram";
import { afterAll, describe, expect, it } from "vitest";
import {
  createNotifier,
  formatMessage,
  loopHealth,
  scheduleIntervalMs,
  statusLine,
  watchdogBoundMs,
  watchdogMsFrom,
  type StatusInput,
} from "../../src/daemon/notify.js";
import { demoConfig, killIfRunning, msg, runDaemon, type Daemon } from "./helpers.js";

/** A notify socket like systemd's: an AF_UNIX datagram socket bound to a path in a temp dir; messages collected. */
function listen(path: string): { socket: UnixDgramSocket; messages: string[]; next(pred: (m: string) => boolean, ms: number, from?: number): Promise<number> } {
  const messages: string[] = [];
  const waiters: (() => void)[] = [];
  const socket = unixDgram.createSocket("unix_dgram", (buf) => {
    messages.push(buf.toString("utf8"));
    for (const w of waiters.splice(0)) w();
  });
  socket.bind(path);
  return {
    socket,
    messages,
    /** Index of the first message at or after `from` matching pred. */
    next(pred, ms, from = 0) {
      return new Promise((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`no matching notify message within ${ms} ms; got:\n${messages.join("\n---\n")}`)), ms);
        const check = (): void => {
          const i = messages.findIndex((m, j) => j >= from && pred(m));
          if (i >= 0) {
            clearTimeout(deadline);
            resolve(i);
          } else waiters.push(check);
        };
        check();
      });
    },
  };
}

const fields = (m: string): Map<string, string> => new Map(m.split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
const has = (key: string, value?: string) => (m: string) => (value === undefined ? fields(m).has(key) : fields(m).get(key) === value);

describe("sd_notify pieces", () => {
  it("formats KEY=value lines and keeps values on one line", () => {
    expect(formatMessage({ READY: 1, STATUS: "a\nb\tc" })).toBe("READY=1\nSTATUS=a b c");
  });

  it.each([
    ["no watchdog", {}, undefined],
    ["for this process", { WATCHDOG_USEC: "120000000", WATCHDOG_PID: "42" }, 120_000],
    ["without WATCHDOG_PID", { WATCHDOG_USEC: "2000000" }, 2000],
    ["for another process", { WATCHDOG_USEC: "120000000", WATCHDOG_PID: "7" }, undefined],
    ["garbage", { WATCHDOG_USEC: "soon" }, undefined],
  ] as const)("WATCHDOG_USEC: %s", (_name, env, ms) => {
    expect(watchdogMsFrom(env, 42)).toBe(ms);
  });

  it("the watchdog bound is max(3 × schedule interval, WatchdogSec)", () => {
    expect(watchdogBoundMs(60_000, 120_000)).toBe(180_000);
    expect(watchdogBoundMs(10_000, 120_000)).toBe(120_000);
    expect(watchdogBoundMs(undefined, 120_000)).toBe(120_000);
    const at = (s: number): Date => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
    expect(scheduleIntervalMs([at(0), at(10), at(20), at(50)])).toBe(30_000);
    expect(scheduleIntervalMs([])).toBeUndefined();
  });

  it.each([
    ["idle, last round recent", { busy: false, quiet: 100, scheduled: true }, true],
    ["idle too long: the schedule stopped", { busy: false, quiet: 200, scheduled: true }, false],
    ["idle without a schedule (rounds by hand)", { busy: false, quiet: 10_000, scheduled: false }, true],
    ["round making progress (migration polled)", { busy: true, quiet: 5, scheduled: true }, true],
    ["round wedged (no progress)", { busy: true, quiet: 181, scheduled: true }, false],
    ["round wedged even without a schedule", { busy: true, quiet: 181, scheduled: false }, false],
  ] as const)("loop health: %s", (_name, s, ok) => {
    const h = loopHealth({ now: 1_000_000, busy: s.busy, lastActivityAt: 1_000_000 - s.quiet * 1000, scheduled: s.scheduled, boundMs: 180_000 });
    expect(h.ok).toBe(ok);
    if (!h.ok) expect(h.reason).toMatch(/\d+ s \(limit 180 s\)/);
  });

  it("STATUS summarises hosts, drains, the last round and its migration on one line", () => {
    const base: StatusInput = {
      hosts: 14,
      cells: 3,
      draining: [{ host: "edge-h3", vmsLeft: 3 }],
      round: { outcome: "ok", startedAt: Date.UTC(2026, 0, 1, 14, 2, 10, 600), durationMs: 400, moves: 2, blocked: 0, executed: { move: { vm: "vm-7", from: "core-h1", to: "core-h3" }, result: { status: "succeeded" } } },
    };
    expect(statusLine(base)).toBe("14 hosts in 3 cells, 1 draining (3 VMs left), last round ok at 14:02:11 UTC (0.4 s), 2 moves planned, 0 blocked; migration vm-7 core-h1→core-h3 succeeded");
    expect(statusLine({ ...base, draining: [], round: { ...base.round, outcome: "error", error: "host unreachable\nretry" } })).toBe(
      "14 hosts in 3 cells, last round FAILED at 14:02:11 UTC (0.4 s): host unreachable retry",
    );
  });

  it("is a no-op without NOTIFY_SOCKET", () => {
    const n = createNotifier({ env: {} });
    expect(n.enabled).toBe(false);
    expect(n.send({ READY: 1 })).toBe(false);
    n.close();
  });

  it("sends to a socket path, and reports (once) when nobody listens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ballast-notify-"));
    try {
      const rx = listen(join(dir, "notify"));
      const errors: string[] = [];
      const n = createNotifier({ env: { NOTIFY_SOCKET: join(dir, "notify") }, onError: (m) => errors.push(m) });
      n.ready("up");
      n.reloading();
      n.extendTimeout(360_000);
      await rx.next(has("EXTEND_TIMEOUT_USEC", "360000000"), 2000);
      expect(rx.messages[0]).toBe("READY=1\nSTATUS=up");
      expect(fields(rx.messages[1] ?? "").get("MONOTONIC_USEC")).toMatch(/^\d+$/);
      rx.socket.close();
      n.close();

      const gone = createNotifier({ env: { NOTIFY_SOCKET: join(dir, "nobody") }, onError: (m) => errors.push(m) });
      expect(gone.send({ WATCHDOG: 1 })).toBe(false);
      gone.watchdog();
      gone.close();
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/nobody/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // systemd names abstract sockets "@…"; unix-dgram cannot bind or address them itself, so the receiver
  // here is perl (exact-length abstract address, as systemd binds it) and notify.ts connects through perl.
  const perl = spawnSync("perl", ["-MSocket", "-e", "1"]).status === 0;
  it.skipIf(!perl)("sends to an abstract-namespace socket (@name) from this process", async () => {
    const name = `ballast-test-${process.pid}-${Date.now()}`;
    const rx: ChildProcess = spawn(
      "perl",
      ["-MSocket", "-e", 'socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die; bind($s, pack_sockaddr_un("\\0" . $ARGV[0])) or die "bind: $!"; $| = 1; print "listening\\n"; while (defined(recv($s, my $b, 65536, 0))) { $b =~ s/\\n/|/g; print "$b\\n"; }', name],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      let out = "";
      const seen = (s: string): Promise<void> =>
        new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`perl receiver saw: ${out}`)), 5000);
          const check = (): void => {
            if (out.includes(s)) {
              clearTimeout(t);
              resolve();
            }
          };
          rx.stdout?.on("data", (d: Buffer) => ((out += d.toString()), check()));
          check();
        });
      await seen("listening");
      const errors: string[] = [];
      const n = createNotifier({ env: { NOTIFY_SOCKET: `@${name}` }, onError: (m) => errors.push(m) });
      expect(n.enabled).toBe(true);
      n.ready("abstract ok");
      n.stopping();
      await seen("STOPPING=1");
      n.close();
      expect(out).toContain("READY=1|STATUS=abstract ok\n");
      expect(errors).toEqual([]);
    } finally {
      rx.kill();
    }
  });
});

/**
 * The compiled daemon under a notify socket the test owns, with WATCHDOG_USEC = 2 s (keep-alives every
 * second): READY=1 after the first sample, STATUS= after rounds, WATCHDOG=1 repeatedly, RELOADING=1 …
 * READY=1 around SIGHUP, STOPPING=1 on SIGTERM, exit 0.
 */
describe("ballast run under a notify socket", () => {
  const cfg = demoConfig("notify", { schedule: "*/2 * * * * *", sim: { hotHosts: [] } });
  const path = join(cfg.dir, "notify.sock");
  const rx = listen(path);
  let d: Daemon | undefined;
  afterAll(() => {
    killIfRunning(d);
    rx.socket.close();
    cfg.cleanup();
  });

  it("reports readiness, status, keep-alives, reload and stop in order", async () => {
    d = runDaemon(["run", "--config", cfg.file], { NOTIFY_SOCKET: path, WATCHDOG_USEC: "2000000" });
    const ready = await rx.next(has("READY", "1"), 20_000);
    const status = await rx.next((m) => /hosts in \d+ cells?, last round ok/.test(fields(m).get("STATUS") ?? ""), 20_000, ready);
    expect(fields(rx.messages[status] ?? "").get("STATUS")).toMatch(/^15 hosts in 3 cells, last round ok at \d\d:\d\d:\d\d UTC/);
    // Keep-alives every second: at least three within a few seconds of being ready.
    const w1 = await rx.next(has("WATCHDOG", "1"), 5000);
    const w2 = await rx.next(has("WATCHDOG", "1"), 5000, w1 + 1);
    await rx.next(has("WATCHDOG", "1"), 5000, w2 + 1);
    // No message but READY may precede the first READY, except keep-alives (the loop is healthy at start).
    expect(rx.messages.slice(0, ready).every((m) => has("WATCHDOG", "1")(m))).toBe(true);

    const before = rx.messages.length;
    d.child.kill("SIGHUP");
    const reloading = await rx.next(has("RELOADING", "1"), 5000, before);
    expect(fields(rx.messages[reloading] ?? "").get("MONOTONIC_USEC")).toMatch(/^\d+$/);
    const reReady = await rx.next(has("READY", "1"), 5000, reloading + 1);
    expect(fields(rx.messages[reReady] ?? "").get("STATUS")).toMatch(/configuration reloaded/);
    await rx.next(has("WATCHDOG", "1"), 5000, reReady + 1);

    const beforeStop = rx.messages.length;
    d.child.kill("SIGTERM");
    await rx.next(has("STOPPING", "1"), 5000, beforeStop);
    expect(await d.exited).toBe(0);
    // Every message came from the daemon's main process, which is what NotifyAccess=main checks; nothing
    // announces readiness after STOPPING.
    const stopping = rx.messages.findIndex((m, i) => i >= beforeStop && has("STOPPING", "1")(m));
    expect(rx.messages.slice(stopping + 1).some(has("READY", "1"))).toBe(false);
    expect(d.lines.some(msg("ready (first sample taken)"))).toBe(true);
  }, 45_000);
});
