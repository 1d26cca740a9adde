/**
 * One pool's object database, with XAPI's event model: every change bumps a generation counter; event.from
 * returns, for each object of the asked classes changed since a token, one event with its current
 * snapshot (changes are coalesced, as in XAPI), plus deletions, and long-polls when there are none.
 */
import { fault } from "./errors.js";
import { Int32, XapiDate, type XRecord, type XValue } from "./values.js";

/** The classes the simulator serves, spelled as XAPI does in method names. */
export const CLASSES = [
  "pool",
  "host",
  "host_metrics",
  "host_cpu",
  "VM",
  "VM_metrics",
  "VM_guest_metrics",
  "VBD",
  "VDI",
  "SR",
  "PBD",
  "VIF",
  "network",
  "task",
  "message",
] as const;
export type XapiClass = (typeof CLASSES)[number];

const byLowerCase = new Map<string, XapiClass>(CLASSES.map((c) => [c.toLowerCase(), c]));
export const classOf = (name: string): XapiClass | undefined => byLowerCase.get(name.toLowerCase());

interface Entry {
  readonly cls: XapiClass;
  readonly ref: string;
  record: XRecord;
  created: number;
  changed: number;
}

interface Deletion {
  readonly cls: XapiClass;
  readonly ref: string;
  readonly gen: number;
}

export interface XapiEvent {
  readonly id: bigint;
  readonly timestamp: string;
  readonly class: string;
  readonly operation: "add" | "mod" | "del";
  readonly ref: string;
  readonly snapshot?: XRecord;
}

export interface EventBatch {
  readonly events: XapiEvent[];
  readonly valid_ref_counts: Record<string, Int32>;
  readonly token: string;
}

export class ObjectStore {
  private readonly entries = new Map<string, Entry>();
  private readonly byClass = new Map<XapiClass, Set<string>>(CLASSES.map((c) => [c, new Set()]));
  private readonly deletions: Deletion[] = [];
  private gen = 0;
  private waiters = new Set<() => void>();

  constructor(private readonly now: () => number) {}

  add(cls: XapiClass, ref: string, record: XRecord): void {
    const gen = this.bump();
    this.entries.set(ref, { cls, ref, record, created: gen, changed: gen });
    this.byClass.get(cls)?.add(ref);
  }

  /** Replaces some fields of a record (one 'mod' event). */
  set(ref: string, fields: XRecord): void {
    const e = this.entry(ref);
    e.record = { ...e.record, ...fields };
    e.changed = this.bump();
  }

  /** Adds a ref to a set-valued field (e.g. SR.VDIs) in place: O(1), where replacing would copy thousands. */
  append(ref: string, field: string, item: string): void {
    const e = this.entry(ref);
    (e.record[field] as XValue[]).push(item);
    e.changed = this.bump();
  }

  delete(ref: string): void {
    const e = this.entries.get(ref);
    if (e === undefined) return;
    this.entries.delete(ref);
    this.byClass.get(e.cls)?.delete(ref);
    this.deletions.push({ cls: e.cls, ref, gen: this.bump() });
  }

  /** event.inject: a 'mod' event for the object; returns a token just before it. */
  inject(ref: string): string {
    const before = String(this.gen);
    this.entry(ref).changed = this.bump();
    return before;
  }

  has(ref: string): boolean {
    return this.entries.has(ref);
  }

  classOfRef(ref: string): XapiClass | undefined {
    return this.entries.get(ref)?.cls;
  }

  get(ref: string): XRecord {
    return this.entry(ref).record;
  }

  /** The record, or HANDLE_INVALID(cls, ref) when ref is not an object of cls. */
  getOf(cls: XapiClass, ref: string): XRecord {
    const e = this.entries.get(ref);
    if (e === undefined || e.cls !== cls) throw fault.handleInvalid(cls, ref);
    return e.record;
  }

  field(ref: string, name: string): XValue {
    const v = this.get(ref)[name];
    if (v === undefined) throw new Error(`${ref} has no field ${name}`);
    return v;
  }

  refs(cls: XapiClass): string[] {
    return [...(this.byClass.get(cls) ?? [])];
  }

  count(cls: XapiClass): number {
    return this.byClass.get(cls)?.size ?? 0;
  }

  allRecords(cls: XapiClass): Record<string, XRecord> {
    const out: Record<string, XRecord> = {};
    for (const ref of this.byClass.get(cls) ?? []) out[ref] = this.get(ref);
    return out;
  }

  /** Events since `token` ("" = everything, as 'add') for the classes ("*" = all); waits up to timeoutMs for one. */
  async eventsFrom(classes: readonly string[], token: string, timeoutMs: number, signal: AbortSignal): Promise<EventBatch> {
    const since = token === "" ? -1 : Number(token);
    if (!Number.isInteger(since) || since > this.gen) throw fault.tokenParse(token);
    const wanted = classes.includes("*")
      ? new Set<XapiClass>(CLASSES)
      : new Set(classes.map(classOf).filter((c): c is XapiClass => c !== undefined));
    let batch = this.collect(wanted, since);
    const deadline = Date.now() + timeoutMs;
    // Long-poll in real time: this is transport behaviour the client's timeouts are built around.
    while (batch.events.length === 0 && !signal.aborted && Date.now() < deadline) {
      await this.waitForChange(deadline - Date.now(), signal);
      batch = this.collect(wanted, since);
    }
    return batch;
  }

  /** Ends every pending long-poll now (shutdown). */
  wakeAll(): void {
    const ws = this.waiters;
    this.waiters = new Set();
    for (const w of ws) w();
  }

  private collect(wanted: ReadonlySet<XapiClass>, since: number): EventBatch {
    const events: XapiEvent[] = [];
    const timestamp = new XapiDate(this.now()).toString();
    for (const e of this.entries.values()) {
      if (e.changed <= since || !wanted.has(e.cls)) continue;
      events.push({
        id: BigInt(e.changed),
        timestamp,
        class: e.cls.toLowerCase(),
        operation: e.created > since ? "add" : "mod",
        ref: e.ref,
        snapshot: e.record,
      });
    }
    for (const d of this.deletions) {
      if (d.gen > since && wanted.has(d.cls)) {
        events.push({ id: BigInt(d.gen), timestamp, class: d.cls.toLowerCase(), operation: "del", ref: d.ref });
      }
    }
    events.sort((a, b) => (a.id < b.id ? -1 : 1));
    // int32 in XAPI (Rpc.Int32): a number on both transports, which the client compares with ===.
    const valid_ref_counts: Record<string, Int32> = {};
    for (const c of wanted) valid_ref_counts[c.toLowerCase()] = new Int32(this.count(c));
    return { events, valid_ref_counts, token: String(this.gen) };
  }

  private waitForChange(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      timer.unref();
      signal.addEventListener("abort", done, { once: true });
      this.waiters.add(done);
    });
  }

  private bump(): number {
    this.gen += 1;
    // Wake long-polls after the current synchronous change set, so one operation's changes arrive together.
    if (this.waiters.size > 0) queueMicrotask(() => this.wakeAll());
    return this.gen;
  }

  private entry(ref: string): Entry {
    const e = this.entries.get(ref);
    if (e === undefined) throw new Error(`no object ${ref}`);
    return e;
  }
}
