#!/usr/bin/env node
import { Command, CommanderError, Option } from "commander";
import { DEFAULT_CONFIG, loadConfigOrFail, parseDuration } from "./config-arg.js";
import { CliError, EX_CONFIG, EX_FAILURE, EX_OK, EX_SOFTWARE, EX_UNAVAILABLE, EX_USAGE } from "./exit-codes.js";
import { pct, table } from "./table.js";
import { packageVersion } from "../util/version.js";

// Only commander and the small modules above load at start-up. Each command's action imports what it
// needs (`await import(…)`): `ballast plan --snapshot FILE` loads the planner, the policies and the
// config schemas (for their defaults) but no YAML parser, metrics, logger, SQLite, HTTP server or
// daemon; `--help` and usage errors load nothing else. test/cli/cli.test.ts checks both.

const configOption = (): Option => new Option("-c, --config <file>", "configuration file").default(DEFAULT_CONFIG);
const print = (text: string): void => void process.stdout.write(text.endsWith("\n") ? text : text + "\n");

const program = new Command("ballast")
  .description("Policy-driven VM rebalancing daemon for KVM/libvirt and XenServer/XCP-ng")
  .version(packageVersion())
  .showHelpAfterError()
  .exitOverride();

program
  .command("run")
  .description("run the daemon (foreground; systemd runs it like this)")
  .addOption(configOption())
  .action(async (o: { config: string }) => {
    const config = await loadConfigOrFail(o.config);
    const [{ createLogger }, { startDaemon }, { EX_TEMPFAIL }] = await Promise.all([import("../daemon/logger.js"), import("../daemon/service.js"), import("../daemon/lock.js")]);
    const log = createLogger(config.logLevel);
    // Signals are taken from the very start: one that arrives while the daemon is still starting is
    // acted on once it is up, instead of killing the process with the default action.
    let onSignal: (signal: string) => void = (signal) => pending.push(signal);
    const pending: string[] = [];
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => onSignal(signal));
    let running;
    try {
      running = await startDaemon({ configFile: o.config, config, log });
    } catch (e) {
      // Whatever start-up left open (HTTP listener, driver connections) must not keep a failed daemon alive.
      setTimeout(() => process.exit(), 2000).unref();
      // Another instance on this state directory: EX_TEMPFAIL (75), temporary by nature, so systemd's
      // Restart=on-failure retries; the message names the lock file and the other PID.
      if (e instanceof Error && e.name === "LockError") throw new CliError(e.message, EX_TEMPFAIL);
      throw e;
    }
    const daemon = running;
    log.info({ config: o.config, stateDir: config.stateDir, maintenanceDir: config.maintenanceDir }, "ballast running");
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) {
          // A second SIGTERM/SIGINT: do not wait out shutdown.stopTimeoutSec, abort the migration now.
          log.warn({ signal }, "second stop signal: aborting the migration in flight");
          void daemon.abortNow();
          return;
        }
        stopping = true;
        log.info({ signal }, "stopping");
        daemon.stop().then(
          () => {
            log.info("stopped");
            resolve();
          },
          (e: unknown) => {
            log.error({ err: e }, "error while stopping");
            process.exitCode = EX_SOFTWARE;
            resolve();
          },
        );
      };
      onSignal = (signal) => {
        if (signal !== "SIGHUP") return stop(signal);
        log.info({ signal }, "reloading configuration");
        daemon.reload();
      };
      for (const signal of pending.splice(0)) onSignal(signal);
    });
  });

program
  .command("plan")
  .description("show the moves the planner would make now (or on a snapshot file)")
  .option("-s, --snapshot <file>", "plan on a snapshot (DESIGN.md format) instead of the live cluster")
  .option("-c, --config <file>", "configuration (policy parameters; the live cluster when no snapshot is given)")
  .option("--json", "machine-readable output")
  .option("--explain", "show every candidate and why it was taken or refused")
  .action(async (o: { snapshot?: string; config?: string; json?: boolean; explain?: boolean }) => {
    const { planCommand } = await import("./plan-command.js");
    print(await planCommand({ ...o, config: o.config ?? (o.snapshot === undefined ? DEFAULT_CONFIG : undefined) }));
  });

program
  .command("snapshot")
  .description("sample the live cluster (from the running daemon if there is one)")
  .addOption(configOption())
  .option("--json", "the snapshot in DESIGN.md's format (input for plan --snapshot)")
  .action(async (o: { config: string; json?: boolean }) => {
    const config = await loadConfigOrFail(o.config);
    const { liveSnapshot } = await import("./snapshot-source.js");
    const { snapshot, source } = await liveSnapshot(config);
    if (o.json) return print(JSON.stringify(snapshot, null, 2));
    print(`Sampled from ${source} at ${snapshot.takenAt}: ${snapshot.hosts.length} hosts, ${snapshot.vms.length} VMs`);
    const vms = new Map<string, number>();
    for (const v of snapshot.vms) vms.set(v.host, (vms.get(v.host) ?? 0) + 1);
    print(table(["host", "cell", "cpu", "mem", "vms", "maintenance"], snapshot.hosts.map((h) => [h.name, h.cell, pct(h.cpuLoad), pct(h.memoryUsedMiB / h.memoryMiB), vms.get(h.name) ?? 0, h.maintenance ? "yes" : ""])));
  });

program
  .command("status")
  .description("what the running daemon sees and does")
  .addOption(configOption())
  .option("--json", "machine-readable output")
  .action(async (o: { config: string; json?: boolean }) => {
    const config = await loadConfigOrFail(o.config);
    const { statusCommand } = await import("./status-command.js");
    print(await statusCommand(config, o.json === true));
  });

program
  .command("history")
  .description("past migrations and events from the SQLite history")
  .addOption(configOption())
  .option("--vm <id>", "one VM's migrations with every guard decision")
  .option("-n, --limit <n>", "rows to show", (v) => Number.parseInt(v, 10), 20)
  .option("--json", "machine-readable output")
  .action(async (o: { config: string; vm?: string; limit: number; json?: boolean }) => {
    if (!Number.isInteger(o.limit) || o.limit <= 0) throw new CliError(`--limit: expected a positive integer`, EX_USAGE);
    const config = await loadConfigOrFail(o.config);
    const { historyCommand } = await import("./history-command.js");
    print(historyCommand(config, o));
  });

program
  .command("drain")
  .description("put a host in maintenance: the daemon evacuates it one VM at a time")
  .argument("<host>", "host name")
  .addOption(configOption())
  .option("-r, --reason <text>", "why (kept in the flag file, shown in status)", "")
  .action(async (host: string, o: { config: string; reason: string }) => {
    const config = await loadConfigOrFail(o.config);
    const { setFlag } = await import("../daemon/flags.js");
    await setFlag(config.maintenanceDir, host, o.reason).catch((e: unknown) => {
      throw new CliError(`drain ${JSON.stringify(host)}: ${(e as Error).message}`, EX_USAGE);
    });
    print(`${host}: maintenance flag set in ${config.maintenanceDir}; the daemon drains it within seconds`);
  });

program
  .command("undrain")
  .description("take a host out of maintenance")
  .argument("<host>", "host name")
  .addOption(configOption())
  .action(async (host: string, o: { config: string }) => {
    const config = await loadConfigOrFail(o.config);
    const { clearFlag } = await import("../daemon/flags.js");
    const removed = await clearFlag(config.maintenanceDir, host).catch((e: unknown) => {
      throw new CliError(`undrain ${JSON.stringify(host)}: ${(e as Error).message}`, EX_USAGE);
    });
    print(removed ? `${host}: maintenance flag removed` : `${host}: was not in maintenance`);
  });

program
  .command("preflight")
  .description("check the KVM live-migration prerequisites between two libvirt hosts; exit 1 when one fails")
  .argument("<src>", "source host (a libvirt.hosts name)")
  .argument("<dst>", "destination host")
  .addOption(configOption())
  .option("--json", "machine-readable output")
  .action(async (src: string, dst: string, o: { config: string; json?: boolean }) => {
    const config = await loadConfigOrFail(o.config);
    const { preflightCommand } = await import("./preflight-command.js");
    const { text, ok } = await preflightCommand(config, src, dst, o.json === true);
    print(text);
    if (!ok) process.exitCode = EX_FAILURE;
  });

program
  .command("check-config")
  .description("validate a configuration file; exit 78 when it has errors")
  .addOption(configOption())
  .action(async (o: { config: string }) => {
    const { checkConfig, formatIssue } = await import("../config/index.js");
    const result = checkConfig(o.config);
    if (result.ok) return print(`${o.config}: ok`);
    process.stderr.write(result.errors.map(formatIssue).join("\n") + "\n");
    process.stderr.write(`${o.config}: ${result.errors.length} error(s)\n`);
    process.exitCode = EX_CONFIG;
  });

program
  .command("simulate")
  .description("fast-forward the daemon over the simulated cluster and report what it did")
  .addOption(configOption())
  .option("--scenario <file>", "a config with a scenario: timeline (drains, bursts) to run instead of --config")
  .option("-d, --duration <duration>", "simulated time, e.g. 6h or 2d", "24h")
  .option("--round-interval <duration>", "time between rounds", "60s")
  .option("--json", "machine-readable output")
  .action(async (o: { config: string; scenario?: string; duration: string; roundInterval: string; json?: boolean }) => {
    const durationMs = parseDuration(o.duration, "--duration");
    const roundIntervalMs = parseDuration(o.roundInterval, "--round-interval");
    const config = await loadConfigOrFail(o.scenario ?? o.config);
    if (o.scenario !== undefined && !config.scenario) throw new CliError(`${o.scenario}: expected a scenario: section (see config/scenarios/)`, EX_CONFIG);
    const { simulate } = await import("../daemon/simulate.js");
    const report = await simulate(config, durationMs, roundIntervalMs);
    if (o.json) return print(JSON.stringify(report, null, 2));
    print(
      table(
        ["metric", "value"],
        [
          ...(report.scenario ? [["scenario", report.scenario.name]] : []),
          ["simulated hours", report.durationHours],
          ["rounds", report.rounds],
          ["migrations", `${report.migrations.total} ${JSON.stringify(report.migrations.byOutcome)}`],
          ["GiB copied", report.gibCopied],
          ["hotspot host-minutes", report.hotspotHostMinutes],
          ["cpu imbalance mean / max", `${report.imbalance.meanCpu} / ${report.imbalance.maxCpu}`],
          ["memory imbalance mean / max", `${report.imbalance.meanMemory} / ${report.imbalance.maxMemory}`],
          ["ping-pongs (back within 6 h)", report.pingPongs],
          ["blocked (by reason)", JSON.stringify(report.blockedByReason)],
          ["convergence failures", report.convergenceFailures],
        ],
      ),
    );
  });

async function main(argv: readonly string[]): Promise<number> {
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : EX_OK;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EX_OK : EX_USAGE;
    if (e instanceof CliError) {
      process.stderr.write(`ballast: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof Error && e.name === "ConfigError") {
      process.stderr.write(`ballast: ${e.message}\n`);
      return EX_CONFIG;
    }
    if (e instanceof Error && e.name === "DriverUnavailableError" && e instanceof (await import("../drivers/index.js")).DriverUnavailableError) {
      process.stderr.write(`ballast: ${e.message}\n`);
      return EX_UNAVAILABLE;
    }
    process.stderr.write(`ballast: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return e instanceof Error ? EX_SOFTWARE : EX_FAILURE;
  }
}

process.exitCode = await main(process.argv);
