import type { ResolvedConfig } from "../config/index.js";
import { CliError, EX_CONFIG } from "./exit-codes.js";
import { durationMs } from "../util/duration.js";

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

/** "90s", "15m", "24h", "2d" → milliseconds. */
export function parseDuration(text: string, what: string): number {
  const ms = durationMs(text);
  if (ms === undefined) throw new CliError(`${what}: got ${JSON.stringify(text)}, expected a duration like 90s, 15m, 24h or 2d`, 64);
  return ms;
}
