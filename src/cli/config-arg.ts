import type { ResolvedConfig } from "../config/index.js";
import { CliError, EX_CONFIG } from "./exit-codes.js";

export const DEFAULT_CONFIG = process.env.BALLAST_CONFIG ?? "/etc/ballast/ballast.yaml";

/**
 * Loads and validates the config, or fails with every problem listed and exit code 78. The config
 * modules (yaml, zod schemas) are imported on first use: commands that need no config start without them.
 */
export async function loadConfigOrFail(file: string): Promise<ResolvedConfig> {
  const { checkConfig, formatIssue } = await import("../config/index.js");
  const result = checkConfig(file);
  if (!result.ok) throw new CliError(result.errors.map(formatIssue).join("\n"), EX_CONFIG);
  return result.config;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "15m", "24h", "2d" → milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  const unit = m?.[2];
  if (!m || unit === undefined) throw new CliError(`${what}: got ${JSON.stringify(text)}, expected a duration like 90s, 15m, 24h or 2d`, 64);
  return Number(m[1]) * (UNITS[unit] ?? 1);
}
