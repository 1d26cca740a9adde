const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "15m", "24h", "2d" → milliseconds; undefined when the text is not such a duration. */
export function durationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  const unit = m?.[2];
  if (!m || unit === undefined) return undefined;
  return Number(m[1]) * (UNITS[unit] ?? 1);
}
