import type { ResolvedConfig } from "../config/index.js";
import type { DaemonStatus } from "../daemon/status.js";
import { CliError, EX_UNAVAILABLE } from "./exit-codes.js";
import { pct, table } from "./table.js";
import { printable } from "../util/printable.js";

/** Asks the running daemon for /api/status. */
export async function statusCommand(config: ResolvedConfig, json: boolean): Promise<string> {
  const host = config.http.listen.includes(":") ? `[${config.http.listen}]` : config.http.listen;
  const url = `http://${host}:${config.http.port}/api/status`;
  let status: DaemonStatus;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    status = (await res.json()) as DaemonStatus;
  } catch (e) {
    throw new CliError(`no daemon answered at ${url}: ${(e as Error).message}`, EX_UNAVAILABLE);
  }
  if (json) return JSON.stringify(status, null, 2);
  const out: string[] = [];
  const lr = status.lastRound;
  out.push(`ballast up since ${status.startedAt}; ${status.roundsRun} round(s); last: ${lr ? `${lr.trigger} ${new Date(lr.startedAt).toISOString()} ${lr.outcome}, ${lr.moves} planned, ${lr.blocked} blocked` : "none yet"}`);
  if (status.inFlight) {
    const f = status.inFlight;
    out.push(printable(`In flight: ${f.move.vm} ${f.move.from} → ${f.move.to} (${f.move.kind}, ${f.move.policy})`) + (f.stats ? `, pass ${f.stats.memoryIteration}, ${f.stats.dataRemainingMiB.toFixed(0)} MiB left` : ""));
  }
  for (const c of status.cells) {
    out.push(`\nCell ${printable(c.cell)}:`);
    const hosts = c.hosts as { name: string; cpuLoad: number; memoryUsed: number; vms: number; maintenance: boolean; reachable: boolean }[];
    out.push(table(["host", "cpu", "mem", "vms", "state"], hosts.map((h) => [h.name, pct(h.cpuLoad), pct(h.memoryUsed), h.vms, h.maintenance ? "maintenance" : h.reachable ? "ok" : "unreachable"])));
  }
  for (const d of status.drains) {
    out.push(`\nDrain ${printable(d.host + (d.reason ? ` (${d.reason})` : ""))}: ${d.vmsLeft} VM(s) left, ${d.blocked.length} blocked`);
    for (const b of d.blocked) out.push(printable(`  ${b.vm}: ${b.reason}`));
  }
  return out.join("\n");
}
