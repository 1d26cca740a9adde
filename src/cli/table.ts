import { printable } from "../util/printable.js";

/** Plain aligned text table for humans; `--json` is for scripts. Cells are made printable. */
export function table(headers: readonly string[], rows: readonly (readonly (string | number | null | undefined)[])[]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : printable(String(c)))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...cells.slice(1).map(line)].join("\n");
}

export const pct = (f: number): string => `${(f * 100).toFixed(0)}%`;
export const iso = (ms: number | null | undefined): string => (ms === null || ms === undefined ? "-" : new Date(ms).toISOString().replace(".000Z", "Z"));
export const secs = (ms: number | null | undefined): string => (ms === null || ms === undefined ? "-" : `${(ms / 1000).toFixed(1)}s`);
