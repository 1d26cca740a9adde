import { join } from "node:path";
import { mkdirSync, statSync } from "node:fs";
import { schedule } from "node-cron";
import type { Logger } from "pino";
import { checkConfig, ConfigError, formatIssue, type ResolvedConfig } from "../config/index.js";
import { createDriver } from "../drivers/index.js";
import type { Driver } from "../drivers/driver.js";
import { openHistory, type HistoryStore } from "../store/index.js";
import { realClock, type Clock } from "../util/clock.js";
import { Daemon, type RoundSummary } from "./daemon.js";
import { acquireLock } from "./lock.js";
import { createNotifier, loopHealth, scheduleIntervalMs, statusLine, watchdogBoundMs, type Notifier } from "./notify.js";
import { adminAccess, startHttp, type AdminAccess } from "./http.js";
import { Metrics } from "./metrics.js";
import { buildImbalance, buildStatus } from "./status.js";

export interface RunningDaemon {
  readonly daemon: Daemon;
  readonly store: HistoryStore;
  readonly metrics: Metrics;
  readonly httpPort: number | undefined;
  /** Re-reads the config file: a valid one applies at the next round; an invalid one is refused and logged. */
  reload(): boolean;
  /**
   * SIGTERM: STOPPING=1, no new round or migration, the migration in flight waited for or aborted as
   * `shutdown` says, then HTTP, driver and database closed and the lock released.
   */
  stop(): Promise<void>;
  /** A second SIGTERM/SIGINT while stopping: abort the migration in flight now. */
  abortNow(): Promise<void>;
}

export interface RunOptions {
  readonly configFile: string;
  readonly config: ResolvedConfig;
  readonly log: Logger;
  readonly clock?: Clock;
  /** Tests pass a driver over a simulator they keep (it outlives this daemon instance). */
  readonly driver?: Driver;
  /** Off in tests that trigger rounds by hand. */
  readonly schedule?: boolean;
  /** sd_notify; default: from $NOTIFY_SOCKET / $WATCHDOG_USEC (a no-op outside systemd). */
  readonly notifier?: Notifier;
}

export const dbPath = (config: { stateDir: string }): string => join(config.stateDir, "ballast.db");

/** Wires driver, store, metrics, HTTP and the schedule around a Daemon. */
export async function startDaemon(opts: RunOptions): Promise<RunningDaemon> {
  const { log, configFile } = opts;
  const clock = opts.clock ?? realClock;
  let config = opts.config;
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  refuseWritableByOthers(config, "stateDir", "replace the history database or the lock");
  refuseWritableByOthers(config, "maintenanceDir", "drain any host");
  // One daemon per state directory. Released by stop(), or at exit if start-up fails half-way; a lock
  // left by a killed process is detected as stale by the next start.
  const lock = acquireLock(config.stateDir);
  const releaseAtExit = (): void => lock.release();
  process.once("exit", releaseAtExit);
  if (lock.replacedStalePid !== undefined) log.warn({ lock: lock.path, stalePid: lock.replacedStalePid }, "replaced a stale lock left by a process that is gone");
  const driver = opts.driver ?? (await createDriver(config, clock, log));
  const store = openHistory(dbPath(config));
  const metrics = new Metrics();
  // Created before the daemon (its hooks use it), opened only once nothing else can fail (see below).
  let notifier: Notifier | undefined = undefined;
  let ready = false;
  const daemon: Daemon = new Daemon({
    config,
    driver,
    store,
    clock,
    log,
    metrics,
    hooks: {
      sampled: () => {
        if (ready) return;
        ready = true;
        notifier?.ready("first sample taken; planning");
        log.info("ready (first sample taken)");
      },
      roundFinished: (summary) => notifier?.status(roundStatus(daemon, summary)),
    },
  });

  let admin: () => AdminAccess | undefined;
  try {
    // Drains go to the directory the flag watcher was started on; the token is re-read after each reload.
    admin = adminAccess(() => daemon.currentConfig, config.maintenanceDir, log);
  } catch (e) {
    throw new ConfigError([{ file: config.sourceFile, line: 0, column: 0, path: "http.admin.tokenFile", message: (e as Error).message }]);
  }
  const http = config.http.enabled
    ? await startHttp(
        {
          registry: metrics.registry,
          log,
          admin,
          status: () => buildStatus(daemon, store, clock.now()),
          imbalance: (minutes) => buildImbalance(store, clock.now(), minutes),
          snapshot: () => daemon.lastSnapshot,
          healthy: () => {
            const last = daemon.lastRound;
            if (!last) return { ok: true, detail: "starting" };
            return last.outcome === "ok" ? { ok: true, detail: `last round ${new Date(last.startedAt).toISOString()}` } : { ok: false, detail: last.error ?? "last round failed" };
          },
        },
        config.http.listen,
        config.http.port,
      )
    : undefined;
  if (http) log.info({ listen: config.http.listen, port: http.port }, "http listening");

  let task: ReturnType<typeof schedule> | undefined;
  const arm = (): void => {
    void task?.destroy();
    task = undefined;
    if (opts.schedule === false) return;
    task = schedule(config.schedule, () => void daemon.trigger("schedule"), {
      noOverlap: true,
      name: "ballast-round",
      // node-cron's own logger prints coloured warnings to stderr; route them into ours.
      logger: {
        info: (m) => log.debug({ cron: m }, "schedule"),
        warn: (m) => log.warn({ cron: m }, "schedule"),
        error: (m) => log.error({ cron: String(m) }, "schedule"),
        debug: (m) => log.debug({ cron: String(m) }, "schedule"),
      },
      ...(config.timezone && { timezone: config.timezone }),
    });
  };
  notifier = opts.notifier ?? createNotifier({ onError: (m) => log.warn({ notifySocket: true }, `sd_notify: ${m}`) });
  try {
    await daemon.start();
  } catch (e) {
    notifier.close();
    throw e;
  }
  // Only now: a scheduled round during start() would reconcile the same records concurrently, and plan before
  // the maintenance flags were read.
  arm();
  const stopWatchdog = startWatchdog();
  void daemon.trigger("start");

  /** WATCHDOG=1 at half of WATCHDOG_USEC while the loop makes progress (notify.ts, loopHealth). */
  function startWatchdog(): () => void {
    const wd = notifier?.watchdogMs;
    if (!notifier?.enabled || wd === undefined) return () => undefined;
    let withheld = false;
    return clock.every(Math.max(1, Math.floor(wd / 2)), () => {
      const intervalMs = scheduleIntervalMs(task?.getNextRuns(10) ?? []);
      const health = loopHealth({ now: clock.now(), busy: daemon.busy, lastActivityAt: daemon.lastActivityAt, scheduled: task !== undefined, boundMs: watchdogBoundMs(intervalMs, wd) });
      if (health.ok) {
        if (withheld) log.info("watchdog: loop healthy again; keep-alives resumed");
        withheld = false;
        notifier?.watchdog();
      } else if (!withheld) {
        withheld = true;
        log.error({ reason: health.reason }, "watchdog: loop wedged; withholding keep-alives (systemd will restart ballast)");
        notifier?.status(`wedged: ${health.reason}`);
      }
    });
  }

  let stopping: Promise<void> | undefined;

  return {
    daemon,
    store,
    metrics,
    httpPort: http?.port,
    reload() {
      if (stopping) return false;
      notifier?.reloading(`reloading ${configFile}`);
      // READY=1 ends the reload; before the first sample the daemon is not ready yet, so only STATUS=.
      const done = (status: string): void => (ready ? notifier?.ready(status) : notifier?.status(status));
      const result = checkConfig(configFile);
      if (!result.ok) {
        const errors = result.errors.map(formatIssue);
        log.error({ errors }, "config reload refused; keeping the running config");
        store.recordEvent({ at: clock.now(), kind: "config-rejected", message: errors.join("\n").slice(0, 4000) });
        done(`reload refused (${errors.length} error(s) in ${configFile}); running configuration kept`);
        return false;
      }
      config = result.config;
      daemon.setConfig(config);
      arm();
      store.recordEvent({ at: clock.now(), kind: "config-reloaded", message: `reloaded ${configFile}` });
      log.info({ file: configFile }, "config reloaded");
      done(`configuration reloaded from ${configFile}; applies at the next round`);
      return true;
    },
    stop() {
      stopping ??= (async () => {
        const { action, stopTimeoutSec } = daemon.currentConfig.shutdown;
        const f = daemon.inFlight;
        const waiting = f && action === "wait" ? `; waiting up to ${stopTimeoutSec} s for the migration of ${f.move.vm}` : f ? `; aborting the migration of ${f.move.vm}` : "";
        notifier?.stopping(`stopping${waiting}`);
        // Ask for more than TimeoutStopSec when the wait could outlast it (systemd extends, never shortens).
        if (f && action === "wait") notifier?.extendTimeout((stopTimeoutSec + 60) * 1000);
        void task?.destroy();
        task = undefined;
        try {
          await daemon.stop({ action, timeoutMs: stopTimeoutSec * 1000 });
          await http?.close();
          await driver.close();
          store.close();
        } finally {
          stopWatchdog();
          notifier?.close();
          lock.release();
          process.removeListener("exit", releaseAtExit);
        }
      })();
      return stopping;
    },
    async abortNow() {
      await daemon.abortInFlight("stop requested again (second signal)");
    },
  };
}

/**
 * mkdir's mode applies only to a directory it creates: one that already exists writable by every user (an
 * operator's `chmod 777`, or state put straight into /tmp) would let anyone tamper with ballast. Refused.
 */
function refuseWritableByOthers(config: ResolvedConfig, field: "stateDir" | "maintenanceDir", risk: string): void {
  const dir = config[field];
  let mode: number;
  try {
    mode = statSync(dir).mode;
  } catch {
    return; // not there yet: created 0700 (stateDir) or 0750 (the flag watcher) when needed
  }
  if ((mode & 0o002) === 0) return;
  const message = `${dir} is writable by every user (mode ${(mode & 0o7777).toString(8)}), so anyone could ${risk}; expected a directory others cannot write (chmod o-w)`;
  throw new ConfigError([{ file: config.sourceFile, line: 0, column: 0, path: field, message }]);
}

/** STATUS= after a round: hosts, drains, the round's outcome and what it did. */
function roundStatus(daemon: Daemon, summary: RoundSummary): string {
  const snap = daemon.lastSnapshot;
  const vmsOn = new Map<string, number>();
  for (const v of snap?.vms ?? []) vmsOn.set(v.host, (vmsOn.get(v.host) ?? 0) + 1);
  return statusLine({
    hosts: snap?.hosts.length ?? 0,
    cells: new Set(snap?.hosts.map((h) => h.cell)).size,
    draining: [...daemon.maintenanceFlags.keys()].map((host) => ({ host, vmsLeft: vmsOn.get(host) ?? 0 })),
    round: summary,
  });
}
