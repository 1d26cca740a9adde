/**
 * A tiny host-name glob: `*` matches any run of characters (also none), `?` exactly one; every other
 * character matches itself. Tag values are operator input, so no regular expression is built from them
 * (nothing to inject, no catastrophic backtracking): the matcher is the classic linear-space two-pointer
 * wildcard walk, O(pattern × name) at worst.
 */
export function globMatch(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let star = -1;
  let resume = 0;
  while (n < name.length) {
    const c = pattern[p];
    if (c === "?" || (c !== undefined && c !== "*" && c === name[n])) {
      p++;
      n++;
    } else if (c === "*") {
      star = p++;
      resume = n;
    } else if (star >= 0) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}
