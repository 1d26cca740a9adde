/** The part of xen-api 4.7 (Xen Orchestra's XAPI client) that src/drivers/xenserver uses. */
declare module "xen-api" {
  import type { EventEmitter } from "node:events";

  export interface XapiOptions {
    url: string;
    auth: { user: string; password: string };
    allowUnauthorized?: boolean;
    /** "auto" tries JSON-RPC, then XML-RPC when the JSON reply has another content type. */
    transport?: "auto" | "json-rpc" | "xml-rpc";
    /** Delay before retrying a failed event.from (ms, default 60 s). */
    eventPollDelay?: number;
    /** Delay between two event.from calls (ms, default 200). */
    debounce?: number;
    /** Per-call timeout (ms). */
    callTimeout?: number;
    httpInactivityTimeout?: number;
    roCallRetryOptions?: { delay?: number; tries?: number };
    watchEvents?: boolean | string[];
  }

  /** A cached XAPI record: the record's fields plus $ref, $type and $id (uuid or ref). */
  export interface XapiObject {
    readonly $ref: string;
    readonly $type: string;
    readonly $id: string;
    readonly [field: string]: unknown;
  }

  export interface XapiObjects {
    /** Every cached object by $id. */
    readonly all: Readonly<Record<string, XapiObject>>;
  }

  export class Xapi extends EventEmitter {
    constructor(opts: XapiOptions);
    readonly status: "connected" | "connecting" | "disconnected";
    readonly objects: XapiObjects;
    /** Resolves once the first full fetch of every record type is in the cache. */
    readonly objectsFetched: Promise<void>;
    readonly pool: XapiObject | null;
    readonly sessionId: string;
    /** The last event.from failure, cleared by the next success. */
    readonly watchEventsError: unknown;
    connect(): Promise<void>;
    disconnect(): Promise<void>;
    call(method: string, ...args: unknown[]): Promise<unknown>;
    watchTask(ref: string): Promise<unknown>;
    /** Resolves once every event up to this call is in the cache (round trip through pool.other_config). */
    barrier(): Promise<void>;
    getObjectByRef(ref: string): XapiObject;
    getObjectByRef<T>(ref: string, defaultValue: T): XapiObject | T;
    getResource(
      pathname: string,
      opts?: { host?: XapiObject; query?: Record<string, string>; task?: boolean },
    ): Promise<{ statusCode: number; body: { text(): Promise<string> } }>;
  }

  export function createClient(opts: XapiOptions): Xapi;
}
