import { createClient } from "xen-api";
import type { Xapi } from "xen-api";
import type { Config } from "../../config/schema.js";
import type { Clock } from "../../util/clock.js";
import { DriverError } from "../driver.js";
import { readCredentials } from "./credentials.js";
import { httpGetText } from "./http-get.js";
import type { HostRecord, PoolRecord, PoolRecords, RecordClass } from "./records.js";
import { RECORD_CLASSES } from "./records.js";
import { parseRrdUpdates, SmoothedLoad } from "./rrd.js";

export type XenPoolConfig = NonNullable<Config["xenserver"]>["pools"][number];
export type XenTransport = "auto" | "json-rpc" | "xml-rpc";

/** What the driver logs through (pino's shape); credentials never reach it. */
export interface DriverLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface PoolDeps {
  readonly clock: Clock;
  readonly log?: DriverLog;
  readonly transport?: XenTransport;
  /** Give up on a connection attempt (login and first full fetch) after this long. Default 30 s. */
  readonly connectTimeoutMs?: number;
}

/** Seconds of RRD history fetched on the first sample, so smoothing starts from a minute of data. */
const RRD_FIRST_WINDOW_S = 60;
const RRD_TIMEOUT_MS = 10_000;
const RRD_CONCURRENCY = 8;

/** An XAPI error's code (XapiError.code), or undefined for transport errors. */
export function xapiCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[A-Z][A-Z0-9_]+$/.test(code) ? code : undefined;
}

/** A one-line description of an XAPI or transport error (XapiError's message is "CODE(params)"). */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  const m = (e as { message?: unknown } | null)?.message;
  return typeof m === "string" ? m : String(e);
}

/**
 * One pool master connection: xen-api's client (login, HOST_IS_SLAVE followed to the master by the client,
 * object cache kept current by event.from) plus smoothed CPU load from each host's /rrd_updates.
 */
export class PoolConnection {
  readonly name: string;
  readonly load = new SmoothedLoad();
  private xapi: Xapi | undefined;
  private connecting: Promise<void> | undefined;
  private lastError: string | undefined;
  /** Next /rrd_updates start per host uuid (seconds, the previous reply's end). */
  private readonly rrdStart = new Map<string, number>();
  private closed = false;

  constructor(
    readonly cfg: XenPoolConfig,
    private readonly deps: PoolDeps,
  ) {
    this.name = cfg.name;
  }

  get connected(): boolean {
    return this.xapi?.status === "connected";
  }

  /**
   * Connected and the event feed keeping the cache current. xen-api stays "connected" while the master is
   * unreachable; a failing event.from (retried every 2 s) is how a dead pool shows.
   */
  get healthy(): boolean {
    return this.connected && this.xapi?.watchEventsError === undefined;
  }

  /** Why the pool is not healthy, if it is not. */
  get error(): string | undefined {
    if (this.healthy) return undefined;
    const feed = this.xapi?.watchEventsError;
    if (this.connected && feed !== undefined) return `event feed failing: ${describeError(feed)}`;
    return this.lastError ?? "not connected";
  }

  /** Connects (or reconnects) if needed; never throws: a failure leaves the pool unreachable with `error` set. */
  ensureConnected(): Promise<void> {
    if (this.closed || this.connected) return Promise.resolve();
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connect(): Promise<void> {
    try {
      if (!this.xapi) {
        const auth = await readCredentials(this.cfg.credentialsFile, this.name);
        this.xapi = createClient({
          url: this.cfg.url,
          auth,
          allowUnauthorized: this.cfg.allowUnauthorized,
          transport: this.deps.transport ?? "auto",
          // Retry a broken event feed after 2 s, not xen-api's default minute: the cache is the driver's view.
          eventPollDelay: 2_000,
        });
      }
      const xapi = this.xapi;
      const timeoutMs = this.deps.connectTimeoutMs ?? 30_000;
      const timer = new AbortController();
      const timedOut = this.deps.clock.sleep(timeoutMs, timer.signal).then(
        () => {
          throw new DriverError(`pool ${this.name}: no connection within ${timeoutMs / 1000} s`, "POOL_TIMEOUT");
        },
        () => undefined,
      );
      try {
        await Promise.race([xapi.connect().then(() => xapi.objectsFetched), timedOut]);
      } finally {
        timer.abort();
      }
      this.lastError = undefined;
      this.deps.log?.info({ pool: this.name }, "connected to XenServer pool");
    } catch (e) {
      const code = xapiCode(e);
      const why =
        code === "SESSION_AUTHENTICATION_FAILED"
          ? `login refused (SESSION_AUTHENTICATION_FAILED): check the credentials in ${this.cfg.credentialsFile}`
          : describeError(e);
      this.lastError = why;
      this.deps.log?.warn({ pool: this.name, code, error: why }, "cannot connect to XenServer pool");
      if (e instanceof DriverError && e.code.startsWith("CREDENTIALS_")) this.xapi = undefined;
    }
  }

  /** The client, or a DriverError saying why the pool cannot be reached. */
  client(): Xapi {
    if (!this.xapi || !this.connected) {
      throw new DriverError(`pool ${this.name} is unreachable: ${this.error ?? "not connected"}`, "POOL_UNREACHABLE");
    }
    return this.xapi;
  }

  /** The cached records of the classes the driver reads (empty maps before the first connection). */
  records(): PoolRecords | undefined {
    const xapi = this.xapi;
    const pool = xapi?.pool;
    if (!xapi || !pool) return undefined;
    const maps = Object.fromEntries(RECORD_CLASSES.map((c) => [c, new Map<string, unknown>()])) as Record<RecordClass, Map<string, unknown>>;
    for (const o of Object.values(xapi.objects.all)) {
      const m = maps[o.$type as RecordClass] as Map<string, unknown> | undefined;
      m?.set(o.$ref, o);
    }
    return { poolRef: pool.$ref, pool: pool as unknown as PoolRecord, ...(maps as unknown as Omit<PoolRecords, "poolRef" | "pool">) };
  }

  /**
   * Waits (at most timeoutMs) until the object cache holds every change made so far, so a sample taken after
   * a migration agrees with XAPI. A failure only means the next sample may lag; it is not an error.
   */
  async syncCache(timeoutMs = 10_000): Promise<void> {
    if (!this.connected || !this.xapi) return;
    // A bound on a network round trip, not on simulated work: wall-clock, like the HTTP timeouts.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => (timer = setTimeout(r, timeoutMs).unref()));
    try {
      await Promise.race([this.xapi.barrier().catch(() => undefined), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Fetches new RRD rows from every live host and feeds the smoother. Per-host failures keep the old load. */
  async refreshLoad(): Promise<void> {
    const r = this.records();
    if (!r || !this.connected || !this.xapi) return;
    const session = this.xapi.sessionId;
    const base = new URL(this.cfg.url);
    const hosts = [...r.host.values()].filter((h) => r.host_metrics.get(h.metrics)?.live !== false);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < hosts.length) {
        const h = hosts[next++] as HostRecord & { address?: string };
        await this.fetchHostRrd(h, base, session).catch((e: unknown) =>
          this.deps.log?.warn({ pool: this.name, host: h.name_label, error: describeError(e) }, "rrd_updates failed"),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(RRD_CONCURRENCY, hosts.length) }, worker));
  }

  private async fetchHostRrd(h: HostRecord & { address?: string }, base: URL, session: string): Promise<void> {
    const url = new URL(base.href);
    if (h.address) url.hostname = h.address.includes(":") ? `[${h.address}]` : h.address;
    url.pathname = "/rrd_updates";
    const start = this.rrdStart.get(h.uuid) ?? Math.floor(this.deps.clock.now() / 1000) - RRD_FIRST_WINDOW_S;
    url.search = new URLSearchParams({
      session_id: session,
      start: String(start),
      cf: "AVERAGE",
      interval: "5",
      host: "true",
      json: "true",
    }).toString();
    const update = parseRrdUpdates(await httpGetText(url, { rejectUnauthorized: !this.cfg.allowUnauthorized, timeoutMs: RRD_TIMEOUT_MS }));
    this.load.add(update);
    if (update.end > 0) this.rrdStart.set(h.uuid, Math.floor(update.end));
  }

  async close(): Promise<void> {
    this.closed = true;
    const xapi = this.xapi;
    this.xapi = undefined;
    await xapi?.disconnect().catch(() => undefined);
  }
}
