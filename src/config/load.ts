import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from "yaml";
import type { z } from "zod";
import { configSchema, guardsSchema, migrationSchema, thresholdsSchema, type Config } from "./schema.js";
import { policyConfigSchema } from "../policies/registry.js";
import { ConfigError, formatPath, quoteName, showValue, type ConfigIssue } from "./errors.js";

/** A config file larger than this is refused before parsing. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** A validated configuration with derived defaults filled in and relative paths made absolute. */
export type ResolvedConfig = Config & {
  readonly maintenanceDir: string;
  /** Absolute path of the file it came from (or the name given to `checkConfigText`). */
  readonly sourceFile: string;
};

export type CheckResult = { readonly ok: true; readonly config: ResolvedConfig } | { readonly ok: false; readonly errors: ConfigIssue[] };

/** Reads, parses and validates a config file; throws `ConfigError` listing every problem. */
export function loadConfig(file: string): ResolvedConfig {
  const r = checkConfig(file);
  if (!r.ok) throw new ConfigError(r.errors);
  return r.config;
}

/** Like `loadConfig`, but returns every problem instead of throwing (`ballast check-config`, SIGHUP reload). */
export function checkConfig(file: string): CheckResult {
  const read = readConfigFile(file);
  if (!read.ok) return read;
  return checkConfigText(read.text, file, dirname(resolve(file)));
}

/**
 * Validates YAML text as if it were the file `file`; relative paths resolve against `baseDir`
 * (default: the directory of `file`).
 */
export function checkConfigText(text: string, file: string, baseDir: string = dirname(resolve(file))): CheckResult {
  const lineCounter = new LineCounter();
  const issue = (offset: number, path: string, message: string, value?: string): ConfigIssue => {
    const { line, col } = lineCounter.linePos(offset);
    return value === undefined ? { file, line, column: col, path, message } : { file, line, column: col, path, value, message };
  };

  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  // `<<: *anchor` merge keys are allowed so host lists can share settings.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false, strict: true, merge: true });

  const yamlIssues: ConfigIssue[] = [...doc.errors, ...doc.warnings].map((e) =>
    issue(
      e.pos[0],
      "",
      e.code === "MULTIPLE_DOCS"
        ? "YAML syntax error: expected a single YAML document, found a second one (remove the '---' line)"
        : // The parser's own stack overflow on pathological nesting, caught by yaml and reported as a syntax error.
          /Maximum call stack/.test(e.message)
          ? "YAML syntax error: nested too deeply (expected a configuration, not hundreds of levels of nesting)"
          : `YAML ${e.name === "YAMLWarning" ? "problem" : "syntax error"}: ${firstLine(e.message)}`,
    ),
  );
  if (yamlIssues.length > 0) return fail(yamlIssues);

  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null && !root.source)) {
    return fail([{ file, line: 1, column: 1, path: "", message: "the file is empty: expected a mapping of settings (see config/ballast.example.yaml)" }]);
  }
  if (!isMap(root)) {
    return fail([issue(root.range?.[0] ?? 0, "", `expected a mapping of settings at the top level, got ${describeNode(root)}`)]);
  }

  const duplicates = findDuplicateKeys(root, [], lineCounter);
  if (duplicates.length > 0) return fail(duplicates.map((d) => issue(d.offset, d.path, d.message)));

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return fail([issue(0, "", `cannot read the document: ${firstLine(e instanceof Error ? e.message : String(e))}`)]);
  }

  const parsed = configSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) {
    const issues = parsed.error.issues.flatMap((zi) => explain(zi, data, doc, issue));
    return fail(issues);
  }
  return { ok: true, config: resolveConfig(parsed.data, baseDir, isAbsolute(file) ? file : resolve(file)) };
}

/** Everything the planner needs, all defaults: for `ballast plan --snapshot FILE` without `--config`. */
export function planningDefaults(): Pick<Config, "thresholds" | "policies" | "migration" | "guards"> {
  return {
    thresholds: thresholdsSchema.parse({}),
    policies: policyConfigSchema.parse({}),
    migration: migrationSchema.parse({}),
    guards: guardsSchema.parse({}),
  };
}

/** Derived defaults: maintenanceDir under stateDir; relative paths against the config file's directory. */
export function resolveConfig(config: Config, baseDir: string, sourceFile: string): ResolvedConfig {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const stateDir = abs(config.stateDir);
  return {
    ...config,
    stateDir,
    maintenanceDir: config.maintenanceDir === undefined ? join(stateDir, "maintenance") : abs(config.maintenanceDir),
    sourceFile,
    http: { ...config.http, admin: { ...config.http.admin, ...(config.http.admin.tokenFile !== undefined && { tokenFile: abs(config.http.admin.tokenFile) }) } },
    libvirt: config.libvirt && {
      ...config.libvirt,
      hosts: config.libvirt.hosts.map((h) => (h.ssh ? { ...h, ssh: { ...h.ssh, privateKeyFile: abs(h.ssh.privateKeyFile) } } : h)),
    },
    xenserver: config.xenserver && {
      ...config.xenserver,
      pools: config.xenserver.pools.map((p) => ({ ...p, credentialsFile: abs(p.credentialsFile) })),
    },
  };
}

function fail(errors: ConfigIssue[]): CheckResult {
  errors.sort((a, b) => a.line - b.line || a.column - b.column || a.path.localeCompare(b.path));
  return { ok: false, errors };
}

function firstLine(s: string): string {
  return (s.split("\n")[0] ?? s).trim();
}

// ---------------------------------------------------------------------------------------------
// Reading the file

type ReadResult = { ok: true; text: string } | { ok: false; errors: ConfigIssue[] };

function readConfigFile(file: string): ReadResult {
  const whole = (message: string): ReadResult => ({ ok: false, errors: [{ file, line: 0, column: 0, path: "", message }] });
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO given as the config file is refused below instead of blocking for a writer.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    return whole(describeFsError(e));
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) return whole("is a directory, expected a YAML file");
    if (!st.isFile()) return whole("is not a regular file, expected a YAML file");
    if (st.size > MAX_CONFIG_BYTES) return whole(`is ${st.size} bytes, expected at most 1 MiB of YAML`);
    // Read one byte past the limit so a file that grows under us is still refused.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n === buf.length) return whole("is larger than 1 MiB, expected at most 1 MiB of YAML");
    }
    const bytes = buf.subarray(0, n);
    try {
      return { ok: true, text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
    } catch {
      const lossy = new TextDecoder("utf-8").decode(bytes);
      const at = lossy.indexOf("\ufffd");
      const before = lossy.slice(0, Math.max(0, at));
      const line = before.split("\n").length;
      const column = at - before.lastIndexOf("\n");
      return { ok: false, errors: [{ file, line, column, path: "", message: "expected UTF-8 text, found a byte sequence that is not UTF-8" }] };
    }
  } catch (e) {
    return whole(describeFsError(e));
  } finally {
    closeSync(fd);
  }
}

function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENOENT":
      return "cannot read the file: it does not exist";
    case "EACCES":
    case "EPERM":
      return "cannot read the file: permission denied";
    case "EISDIR":
      return "is a directory, expected a YAML file";
    case "ELOOP":
      return "cannot read the file: too many levels of symbolic links";
    default:
      return `cannot read the file: ${code ?? (e instanceof Error ? firstLine(e.message) : "unknown error")}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Locating nodes

function keyText(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  if (isCollection(key)) return key.toString();
  return String(key);
}

function describeNode(node: unknown): string {
  if (isSeq(node)) return "a list";
  if (isMap(node)) return "a mapping";
  if (isScalar(node)) return showValue(node.value);
  return "something else";
}

function findDuplicateKeys(node: unknown, path: PropertyKey[], lc: LineCounter): { offset: number; path: string; message: string }[] {
  const out: { offset: number; path: string; message: string }[] = [];
  if (isMap(node)) {
    const seen = new Map<string, number>();
    for (const pair of node.items) {
      const k = keyText(pair.key);
      const offset = (pair.key as Node | null)?.range?.[0] ?? 0;
      const first = seen.get(k);
      if (first !== undefined) {
        out.push({
          offset,
          path: formatPath([...path, k]),
          message: `duplicate key ${quoteName(k)} (first defined on line ${lc.linePos(first).line})`,
        });
      } else {
        seen.set(k, offset);
      }
      out.push(...findDuplicateKeys(pair.value, [...path, k], lc));
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => out.push(...findDuplicateKeys(item, [...path, i], lc)));
  }
  return out;
}

interface Located {
  /** Every segment of the path exists in the document. */
  readonly found: boolean;
  /** Where to point: the node itself, or (if missing) its deepest existing ancestor. */
  readonly offset: number;
  /** Offset of the key of the last segment found, when reached through a mapping. */
  readonly keyOffset?: number;
}

/**
 * Follows `path` through the YAML nodes. Scalars point at the value; block collections at the
 * key that introduces them; missing fields at the key (or list item) of their parent mapping.
 */
function locate(doc: Document, path: readonly PropertyKey[]): Located {
  let node: unknown = doc.contents;
  let offset = (doc.contents)?.range?.[0] ?? 0;
  let keyOffset: number | undefined;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(seg));
      if (!pair) return { found: false, offset, ...(keyOffset === undefined ? {} : { keyOffset }) };
      keyOffset = (pair.key as Node | null)?.range?.[0] ?? offset;
      const value = pair.value as Node | null;
      offset = pointAt(value, keyOffset);
      node = value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg] as Node | undefined;
      if (item === undefined) return { found: false, offset };
      keyOffset = undefined;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      return { found: false, offset };
    }
  }
  return { found: true, offset, ...(keyOffset === undefined ? {} : { keyOffset }) };
}

function pointAt(value: Node | null, keyOffset: number): number {
  if (value === null || value.range === undefined || value.range === null) return keyOffset;
  if (isScalar(value) && value.value === null && !value.source) return keyOffset; // `key:` with nothing after it
  if (isCollection(value) && !value.flow) return keyOffset;
  return value.range[0];
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

// ---------------------------------------------------------------------------------------------
// Turning zod issues into plain English

type MakeIssue = (offset: number, path: string, message: string, value?: string) => ConfigIssue;
type ZodIssue = z.core.$ZodIssue;

function explain(zi: ZodIssue, data: unknown, doc: Document, make: MakeIssue): ConfigIssue[] {
  const path = zi.path;
  if (zi.code === "unrecognized_keys") {
    const known = knownKeys(path);
    return zi.keys.map((k) => {
      const at = locate(doc, [...path, k]);
      return make(at.keyOffset ?? at.offset, formatPath([...path, k]), `unknown key ${quoteName(k)}${suggest(k, known)}`);
    });
  }
  const at = locate(doc, path);
  const value = valueAt(data, path);
  const dotted = formatPath(path);
  if (zi.code === "invalid_key") {
    const inner = zi.issues[0];
    const why = inner ? expectation(inner, []) : "expected a valid key";
    return [make(at.keyOffset ?? at.offset, dotted, `invalid key: ${why}`, showValue(String(path[path.length - 1] ?? "")))];
  }
  if ((!at.found || value === undefined) && zi.code === "custom" && zi.input !== undefined) {
    // A cross-field check failed on a value the file does not set: it came from a default.
    return [make(at.keyOffset ?? at.offset, dotted, expectation(zi, path), `${describeValue(zi.input)} (the default)`)];
  }
  if (!at.found && value !== undefined) {
    // The value exists but not literally at this place in the file (it came in through a `<<` merge).
    return [make(at.keyOffset ?? at.offset, dotted, `${expectation(zi, path)} (value merged in with '<<')`, describeValue(value))];
  }
  if (!at.found || value === undefined) {
    const what = expectation(zi, path);
    const leaf = path[path.length - 1];
    const name = leaf === undefined ? "" : typeof leaf === "number" ? `item ${leaf} ` : `${quoteName(String(leaf))} `;
    if (path.length === 0) return [make(at.offset, dotted, what)];
    return [make(at.keyOffset ?? at.offset, dotted, `required field ${name}is missing, ${what}`)];
  }
  // A custom check on a whole mapping (e.g. "one of sim, libvirt or xenserver") names no single value.
  const shown = zi.code === "custom" && typeof value === "object" && value !== null ? undefined : describeValue(value);
  return [make(at.offset, dotted, expectation(zi, path), shown)];
}

function describeValue(value: unknown): string {
  if (Array.isArray(value)) {
    const s = showValue(value);
    return s.endsWith("…") ? `a list of ${value.length} items` : s;
  }
  if (typeof value === "object" && value !== null) return "a mapping";
  return showValue(value);
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  bigint: "an integer",
  boolean: "true or false",
  array: "a list",
  tuple: "a list",
  object: "a mapping",
  record: "a mapping",
  map: "a mapping",
  null: "null",
  date: "a date",
};

function sizeName(origin: string, n: number | bigint): string {
  if (origin === "array" || origin === "set") return `${n} item${n === 1 ? "" : "s"}`;
  if (origin === "string") return `${n} character${n === 1 ? "" : "s"}`;
  return String(n);
}

/** "expected …" for one zod issue. */
function expectation(zi: ZodIssue, path: readonly PropertyKey[]): string {
  const numberName = (origin: string): string => (origin !== "number" || isIntAt(path) ? "an integer" : "a number");
  switch (zi.code) {
    case "invalid_type":
      return `expected ${zi.expected === "number" ? numberName("number") : (TYPE_NAMES[zi.expected] ?? zi.expected)}`;
    case "too_small": {
      const { origin, minimum, inclusive } = zi;
      if (origin === "number" || origin === "int" || origin === "bigint") {
        return `expected ${numberName(origin)} ${inclusive ? "≥" : ">"} ${minimum}`;
      }
      if (origin === "string" && Number(minimum) === 1) return "expected a non-empty string";
      if ((origin === "array" || origin === "set") && Number(minimum) === 1) return "expected a non-empty list";
      return `expected at least ${sizeName(origin, minimum)}`;
    }
    case "too_big": {
      const { origin, maximum, inclusive } = zi;
      if (origin === "number" || origin === "int" || origin === "bigint") {
        return `expected ${numberName(origin)} ${inclusive ? "≤" : "<"} ${maximum}`;
      }
      return `expected at most ${sizeName(origin, maximum)}`;
    }
    case "invalid_value":
      return zi.values.length === 1
        ? `expected ${String(zi.values[0])}`
        : `expected one of ${zi.values.map((v) => String(v)).join(", ")}`;
    case "invalid_format":
      if (zi.message.startsWith("expected ")) return zi.message;
      if (zi.format === "url") return "expected a URL";
      if (zi.format === "regex" && "pattern" in zi) return `expected text matching ${String(zi.pattern)}`;
      return `expected a valid ${zi.format}`;
    case "not_multiple_of":
      return `expected a multiple of ${zi.divisor}`;
    case "invalid_union":
      return "expected a value of one of the allowed forms";
    case "unrecognized_keys":
      return `unknown keys ${zi.keys.map(quoteName).join(", ")}`;
    case "invalid_key":
      return "expected a valid key";
    case "invalid_element":
      return "expected a valid element";
    case "custom":
      return zi.message.startsWith("expected ") ? zi.message : `expected ${zi.message}`;
  }
}

// ---------------------------------------------------------------------------------------------
// "Did you mean": the keys the schema knows at a path

interface Def {
  readonly type: string;
  readonly innerType?: z.ZodType;
  readonly in?: z.ZodType;
  readonly shape?: Record<string, z.ZodType>;
  readonly element?: z.ZodType;
  readonly valueType?: z.ZodType;
  readonly getter?: () => z.ZodType;
}

function defOf(s: z.ZodType): Def {
  return s._zod.def;
}

function unwrap(s: z.ZodType): z.ZodType {
  for (let i = 0; i < 32; i++) {
    const d = defOf(s);
    const next = d.innerType ?? d.in ?? (d.type === "lazy" ? d.getter?.() : undefined);
    if (next === undefined) return s;
    s = next;
  }
  return s;
}

/** The (unwrapped) schema that validates the value at `path`, if the path leads anywhere. */
function schemaAt(path: readonly PropertyKey[]): z.ZodType | undefined {
  let s: z.ZodType = configSchema;
  for (const seg of path) {
    const d = defOf(unwrap(s));
    const next = d.type === "object" ? d.shape?.[String(seg)] : (d.element ?? d.valueType);
    if (next === undefined) return undefined;
    s = next;
  }
  return unwrap(s);
}

function isIntAt(path: readonly PropertyKey[]): boolean {
  const s = schemaAt(path) as { isInt?: unknown } | undefined;
  return s?.isInt === true;
}

function knownKeys(path: readonly PropertyKey[]): string[] {
  const s = schemaAt(path);
  const d = s === undefined ? undefined : defOf(s);
  return d?.type === "object" && d.shape ? Object.keys(d.shape) : [];
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  let prev2: number[] = [];
  let prev: number[] = Array.from({ length: n + 1 }, (_, j) => j);
  for (let i = 1; i <= m; i++) {
    const cur: number[] = [i];
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, (prev2[j - 2] ?? 0) + 1);
      cur.push(v);
    }
    prev2 = prev;
    prev = cur;
  }
  return prev[n] ?? 0;
}

function suggest(key: string, known: readonly string[]): string {
  if (known.length === 0) return "";
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  const limit = Math.max(1, Math.min(3, Math.floor(key.length / 3)));
  if (best !== undefined && bestD <= limit) return ` (did you mean ${quoteName(best)}?)`;
  return known.length <= 12 ? ` (expected one of ${known.join(", ")})` : "";
}
