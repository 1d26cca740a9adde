/** One problem found in a configuration file, located precisely enough to fix it without guessing. */
export interface ConfigIssue {
  /** The file as the operator named it. */
  readonly file: string;
  /** 1-based; 0 when the problem is the file itself (missing, unreadable, too large). */
  readonly line: number;
  /** 1-based; 0 together with line 0. */
  readonly column: number;
  /** Dotted field path (`policies.hotspot-relief.cpuHigh`, `libvirt.hosts[1].uri`); "" for the whole file. */
  readonly path: string;
  /** The offending value, already shortened and escaped so it is safe to print. */
  readonly value?: string;
  /** What was expected, in plain English ("expected a number ≤ 1"). */
  readonly message: string;
}

/** `config/x.yaml:12:5: policies.hotspot-relief.cpuHigh: got 1.5, expected a number ≤ 1` */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : issue.file;
  const field = issue.path === "" ? "" : `${issue.path}: `;
  const got = issue.value === undefined ? "" : `got ${issue.value}, `;
  return `${where}: ${field}${got}${issue.message}`;
}

/** Thrown by `loadConfig`; its message lists every issue, one per line, and never needs a stack trace. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const n = issues.length;
    const head = issues[0]?.file ?? "configuration";
    super(`${head}: ${n} configuration error${n === 1 ? "" : "s"}\n${issues.map(formatIssue).join("\n")}`);
    this.issues = issues;
  }
}

const MAX_SHOWN = 60;

/** Characters that could move the cursor, hide text or reorder it on a terminal. */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

/** Escapes anything that is not plainly printable; the result is plain ASCII-or-visible text. */
export function escapeText(s: string): string {
  return s.replace(UNSAFE, (c) => {
    switch (c) {
      case "\n":
        return "\\n";
      case "\r":
        return "\\r";
      case "\t":
        return "\\t";
      default:
        return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
    }
  });
}

function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  // Do not split a surrogate pair.
  let cut = max - 1;
  const code = s.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
  return `${s.slice(0, cut)}…`;
}

/** A short, JSON-ish, terminal-safe rendering of any value: `1.5`, `"abc"`, `[1,2,…`, `{"a":1…`. */
export function showValue(value: unknown, max = MAX_SHOWN): string {
  let text: string;
  if (value === undefined) text = "nothing";
  else if (typeof value === "number") text = Number.isNaN(value) ? "NaN" : String(value);
  else if (typeof value === "bigint") text = `${value}`;
  else if (typeof value === "string") text = JSON.stringify(truncate(value, max));
  else {
    try {
      // JSON.stringify gives undefined for functions and symbols, whatever its declared type says.
      const json: string | undefined = JSON.stringify(value);
      text = json ?? typeof value;
    } catch {
      text = Array.isArray(value) ? "a list" : "a mapping";
    }
    text = truncate(text, max);
  }
  return escapeText(text);
}

/** Shortened, escaped and quoted in single quotes: for keys and names inside messages. */
export function quoteName(s: string): string {
  return `'${escapeText(truncate(s, 40))}'`;
}

/** `a.b[1]["x.y"]` */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else {
      const s = typeof seg === "symbol" ? (seg.description ?? "symbol") : seg;
      if (/^[A-Za-z0-9_-]+$/.test(s)) out += out === "" ? s : `.${s}`;
      else out += `[${JSON.stringify(escapeText(truncate(s, 40)))}]`;
    }
  }
  return out;
}
