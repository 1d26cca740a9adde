import type { Config } from "../config/schema.js";
import { PreflightUsageError, runPreflight, type PreflightReport } from "../preflight/preflight.js";
import { CliError, EX_USAGE } from "./exit-codes.js";
import { table } from "./table.js";

export function formatPreflight(r: PreflightReport): string {
  const rows = r.checks.map((c) => [c.check, c.status.toUpperCase(), c.detail, c.fix ?? ""]);
  const failed = r.checks.filter((c) => c.status === "fail").length;
  const verdict = r.ok ? `${r.src} → ${r.dst}: all prerequisites met` : `${r.src} → ${r.dst}: ${failed} check(s) failed`;
  return `${table(["check", "result", "detail", "fix"], rows)}\n\n${verdict}`;
}

/** The report as text (or JSON) and whether every check passed (warnings allowed). */
export async function preflightCommand(config: Config, src: string, dst: string, json: boolean): Promise<{ text: string; ok: boolean }> {
  let report: PreflightReport;
  try {
    report = await runPreflight(config, src, dst);
  } catch (e) {
    if (e instanceof PreflightUsageError) throw new CliError(`preflight: ${e.message}`, EX_USAGE);
    throw e;
  }
  return { text: json ? JSON.stringify(report, null, 2) : formatPreflight(report), ok: report.ok };
}
