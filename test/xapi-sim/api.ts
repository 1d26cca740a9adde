/**
 * The XAPI method table and dispatch: session checks, parameter counts, Async variants as tasks, generic
 * class methods (get_all_records, get_record, field getters…) and fault hooks. Transport-independent.
 */
import type { SimContext } from "./context.js";
import { XapiFault, fault } from "./errors.js";
import { newRef, type SimPool } from "./pool.js";
import { CLASSES, classOf, type XapiClass } from "./store.js";
import type { TaskJob } from "./tasks.js";
import {
  asString,
  assertCanMigrate,
  migrateReceive,
  migrateSend,
  poolMigrate,
  setHostEnabled,
  shutdown,
  startOn,
} from "./vm-ops.js";
import { str, type XRecord, type XValue } from "./values.js";

export interface Call {
  readonly pool: SimPool;
  /** Whether the address that received the call is the pool master's. */
  readonly onMaster: boolean;
  readonly method: string;
  readonly args: unknown[];
  /** Aborted when the caller's connection closes (ends an event.from long-poll). */
  readonly signal: AbortSignal;
}

type Sync = (ctx: SimContext, pool: SimPool, args: unknown[], signal: AbortSignal) => XValue | Promise<XValue>;
type Operation = (ctx: SimContext, pool: SimPool, args: unknown[], taskRef: string) => TaskJob;

interface MethodDef {
  /** Parameter count including the session, or [min, max]. */
  readonly params: number | readonly [number, number];
  readonly session: boolean;
  readonly sync?: Sync;
  /** Task-backed: callable as Async.<name> (returns the task) or synchronously (waits for it). */
  readonly op?: Operation;
}

const OPERATIONS: Record<string, MethodDef> = {
  "VM.pool_migrate": { params: 4, session: true, op: poolMigrate },
  "VM.start": { params: 4, session: true, op: (_c, p, a, t) => startOn(p, a, t, false) },
  "VM.start_on": { params: 5, session: true, op: (_c, p, a, t) => startOn(p, a, t, true) },
  "VM.clean_shutdown": { params: 2, session: true, op: (_c, p, a, t) => shutdown(p, a, t) },
  "VM.hard_shutdown": { params: 2, session: true, op: (_c, p, a, t) => shutdown(p, a, t) },
  "VM.assert_can_migrate": { params: [7, 8], session: true, op: (c, p, a) => assertCanMigrate(c, p, a) },
  "VM.migrate_send": { params: [7, 8], session: true, op: migrateSend },
  "host.disable": { params: 2, session: true, op: (_c, p, a) => setHostEnabled(p, a, false) },
  "host.enable": { params: 2, session: true, op: (_c, p, a) => setHostEnabled(p, a, true) },
};

const METHODS: Record<string, MethodDef> = {
  ...OPERATIONS,
  "session.login_with_password": { params: [2, 4], session: false, sync: login },
  "session.logout": {
    params: 1,
    session: true,
    sync: (_c, pool, args) => {
      pool.sessions.delete(asString(args[0], "session_id"));
      return "";
    },
  },
  "event.from": {
    params: 4,
    session: true,
    sync: async (_c, pool, args, signal) => {
      const classes = Array.isArray(args[1]) ? args[1].map((c) => asString(c, "classes")) : [];
      const timeout = typeof args[3] === "number" ? args[3] : Number(args[3]);
      const batch = await pool.store.eventsFrom(classes, asString(args[2], "token"), timeout * 1000, signal);
      return { ...batch, events: batch.events.map((e) => ({ ...e })) };
    },
  },
  "event.inject": {
    params: 3,
    session: true,
    sync: (_c, pool, args) => {
      const cls = classOf(asString(args[1], "class"));
      const ref = asString(args[2], "ref");
      if (cls === undefined || pool.store.classOfRef(ref) !== cls) throw fault.handleInvalid(asString(args[1], "class"), ref);
      return pool.store.inject(ref);
    },
  },
  "task.create": {
    params: 3,
    session: true,
    sync: (ctx, pool, args) => ctx.tasks.create(pool, asString(args[1], "label"), asString(args[2], "description")),
  },
  "task.cancel": {
    params: 2,
    session: true,
    sync: (ctx, pool, args) => {
      ctx.tasks.cancel(pool, asString(args[1], "task"));
      return "";
    },
  },
  "task.destroy": {
    params: 2,
    session: true,
    sync: (_c, pool, args) => {
      const ref = asString(args[1], "task");
      pool.store.getOf("task", ref);
      pool.store.delete(ref);
      return "";
    },
  },
  "VM.unpause": {
    params: 2,
    session: true,
    // Nothing in the simulator pauses a VM (XAPI's migrations do not either), so no VM is ever paused here.
    sync: (_c, pool, args) => {
      const ref = asString(args[1], "vm");
      throw fault.badPowerState(ref, "paused", str(pool.store.getOf("VM", ref).power_state).toLowerCase());
    },
  },
  "host.migrate_receive": { params: 4, session: true, sync: (_c, pool, args) => migrateReceive(pool, args) },
  "VM.set_affinity": {
    params: 3,
    session: true,
    sync: (_c, pool, args) => {
      const vm = asString(args[1], "vm");
      const host = asString(args[2], "value");
      pool.store.getOf("VM", vm);
      if (host !== "OpaqueRef:NULL") pool.store.getOf("host", host);
      pool.store.set(vm, { affinity: host });
      return "";
    },
  },
};

function login(ctx: SimContext, pool: SimPool, args: unknown[]): string {
  const user = asString(args[0], "uname");
  if (ctx.faults.wrongPassword || user !== ctx.user || args[1] !== ctx.password) throw fault.authFailed(user);
  const session = newRef();
  pool.sessions.add(session);
  return session;
}

/** Generic per-class methods XAPI generates for every class. */
function classMethod(cls: XapiClass, op: string): MethodDef | undefined {
  switch (op) {
    case "get_all_records":
      return { params: 1, session: true, sync: (_c, pool) => pool.store.allRecords(cls) };
    case "get_all":
      return { params: 1, session: true, sync: (_c, pool) => pool.store.refs(cls) };
    case "get_record":
      return { params: 2, session: true, sync: (_c, pool, a) => pool.store.getOf(cls, asString(a[1], "self")) };
    case "get_by_uuid":
      return {
        params: 2,
        session: true,
        sync: (_c, pool, a) => {
          const uuid = asString(a[1], "uuid");
          const ref = pool.store.refs(cls).find((r) => pool.store.get(r).uuid === uuid);
          if (ref === undefined) throw new XapiFault("UUID_INVALID", [cls, uuid]);
          return ref;
        },
      };
    case "get_by_name_label":
      return {
        params: 2,
        session: true,
        sync: (_c, pool, a) => pool.store.refs(cls).filter((r) => pool.store.get(r).name_label === a[1]),
      };
    case "add_to_other_config":
      return {
        params: 4,
        session: true,
        sync: (_c, pool, a) => {
          const ref = asString(a[1], "self");
          const oc = pool.store.getOf(cls, ref).other_config as XRecord;
          const key = asString(a[2], "key");
          if (key in oc) throw new XapiFault("MAP_DUPLICATE_KEY", [cls, "other_config", ref, key]);
          pool.store.set(ref, { other_config: { ...oc, [key]: asString(a[3], "value") } });
          return "";
        },
      };
    case "remove_from_other_config":
      return {
        params: 3,
        session: true,
        sync: (_c, pool, a) => {
          const ref = asString(a[1], "self");
          const key = asString(a[2], "key");
          const oc = pool.store.getOf(cls, ref).other_config as XRecord;
          pool.store.set(ref, { other_config: Object.fromEntries(Object.entries(oc).filter(([k]) => k !== key)) });
          return "";
        },
      };
  }
  if (!op.startsWith("get_")) return undefined;
  const field = op.slice(4);
  return {
    params: 2,
    session: true,
    sync: (_c, pool, a) => {
      const record = pool.store.getOf(cls, asString(a[1], "self"));
      const v = record[field];
      if (v === undefined) throw fault.methodUnknown(`${cls}.${op}`);
      return v;
    },
  };
}

function lookup(name: string): MethodDef | undefined {
  const def = METHODS[name];
  if (def !== undefined) return def;
  const dot = name.indexOf(".");
  const cls = CLASSES.find((c) => c === name.slice(0, dot));
  return cls === undefined ? undefined : classMethod(cls, name.slice(dot + 1));
}

/** What system.listMethods answers: the client derives the classes it watches from the get_all_records ones. */
function listMethods(): string[] {
  const generic = CLASSES.flatMap((c) => ["get_all_records", "get_all", "get_record", "get_by_uuid"].map((m) => `${c}.${m}`));
  return [...Object.keys(METHODS), ...Object.keys(OPERATIONS).map((m) => `Async.${m}`), ...generic];
}

export async function dispatch(ctx: SimContext, call: Call): Promise<XValue> {
  const { pool, method, args } = call;
  if (method === "system.listMethods") return listMethods();
  if (!call.onMaster) throw fault.hostIsSlave(pool.masterAddress());
  const isAsync = method.startsWith("Async.");
  const name = isAsync ? method.slice("Async.".length) : method;
  const def = lookup(name);
  if (def === undefined || (isAsync && def.op === undefined)) throw fault.methodUnknown(method);
  const [min, max] = typeof def.params === "number" ? [def.params, def.params] : def.params;
  if (args.length < min || args.length > max) throw fault.paramCount(method, max, args.length);
  if (def.session && !pool.sessions.has(String(args[0]))) throw fault.sessionInvalid(String(args[0]));

  const armed = ctx.faults.takeFailure(name);
  if (def.op === undefined) {
    if (armed !== undefined) throw armed;
    return (def.sync as Sync)(ctx, pool, args, call.signal);
  }
  const op = def.op;
  const { ref, outcome } = ctx.tasks.start(pool, name, (taskRef) => op(ctx, pool, args, taskRef), armed);
  if (isAsync) return ref;
  const o = await outcome;
  if ("error" in o) throw o.error;
  return o.result ?? "";
}
