import { join } from "node:path";
import { mkdirSync } from "node:fs";
import { schedule } from "node-cron";
import type { Logger } from "pino";
import { checkConfig, formatIssue, type ResolvedConfig } from "../config/index.js";
import { createDriver } from "../drivers/index.js";
import type { Driver } from "../drivers/driver.js";
import { openHistory, type HistoryStore } from "../store/index.js";
import { realClock, type Clock } from "../util/clock.js";
import { Daemon } from "./daemon.js";
import { startHttp } from "./http.js";
import { Metrics } from "./metrics.js";
import { buildStatus } from "./status.js";

export interface RunningDaemon {
  readonly daemon: Daemon;
  readonly store: HistoryStore;
  readonly metrics: Metrics;
  readonly httpPort: number | undefined;
  /** Re-reads the config file: a valid one applies at the next round; an invalid one is refused and logged. */
  reload(): boolean;
  stop(): Promise<void>;
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
}

export const dbPath = (config: { stateDir: string }): string => join(config.stateDir, "ballast.db");

/** Wires driver, store, metrics, HTTP and the schedule around a Daemon. */
export async function startDaemon(opts: RunOptions): Promise<RunningDaemon> {
  const { log, configFile } = opts;
  const clock = opts.clock ?? realClock;
  let config = opts.config;
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const driver = opts.driver ?? createDriver(config, clock);
  const store = openHistory(dbPath(config));
  const metrics = new Metrics();
  const daemon = new Daemon({ config, driver, store, clock, log, metrics });

  const http = config.http.enabled
    ? await startHttp(
        {
          registry: metrics.registry,
          status: () => buildStatus(daemon, store, clock.now()),
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
  arm();
  await daemon.start();
  void daemon.trigger("start");

  return {
    daemon,
    store,
    metrics,
    httpPort: http?.port,
    reload() {
      const result = checkConfig(configFile);
      if (!result.ok) {
        const errors = result.errors.map(formatIssue);
        log.error({ errors }, "config reload refused; keeping the running config");
        store.recordEvent({ at: clock.now(), kind: "config-rejected", message: errors.join("\n").slice(0, 4000) });
        return false;
      }
      config = result.config;
      daemon.setConfig(config);
      arm();
      store.recordEvent({ at: clock.now(), kind: "config-reloaded", message: `reloaded ${configFile}` });
      log.info({ file: configFile }, "config reloaded");
      return true;
    },
    async stop() {
      void task?.destroy();
      await daemon.stop();
      await http?.close();
      await driver.close();
      store.close();
    },
  };
}
