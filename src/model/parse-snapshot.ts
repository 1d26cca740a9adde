import { cellId, DEFAULT_CELL, hostId, vmId } from "./ids.js";
import type { ClusterSnapshot, Host, Hypervisor, Storage, Vm, VmState } from "./snapshot.js";
import { printable } from "../util/printable.js";

/**
 * Reading DESIGN.md's snapshot format (`ballast plan --snapshot FILE`). Validation is written by
 * hand rather than with zod: it runs once per item on snapshots of 40,000 VMs and must stay far
 * below the planner's own budget. Unknown fields are allowed and dropped.
 */

/** Invalid snapshot input. Every issue names the source, the JSON path, the bad value and what was expected. */
export class SnapshotError extends Error {
  override readonly name = "SnapshotError";
  readonly issues: readonly string[];

  constructor(source: string, issues: readonly string[]) {
    const n = issues.length;
    super(`${source}: invalid snapshot (${n} problem${n === 1 ? "" : "s"})\n${issues.join("\n")}`);
    this.issues = issues;
  }
}

/** Snapshots without a time stamp get this one: the planner has no clock to ask. */
export const EPOCH = "1970-01-01T00:00:00.000Z";

/** At most this many issues are listed; the rest are counted. */
const MAX_ISSUES = 50;

const HYPERVISORS: readonly Hypervisor[] = ["kvm", "xen", "sim"];
const VM_STATES: readonly VmState[] = ["running", "paused", "shutoff"];
const STORAGE_KINDS = ["shared", "local", "volume"] as const;

/** Parses and validates snapshot JSON; throws `SnapshotError` on any problem. */
export function parseSnapshot(text: string, source: string): ClusterSnapshot {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === "") throw new SnapshotError(source, [`${source}: the input is empty, expected a JSON snapshot`]);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    const { offset, what } = jsonSyntaxError(text);
    const { line, column } = lineColumn(text, offset);
    throw new SnapshotError(source, [`${source}:${line}:${column}: invalid JSON at position ${offset}: ${what}`]);
  }
  return validateSnapshot(data, source);
}

/** Validates an already-parsed snapshot object. */
export function validateSnapshot(data: unknown, source: string): ClusterSnapshot {
  const v = new Validator(source);
  if (!isObject(data)) {
    v.fail("", data, "expected a JSON object with hosts and vms");
    throw v.error();
  }

  let takenAt = EPOCH;
  const t = data["takenAt"];
  if (t !== undefined && t !== null) {
    if (typeof t !== "string" || !ISO_TIME.test(t) || Number.isNaN(Date.parse(t))) {
      v.fail("takenAt", t, "expected an ISO-8601 time such as 2024-05-01T12:00:00Z");
    } else {
      takenAt = t;
    }
  }

  const rawHosts = data["hosts"];
  const rawVms = data["vms"];
  if (!Array.isArray(rawHosts)) v.fail("hosts", rawHosts, "expected a list of hosts");
  if (!Array.isArray(rawVms)) v.fail("vms", rawVms, "expected a list of VMs");

  const hosts: Host[] = [];
  const hostIndex = new Map<string, number>();
  if (Array.isArray(rawHosts)) {
    for (let i = 0; i < rawHosts.length; i++) {
      const h = v.host(rawHosts[i], "hosts", i);
      if (h === undefined) continue;
      const first = hostIndex.get(h.name);
      if (first !== undefined) {
        v.fail(`hosts[${i}].name`, h.name, `expected a unique host name (hosts[${first}] has the same name)`);
        continue;
      }
      hostIndex.set(h.name, i);
      hosts.push(h);
    }
  }

  const vms: Vm[] = [];
  const vmIndex = new Map<string, number>();
  if (Array.isArray(rawVms)) {
    for (let i = 0; i < rawVms.length; i++) {
      const vm = v.vm(rawVms[i], "vms", i, hostIndex, Array.isArray(rawHosts));
      if (vm === undefined) continue;
      const first = vmIndex.get(vm.id);
      if (first !== undefined) {
        v.fail(`vms[${i}].id`, vm.id, `expected a unique VM id (vms[${first}] has the same id)`);
        continue;
      }
      vmIndex.set(vm.id, i);
      vms.push(vm);
    }
  }

  if (v.issues.length > 0) throw v.error();
  return { takenAt, hosts, vms };
}

/** A JSON path, spelled out only when an issue needs it (the common, valid case builds no strings). */
type Path = string | ItemPath;

class ItemPath {
  constructor(
    private list: string,
    private index: number,
    private readonly field?: string,
  ) {}
  /** Re-aims this cursor at another item; issues stringify paths at once, so reuse is safe. */
  at(list: string, index: number): this {
    this.list = list;
    this.index = index;
    return this;
  }
  child(field: string): ItemPath {
    return new ItemPath(this.list, this.index, field);
  }
  toString(): string {
    return this.field === undefined ? `${this.list}[${this.index}]` : `${this.list}[${this.index}].${this.field}`;
  }
}

/**
 * Upper bound of every number (2^40, a MiB figure of an exbibyte): far beyond any real cluster, and low
 * enough that sums over a whole snapshot stay finite, so the planner never meets Infinity or NaN.
 */
const MAX_QUANTITY = 2 ** 40;

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

interface NumberRule {
  readonly int?: boolean;
  /** Inclusive lower bound. */
  readonly min?: number;
  /** Exclusive lower bound. */
  readonly above?: number;
  /** Inclusive upper bound. */
  readonly max?: number;
}

class Validator {
  readonly issues: string[] = [];
  private dropped = 0;
  /** One frozen storage object per shared storage id: 40,000 VMs need not carry 40,000 copies. */
  private readonly shared = new Map<string, Storage>();
  private readonly cursor = new ItemPath("", 0);

  constructor(private readonly source: string) {}

  full(): boolean {
    return this.issues.length >= MAX_ISSUES;
  }

  fail(path: Path, value: unknown, expected: string): void {
    if (this.full()) {
      this.dropped++;
      return;
    }
    const p = String(path);
    const where = p === "" ? "" : `${p}: `;
    this.issues.push(`${this.source}: ${where}got ${show(value)}, ${expected}`);
  }

  error(): SnapshotError {
    const issues = this.dropped > 0 ? [...this.issues, `${this.source}: … and ${this.dropped} more`] : this.issues;
    return new SnapshotError(this.source, issues);
  }

  /** Returns the number, or undefined after recording an issue. `fallback` applies when the field is absent or null. */
  num(obj: Record<string, unknown>, key: string, path: Path, rule: NumberRule, fallback?: number): number | undefined {
    const x = obj[key];
    if ((x === undefined || x === null) && fallback !== undefined) return fallback;
    if (typeof x !== "number" || !Number.isFinite(x)) {
      this.fail(`${String(path)}.${key}`, x, `expected ${describeRule(rule)}`);
      return undefined;
    }
    if (x > MAX_QUANTITY) {
      this.fail(`${String(path)}.${key}`, x, `expected ${describeRule(rule)}, at most 2^40`);
      return undefined;
    }
    if (
      (rule.int === true && !Number.isInteger(x)) ||
      (rule.min !== undefined && x < rule.min) ||
      (rule.above !== undefined && x <= rule.above) ||
      (rule.max !== undefined && x > rule.max)
    ) {
      this.fail(`${String(path)}.${key}`, x, `expected ${describeRule(rule)}`);
      return undefined;
    }
    return x;
  }

  /** An optional number: absent or null gives undefined without an issue (a bad value records one). */
  optNum(obj: Record<string, unknown>, key: string, path: Path, rule: NumberRule): number | undefined {
    const x = obj[key];
    if (x === undefined || x === null) return undefined;
    return this.num(obj, key, path, rule);
  }

  /** `label` names the field in messages when it differs from `key` (nested objects). */
  str(obj: Record<string, unknown>, key: string, path: Path, fallback?: string, label: string = key): string | undefined {
    const x = obj[key];
    if ((x === undefined || x === null) && fallback !== undefined) return fallback;
    if (typeof x !== "string" || x === "") {
      this.fail(`${String(path)}.${label}`, x, "expected a non-empty string");
      return undefined;
    }
    return x;
  }

  bool(obj: Record<string, unknown>, key: string, path: Path, fallback: boolean): boolean | undefined {
    const x = obj[key];
    if (x === undefined || x === null) return fallback;
    if (typeof x !== "boolean") {
      this.fail(`${String(path)}.${key}`, x, "expected true or false");
      return undefined;
    }
    return x;
  }

  oneOf<T extends string>(obj: Record<string, unknown>, key: string, path: Path, values: readonly T[], label: string = key): T | undefined {
    const x = obj[key];
    if (typeof x !== "string" || !(values as readonly string[]).includes(x)) {
      this.fail(`${String(path)}.${label}`, x, `expected one of ${values.join(", ")}`);
      return undefined;
    }
    return x as T;
  }

  strings(obj: Record<string, unknown>, key: string, path: Path): string[] | undefined {
    const x = obj[key];
    if (x === undefined || x === null) return [];
    if (!Array.isArray(x)) {
      this.fail(`${String(path)}.${key}`, x, "expected a list of strings");
      return undefined;
    }
    for (let i = 0; i < x.length; i++) {
      if (typeof x[i] !== "string") {
        this.fail(`${String(path)}.${key}[${i}]`, x[i], "expected a string");
        return undefined;
      }
    }
    return x as string[];
  }

  host(raw: unknown, list: string, index: number): Host | undefined {
    const path = this.cursor.at(list, index);
    if (!isObject(raw)) {
      this.fail(path, raw, "expected a host object");
      return undefined;
    }
    const before = this.issues.length;
    const name = this.str(raw, "name", path);
    const hypervisor = this.oneOf(raw, "hypervisor", path, HYPERVISORS);
    const cell = this.str(raw, "cell", path, DEFAULT_CELL);
    let pool: string | null = null;
    const p = raw["pool"];
    if (p !== undefined && p !== null) {
      if (typeof p === "string" && p !== "") pool = p;
      else this.fail(`${String(path)}.pool`, p, "expected a pool name or null");
    }
    const cpus = this.num(raw, "cpus", path, POSITIVE_INT);
    const memoryMiB = this.num(raw, "memoryMiB", path, POSITIVE);
    const cpuLoad = this.num(raw, "cpuLoad", path, FRACTION);
    const memoryUsedMiB = this.num(raw, "memoryUsedMiB", path, NON_NEGATIVE);
    const maintenance = this.bool(raw, "maintenance", path, false);
    const reachable = this.bool(raw, "reachable", path, true);
    const sharedStorage = this.strings(raw, "sharedStorage", path);
    const reason = raw["maintenanceReason"];
    const disabled = this.bool(raw, "disabled", path, false);
    if (this.issues.length > before) return undefined;
    const host: Host = {
      name: hostId(name as string),
      hypervisor: hypervisor as Hypervisor,
      cell: cellId(cell as string),
      pool,
      cpus: cpus as number,
      memoryMiB: memoryMiB as number,
      cpuLoad: cpuLoad as number,
      memoryUsedMiB: memoryUsedMiB as number,
      maintenance: maintenance as boolean,
      reachable: reachable as boolean,
      sharedStorage: sharedStorage as string[],
    };
    return { ...host, ...(typeof reason === "string" && { maintenanceReason: reason }), ...(disabled === true && { disabled: true }) };
  }

  /**
   * A VM that passes every check below is built here without the general machinery: every field is
   * read once by name (one object shape per snapshot, so V8's inline caches stay monomorphic) and
   * tested against exactly the rules `vm()` applies. Anything else — a bad value, a type the rules
   * reject, a missing required field — returns undefined and `vm()` checks the item again field by
   * field to report it, so messages and their order come from one place only.
   */
  fastVm(raw: unknown, hosts: ReadonlyMap<string, number>, checkHosts: boolean): Vm | undefined {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
    const r = raw as Record<string, unknown>;
    const id = r["id"];
    if (typeof id !== "string" || id === "") return undefined;
    let name = r["name"];
    if (name === undefined || name === null) name = id;
    else if (typeof name !== "string" || name === "") return undefined;
    const host = r["host"];
    if (typeof host !== "string" || host === "" || (checkHosts && !hosts.has(host))) return undefined;
    const state = r["state"];
    if (state !== "running" && state !== "shutoff" && state !== "paused") return undefined;
    const vcpus = r["vcpus"];
    if (typeof vcpus !== "number" || !Number.isInteger(vcpus) || !(vcpus > 0 && vcpus <= MAX_QUANTITY)) return undefined;
    const memoryMiB = r["memoryMiB"];
    if (typeof memoryMiB !== "number" || !(memoryMiB > 0 && memoryMiB <= MAX_QUANTITY)) return undefined;
    const cpuLoad = r["cpuLoad"];
    if (typeof cpuLoad !== "number" || !(cpuLoad >= 0 && cpuLoad <= MAX_QUANTITY)) return undefined;
    const storage = this.fastStorage(r["storage"]);
    if (storage === undefined) return undefined;
    let volumes = r["volumes"];
    if (volumes === undefined || volumes === null) volumes = 0;
    else if (typeof volumes !== "number" || !Number.isInteger(volumes) || !(volumes >= 0 && volumes <= MAX_QUANTITY)) return undefined;
    const dirty = r["dirtyRateMiBps"];
    const hasDirty = dirty !== undefined && dirty !== null;
    if (hasDirty && (typeof dirty !== "number" || !(dirty >= 0 && dirty <= MAX_QUANTITY))) return undefined;
    const disk = r["diskMiB"];
    const hasDisk = disk !== undefined && disk !== null;
    if (hasDisk && (typeof disk !== "number" || !(disk >= 0 && disk <= MAX_QUANTITY))) return undefined;
    let tags = r["tags"];
    if (tags === undefined || tags === null) tags = [];
    else if (!Array.isArray(tags)) return undefined;
    else for (let i = 0; i < tags.length; i++) if (typeof tags[i] !== "string") return undefined;
    // Same fields, same order as vm() builds them.
    const vm: { -readonly [K in keyof Vm]: Vm[K] } = {
      id: vmId(id),
      name: name as string,
      host: hostId(host),
      state,
      vcpus,
      memoryMiB,
      cpuLoad,
      storage,
      volumes: volumes as number,
      tags: tags as string[],
    };
    if (hasDirty) vm.dirtyRateMiBps = dirty;
    if (hasDisk) vm.diskMiB = disk;
    return vm;
  }

  /** `storage()`'s rules for a valid value; undefined (no issue recorded) for anything else. */
  private fastStorage(raw: unknown): Storage | undefined {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
    const kind = (raw as Record<string, unknown>)["kind"];
    if (kind === "shared") {
      const id = (raw as Record<string, unknown>)["id"];
      if (typeof id !== "string" || id === "") return undefined;
      let st = this.shared.get(id);
      if (st === undefined) {
        st = Object.freeze({ kind: "shared", id });
        this.shared.set(id, st);
      }
      return st;
    }
    if (kind === "local") return LOCAL;
    if (kind === "volume") return VOLUME;
    return undefined;
  }

  vm(raw: unknown, list: string, index: number, hosts: ReadonlyMap<string, number>, checkHosts: boolean): Vm | undefined {
    const fast = this.fastVm(raw, hosts, checkHosts);
    if (fast !== undefined) return fast;
    const path = this.cursor.at(list, index);
    if (!isObject(raw)) {
      this.fail(path, raw, "expected a VM object");
      return undefined;
    }
    const before = this.issues.length;
    const id = this.str(raw, "id", path);
    const name = this.str(raw, "name", path, typeof raw["id"] === "string" ? raw["id"] : "");
    const host = this.str(raw, "host", path);
    if (host !== undefined && checkHosts && !hosts.has(host)) {
      this.fail(`${String(path)}.host`, host, "expected the name of a host listed in hosts[]");
    }
    const state = this.oneOf(raw, "state", path, VM_STATES);
    const vcpus = this.num(raw, "vcpus", path, POSITIVE_INT);
    const memoryMiB = this.num(raw, "memoryMiB", path, POSITIVE);
    const cpuLoad = this.num(raw, "cpuLoad", path, NON_NEGATIVE);
    const storage = this.storage(raw["storage"], path);
    const volumes = this.num(raw, "volumes", path, NON_NEGATIVE_INT, 0);
    const dirty = this.optNum(raw, "dirtyRateMiBps", path, NON_NEGATIVE);
    const disk = this.optNum(raw, "diskMiB", path, NON_NEGATIVE);
    const tags = this.strings(raw, "tags", path);
    if (this.issues.length > before) return undefined;
    const vm: { -readonly [K in keyof Vm]: Vm[K] } = {
      id: vmId(id as string),
      name: name as string,
      host: hostId(host as string),
      state: state as VmState,
      vcpus: vcpus as number,
      memoryMiB: memoryMiB as number,
      cpuLoad: cpuLoad as number,
      storage: storage as Storage,
      volumes: volumes as number,
      tags: tags as string[],
    };
    if (dirty !== undefined) vm.dirtyRateMiBps = dirty;
    if (disk !== undefined) vm.diskMiB = disk;
    return vm;
  }

  storage(raw: unknown, vmPath: ItemPath): Storage | undefined {
    if (!isObject(raw)) {
      const path = vmPath.child("storage");
      this.fail(path, raw, 'expected {"kind":"shared","id":…}, {"kind":"local"} or {"kind":"volume"}');
      return undefined;
    }
    const kind = this.oneOf(raw, "kind", vmPath, STORAGE_KINDS, "storage.kind");
    if (kind === "local") return LOCAL;
    if (kind === "volume") return VOLUME;
    if (kind === "shared") {
      const id = this.str(raw, "id", vmPath, undefined, "storage.id");
      if (id === undefined) return undefined;
      let st = this.shared.get(id);
      if (st === undefined) {
        st = Object.freeze({ kind: "shared", id });
        this.shared.set(id, st);
      }
      return st;
    }
    return undefined;
  }
}

const POSITIVE: NumberRule = { above: 0 };
const POSITIVE_INT: NumberRule = { int: true, above: 0 };
const NON_NEGATIVE: NumberRule = { min: 0 };
const NON_NEGATIVE_INT: NumberRule = { int: true, min: 0 };
const FRACTION: NumberRule = { min: 0, max: 1 };

const LOCAL: Storage = Object.freeze({ kind: "local" });
const VOLUME: Storage = Object.freeze({ kind: "volume" });

function describeRule(r: NumberRule): string {
  const what = r.int === true ? "an integer" : "a number";
  const parts: string[] = [];
  if (r.above !== undefined) parts.push(`> ${r.above}`);
  if (r.min !== undefined && r.max !== undefined) return `${what} from ${r.min} to ${r.max}`;
  if (r.min !== undefined) parts.push(`≥ ${r.min}`);
  if (r.max !== undefined) parts.push(`≤ ${r.max}`);
  return parts.length === 0 ? what : `${what} ${parts.join(" and ")}`;
}

/** Short, JSON-ish and safe to print: control and bidi characters escaped, long values cut. */
function show(value: unknown): string {
  let s: string;
  if (value === undefined) return "nothing (field missing)";
  if (typeof value === "number") s = String(value);
  else if (typeof value === "string") s = JSON.stringify(value.length > 60 ? `${value.slice(0, 59)}…` : value);
  else {
    try {
      s = JSON.stringify(value) ?? "?";
    } catch {
      // Nested too deep to serialise (100,000 levels overflow the stack): described by its top level instead.
      s = Array.isArray(value) ? `a list of ${value.length} item${value.length === 1 ? "" : "s"}` : `an object {${shortKeys(Object.keys(value as object))}}`;
    }
    if (s.length > 60) s = `${s.slice(0, 59)}…`;
  }
  return printable(s);
}

function shortKeys(keys: readonly string[]): string {
  const listed = keys.slice(0, 3).map((k) => JSON.stringify(k.length > 20 ? `${k.slice(0, 19)}…` : k));
  return keys.length > 3 ? `${listed.join(", ")}, …` : listed.join(", ");
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * Node 20's JSON.parse does not say where it failed; this scanner finds the offset of the first
 * syntax error (iteratively, so deep nesting cannot overflow the stack). Only run on failure.
 */
export function jsonSyntaxError(text: string): { offset: number; what: string } {
  const stack: ("{" | "[")[] = [];
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  let i = 0;
  const ws = (): void => {
    while (i < text.length && (text[i] === " " || text[i] === "\n" || text[i] === "\r" || text[i] === "\t")) i++;
  };
  const unexpected = (expected: string): { offset: number; what: string } => {
    if (i >= text.length) return { offset: i, what: `unexpected end of input, expected ${expected}` };
    return { offset: i, what: `unexpected ${show(text.slice(i, i + 1))}, expected ${expected}` };
  };
  const string = (): { offset: number; what: string } | undefined => {
    i++; // opening quote
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return undefined;
      }
      if (c < 0x20) return { offset: i, what: "unescaped control character in string" };
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return { offset: i, what: "bad \\u escape in string" };
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
        } else {
          return { offset: i, what: "bad escape in string" };
        }
      } else {
        i++;
      }
    }
    return { offset: i, what: "unterminated string" };
  };
  // expect: "value" | "key" (or "}" when first) | "after" (a value was read)
  let expect: "value" | "firstValue" | "key" | "firstKey" | "after" = "value";
  for (;;) {
    ws();
    if (expect === "value" || expect === "firstValue") {
      const c = text[i];
      if (c === "]" && expect === "firstValue") {
        i++;
        stack.pop();
        expect = "after";
      } else if (c === "{") {
        i++;
        stack.push("{");
        expect = "firstKey";
      } else if (c === "[") {
        i++;
        stack.push("[");
        expect = "firstValue";
      } else if (c === '"') {
        const err = string();
        if (err) return err;
        expect = "after";
      } else if (text.startsWith("true", i) || text.startsWith("null", i)) {
        i += 4;
        expect = "after";
      } else if (text.startsWith("false", i)) {
        i += 5;
        expect = "after";
      } else {
        NUMBER.lastIndex = i;
        const m = NUMBER.exec(text);
        if (!m) return unexpected("a value");
        i += m[0].length;
        expect = "after";
      }
    } else if (expect === "key" || expect === "firstKey") {
      if (text[i] === "}" && expect === "firstKey") {
        i++;
        stack.pop();
        expect = "after";
        continue;
      }
      if (text[i] !== '"') return unexpected('a quoted key');
      const err = string();
      if (err) return err;
      ws();
      if (text[i] !== ":") return unexpected("':'");
      i++;
      expect = "value";
    } else {
      const top = stack[stack.length - 1];
      if (top === undefined) {
        if (i < text.length) return unexpected("end of input");
        return { offset: i, what: "invalid JSON" };
      }
      const c = text[i];
      if (c === ",") {
        i++;
        expect = top === "{" ? "key" : "value";
      } else if ((c === "}" && top === "{") || (c === "]" && top === "[")) {
        i++;
        stack.pop();
      } else {
        return unexpected(top === "{" ? "',' or '}'" : "',' or ']'");
      }
    }
  }
}
