/**
 * One long-lived libvirt connection per host, reopened with exponential back-off after it drops (keepalive
 * timeout, daemon restart) or a call fails in a way that means the connection is gone.
 */
import type { LibvirtHostConfig } from "./config.js";
import { DriverError } from "../driver.js";
import type { Clock } from "../../util/clock.js";
import { hostId } from "../../model/index.js";
import { ErrorCode, LibvirtError, type Connection, type LibvirtEvent, type OpenOptions } from "./native/index.js";

export type OpenFn = (uri: string, options: OpenOptions, onEvent?: (e: LibvirtEvent) => void) => Promise<Connection>;

const FIRST_RETRY_MS = 1000;
const KEEPALIVE = { keepaliveIntervalSec: 5, keepaliveCount: 3 } as const;
const MAX_RETRY_MS = 60_000;

/** Errors after which the connection is not worth keeping: the next call reconnects. */
const CONNECTION_LOST = new Set<number>([ErrorCode.INVALID_CONN, ErrorCode.NO_CONNECT, ErrorCode.SYSTEM_ERROR, ErrorCode.RPC]);

export class HostLink {
  private conn: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  private retryAt = 0;
  private delayMs = FIRST_RETRY_MS;
  private lastError = "";
  private closed = false;

  constructor(
    readonly host: LibvirtHostConfig,
    private readonly clock: Clock,
    private readonly openFn: OpenFn,
    private readonly onEvent: (host: string, e: LibvirtEvent) => void,
  ) {}

  /** The open connection, opening it if the back-off allows; DriverError HOST_UNREACHABLE otherwise. */
  get(): Promise<Connection> {
    if (this.closed) return Promise.reject(new DriverError(`driver closed`, "DRIVER_CLOSED", hostId(this.host.name)));
    if (this.conn) return Promise.resolve(this.conn);
    if (this.connecting) return this.connecting;
    const now = this.clock.now();
    // A retry further off than the back-off ever waits means the wall clock was stepped back: retry now.
    if (now < this.retryAt && this.retryAt - now <= MAX_RETRY_MS) {
      return Promise.reject(this.unreachable(`${this.lastError}; next attempt in ${Math.ceil((this.retryAt - now) / 1000)} s`));
    }
    this.connecting = this.openFn(this.host.uri, KEEPALIVE, (e) => this.event(e)).then(
      (c) => {
        this.connecting = undefined;
        if (this.closed) {
          return c.close().then(() => Promise.reject(new DriverError("driver closed", "DRIVER_CLOSED", hostId(this.host.name))));
        }
        this.conn = c;
        this.delayMs = FIRST_RETRY_MS;
        return c;
      },
      (e: unknown) => {
        this.connecting = undefined;
        this.lastError = e instanceof Error ? e.message : String(e);
        this.retryAt = this.clock.now() + this.delayMs;
        this.delayMs = Math.min(MAX_RETRY_MS, this.delayMs * 2);
        return Promise.reject(this.unreachable(this.lastError));
      },
    );
    return this.connecting;
  }

  /**
   * A connection of its own for one long call (a migration). While a call blocks on a libvirt client connection,
   * other calls on it wait for the keepalive timer (≈ 5 s each, measured in the lab), so job statistics and guard
   * actions must not share the migrating connection.
   */
  async openDedicated(): Promise<Connection> {
    if (this.closed) throw new DriverError("driver closed", "DRIVER_CLOSED", hostId(this.host.name));
    try {
      return await this.openFn(this.host.uri, KEEPALIVE);
    } catch (e) {
      throw this.unreachable(e instanceof Error ? e.message : String(e));
    }
  }

  /** Runs fn on the connection; a lost connection is dropped (and reported as HOST_UNREACHABLE). */
  async call<T>(fn: (c: Connection) => Promise<T>): Promise<T> {
    const c = await this.get();
    try {
      return await fn(c);
    } catch (e) {
      if (e instanceof LibvirtError && CONNECTION_LOST.has(e.code)) {
        this.drop(c, e.message);
        throw this.unreachable(e.message);
      }
      throw e;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.conn ?? (await this.connecting?.catch(() => undefined));
    this.conn = undefined;
    await c?.close();
  }

  private event(e: LibvirtEvent): void {
    if (e.type === "close" && this.conn) this.drop(this.conn, `connection closed (reason ${e.reason})`);
    this.onEvent(this.host.name, e);
  }

  private drop(c: Connection, why: string): void {
    if (this.conn !== c) return;
    this.conn = undefined;
    this.lastError = why;
    // Reconnect at the next call, without waiting: one drop is not yet a down host.
    this.retryAt = 0;
    void c.close().catch(() => undefined);
  }

  private unreachable(why: string): DriverError {
    return new DriverError(`libvirt host ${this.host.name} (${this.host.uri}) is unreachable: ${why}`, "HOST_UNREACHABLE", hostId(this.host.name));
  }
}
