import { existsSync } from "node:fs";
import type { ResolvedConfig } from "../config/index.js";
import { vmId } from "../model/index.js";
import { dbPath } from "../daemon/service.js";
import { openHistory } from "../store/index.js";
import { CliError, EX_UNAVAILABLE } from "./exit-codes.js";
import { iso, secs, table } from "./table.js";
import { printable } from "../util/printable.js";

export interface HistoryOptions {
  readonly vm?: string;
  readonly limit: number;
  readonly json?: boolean;
}

/** Reads the daemon's SQLite history read-only (safe while the daemon runs). */
export function historyCommand(config: ResolvedConfig, opts: HistoryOptions): string {
  const file = dbPath(config);
  if (!existsSync(file)) throw new CliError(`${file}: no history yet (has the daemon run with this config?)`, EX_UNAVAILABLE);
  const store = openHistory(file, { readonly: true });
  try {
    if (opts.vm !== undefined) {
      const migrations = store
        .migrationsForVm(vmId(opts.vm), opts.limit)
        .flatMap((m) => store.migrationWithEvents(m.id) ?? []);
      if (opts.json) return JSON.stringify({ vm: opts.vm, migrations }, null, 2);
      if (migrations.length === 0) return `No migrations of ${printable(opts.vm)}.`;
      return migrations
        .map((m) => {
          const head = printable(`#${m.id} ${iso(m.startedAt)} ${m.vm} ${m.from} → ${m.to} ${m.kind} [${m.flags.join(",")}] ${m.status}` +
            ` in ${secs(m.actualMs)} (predicted ${secs(m.predictedMs)}), downtime ${m.downtimeMs ?? "-"} ms, ${m.dataMiB ?? "-"} MiB, policy ${m.policy}: ${m.reason}`) +
            (m.error ? `\n  error: ${printable(m.error)}` : "");
          const events = m.events.filter((e) => e.kind !== "stats").map((e) => printable(`  ${iso(e.at)} ${e.kind} ${JSON.stringify(e.data)}`));
          return [head, ...events].join("\n");
        })
        .join("\n\n");
    }
    const migrations = store.recentMigrations(opts.limit);
    const events = store.recentEvents(opts.limit);
    if (opts.json) return JSON.stringify({ migrations, events }, null, 2);
    return [
      migrations.length === 0
        ? "No migrations yet."
        : "Migrations (newest first):\n" +
          table(
            ["id", "started", "vm", "from", "to", "kind", "policy", "status", "time", "predicted", "downtime", "error"],
            migrations.map((m) => [m.id, iso(m.startedAt), m.vm, m.from, m.to, m.kind, m.policy, m.status, secs(m.actualMs), secs(m.predictedMs), m.downtimeMs === null ? null : `${m.downtimeMs} ms`, m.error]),
          ),
      events.length === 0 ? "" : "\nEvents (newest first):\n" + table(["at", "kind", "host", "message"], events.map((e) => [iso(e.at), e.kind, e.host, e.message])),
    ].join("\n");
  } finally {
    store.close();
  }
}
