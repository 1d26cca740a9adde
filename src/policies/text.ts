/** Small pure helpers shared by policies, constraints and the planner. */

/** Byte-order string comparison (locale-independent, so plans are identical on every machine). */
export const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A fraction as a percentage with no decimals, e.g. 0.853 → "85%". */
export const pct = (x: number): string => `${Math.round(x * 100)}%`;

/**
 * Operator-supplied free text (a maintenance flag file may hold anything): control characters
 * removed, whitespace collapsed, length capped.
 */
export function cleanText(s: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const flat = s.slice(0, max * 4).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ").replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
