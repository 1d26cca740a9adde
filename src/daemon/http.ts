import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { constants, fstatSync, openSync, readSync, closeSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { clearFlag, sanitizeReason, setFlag, validFlagName } from "./flags.js";
import { statusPage } from "./status-page.js";

/** Admin actions (POST/DELETE /api/drain/<host>) as currently configured. */
export interface AdminAccess {
  /** The maintenance flag directory drains are written to. */
  readonly flagDir: string;
  /** SHA-256 of the bearer token; undefined when the token could not be read (every request is then refused). */
  readonly tokenDigest: Buffer | undefined;
}

/** Where the HTTP layer reports admin actions and refusals; the token is never passed here. */
export interface HttpLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface HttpRoutes {
  readonly registry: Registry;
  /** JSON for /api/status. */
  status(): unknown;
  /** The last sampled snapshot (DESIGN.md format), for `ballast snapshot` and `ballast plan` against a live daemon. */
  snapshot(): unknown;
  /** Healthy when the loop completed a round recently. */
  healthy(): { ok: boolean; detail: string };
  /** Per-cell imbalance over the last `minutes` minutes, for the status page's chart (/api/imbalance). */
  imbalance?(minutes: number): unknown;
  /** Read on every request so a reload takes effect; undefined (or absent) turns the admin endpoint off (404). */
  admin?(): AdminAccess | undefined;
  readonly log?: HttpLog;
}

/** Largest accepted body of POST /api/drain/<host> (the reason). */
export const MAX_ADMIN_BODY_BYTES = 4096;
/** Largest token file read; a token is one line. */
const MAX_TOKEN_FILE_BYTES = 4096;
const MIN_TOKEN_CHARS = 16;
const DRAIN_PREFIX = "/api/drain/";
const TEXT = "text/plain; charset=utf-8";
const JSON_TYPE = "application/json; charset=utf-8";

const digest = (s: string | Buffer): Buffer => createHash("sha256").update(s).digest();

/**
 * Reads the admin bearer token: a regular file, not readable or writable by others, whose first line
 * (trimmed) is at least 16 characters. Returns its SHA-256; throws with a message that never contains the token.
 */
export function loadAdminToken(file: string): Buffer {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`admin token file ${file} is not a regular file`);
    if ((st.mode & 0o007) !== 0) throw new Error(`admin token file ${file} is accessible to other users (mode ${(st.mode & 0o777).toString(8)}); chmod o-rwx it`);
    const buf = Buffer.alloc(MAX_TOKEN_FILE_BYTES);
    const n = readSync(fd, buf, 0, MAX_TOKEN_FILE_BYTES, 0);
    const token = (buf.subarray(0, n).toString("utf8").split(/\r?\n/)[0] ?? "").trim();
    if (token.length < MIN_TOKEN_CHARS) throw new Error(`admin token file ${file}: expected a token of at least ${MIN_TOKEN_CHARS} characters on its first line`);
    if (!/^[\x21-\x7e]+$/.test(token)) throw new Error(`admin token file ${file}: expected printable ASCII without spaces`);
    return digest(token);
  } finally {
    closeSync(fd);
  }
}

/** The part of the config the admin endpoint reads. */
export interface AdminSettings {
  readonly http: { readonly admin: { readonly enabled: boolean; readonly tokenFile?: string | undefined } };
}

function accessFor(c: AdminSettings, flagDir: string): AdminAccess | undefined {
  const a = c.http.admin;
  if (!a.enabled) return undefined;
  if (a.tokenFile === undefined) throw new Error("http.admin.enabled needs http.admin.tokenFile");
  return { flagDir, tokenDigest: loadAdminToken(a.tokenFile) };
}

/**
 * The admin settings of the current config: the token file is read now (throws when enabled and unreadable,
 * so the daemon refuses to start) and again whenever `current()` returns a new config (a reload). A token
 * file unreadable after a reload leaves the endpoint on but refusing every request until the next reload.
 */
export function adminAccess(current: () => AdminSettings, flagDir: string, log?: HttpLog): () => AdminAccess | undefined {
  let seen = current();
  let access = accessFor(seen, flagDir);
  return () => {
    const c = current();
    if (c !== seen) {
      seen = c;
      try {
        access = accessFor(c, flagDir);
      } catch (e) {
        access = { flagDir, tokenDigest: undefined };
        log?.error({ err: (e as Error).message }, "admin token unreadable after reload; admin requests are refused until the next reload");
      }
    }
    return access;
  };
}

const SECURITY_HEADERS = { "cache-control": "no-store", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer" } as const;

function send(res: ServerResponse, code: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(code, { "content-type": type, ...SECURITY_HEADERS, ...extra });
  res.end(body);
}

const sendJson = (res: ServerResponse, code: number, value: unknown, extra: Record<string, string> = {}): void =>
  send(res, code, JSON_TYPE, JSON.stringify(value) + "\n", extra);

function sendPage(res: ServerResponse): void {
  const nonce = randomBytes(18).toString("base64");
  send(res, 200, "text/html; charset=utf-8", statusPage(nonce), {
    "content-security-policy": [
      "default-src 'none'",
      `script-src 'nonce-${nonce}'`,
      `style-src 'nonce-${nonce}'`,
      "connect-src 'self'",
      "img-src data:",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join("; "),
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
  });
}

/** True when the request carries `Authorization: Bearer <token>` matching the digest (constant time). */
function authorized(req: IncomingMessage, tokenDigest: Buffer | undefined): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? "");
  // Always hash and compare, so a missing header costs the same as a wrong one.
  const given = digest(m?.[1] ?? "");
  const expected = tokenDigest ?? digest(randomBytes(32));
  return timingSafeEqual(given, expected) && m !== null && tokenDigest !== undefined;
}

class BodyTooLarge extends Error {}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) throw new BodyTooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The reason for a drain: `{"reason": "..."}` as JSON, otherwise the body as text; one printable line. */
function reasonFrom(req: IncomingMessage, body: Buffer): string | undefined {
  if (body.length === 0) return "";
  if (/^application\/json\b/i.test(req.headers["content-type"] ?? "")) {
    try {
      const v = JSON.parse(body.toString("utf8")) as unknown;
      if (v === null || typeof v !== "object" || Array.isArray(v)) return undefined;
      const r = (v as { reason?: unknown }).reason;
      if (r === undefined) return "";
      return typeof r === "string" ? sanitizeReason(Buffer.from(r, "utf8")) : undefined;
    } catch {
      return undefined;
    }
  }
  return sanitizeReason(body);
}

/** Serialises admin writes: two requests for one host must not race on setFlag's temporary file. */
let adminQueue: Promise<unknown> = Promise.resolve();
const serialised = <T>(fn: () => Promise<T>): Promise<T> => {
  const next = adminQueue.then(fn, fn);
  adminQueue = next.catch(() => undefined);
  return next;
};

async function handleAdmin(routes: HttpRoutes, access: AdminAccess, rest: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const remote = req.socket.remoteAddress ?? "?";
  if (req.method !== "POST" && req.method !== "DELETE") {
    req.resume();
    return send(res, 405, TEXT, "method not allowed: POST to drain, DELETE to undrain\n", { allow: "POST, DELETE" });
  }
  if (!authorized(req, access.tokenDigest)) {
    req.resume();
    routes.log?.warn({ remote, method: req.method, path: DRAIN_PREFIX + rest.slice(0, 100), why: req.headers.authorization ? "wrong token" : "no token" }, "admin request refused");
    const detail = access.tokenDigest === undefined ? "admin token unavailable (see the daemon log)" : "a valid bearer token is required";
    return send(res, 401, TEXT, `unauthorized: ${detail}\n`, { "www-authenticate": 'Bearer realm="ballast"' });
  }
  let host: string;
  try {
    host = decodeURIComponent(rest);
  } catch {
    host = rest;
  }
  if (!validFlagName(host)) {
    req.resume();
    return sendJson(res, 400, { error: "invalid host name: expected letters, digits, '.', '_' or '-' (starting with a letter or digit)" });
  }
  if (req.method === "DELETE") {
    req.resume();
    const removed = await serialised(() => clearFlag(access.flagDir, host));
    routes.log?.info({ remote, host, action: "undrain", changed: removed }, "admin undrain");
    return sendJson(res, 200, { host, action: "undrain", wasDraining: removed });
  }
  let body: Buffer;
  try {
    body = await readBody(req, MAX_ADMIN_BODY_BYTES);
  } catch (e) {
    if (!(e instanceof BodyTooLarge)) throw e;
    req.resume();
    return send(res, 413, TEXT, `request body too large: at most ${MAX_ADMIN_BODY_BYTES} bytes\n`, { connection: "close" });
  }
  const reason = reasonFrom(req, body);
  if (reason === undefined) return sendJson(res, 400, { error: 'invalid JSON body: expected {"reason": "<text>"}' });
  const text = reason || "drained via the HTTP API";
  await serialised(() => setFlag(access.flagDir, host, text));
  routes.log?.info({ remote, host, action: "drain", reason: text }, "admin drain");
  return sendJson(res, 200, { host, action: "drain", reason: text });
}

async function handle(routes: HttpRoutes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  if (path.startsWith(DRAIN_PREFIX)) {
    const access = routes.admin?.();
    if (access) return handleAdmin(routes, access, path.slice(DRAIN_PREFIX.length), req, res);
    req.resume();
    return send(res, 404, TEXT, "not found\n");
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    req.resume();
    return send(res, 405, TEXT, "method not allowed\n", { allow: "GET, HEAD" });
  }
  switch (path) {
    case "/":
      return sendPage(res);
    case "/metrics":
      return send(res, 200, routes.registry.contentType, await routes.registry.metrics());
    case "/healthz": {
      const h = routes.healthy();
      return send(res, h.ok ? 200 : 503, TEXT, `${h.ok ? "ok" : "unhealthy"}: ${h.detail}\n`);
    }
    case "/api/status":
      return send(res, 200, JSON_TYPE, JSON.stringify(routes.status(), null, 2) + "\n");
    case "/api/imbalance": {
      if (!routes.imbalance) return send(res, 404, TEXT, "not found\n");
      const minutes = Number(new URLSearchParams(q < 0 ? "" : url.slice(q + 1)).get("minutes") ?? "60");
      if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 7 * 24 * 60) return send(res, 400, TEXT, "minutes: expected a number from 1 to 10080\n");
      return sendJson(res, 200, routes.imbalance(minutes));
    }
    case "/api/snapshot": {
      const snap = routes.snapshot();
      if (snap === undefined) return send(res, 503, TEXT, "no sample yet\n");
      return send(res, 200, JSON_TYPE, JSON.stringify(snap) + "\n");
    }
    default:
      return send(res, 404, TEXT, "not found\n");
  }
}

/**
 * The HTTP surface: read-only GET/HEAD endpoints plus, when configured, the admin drain endpoint.
 * Binds to loopback unless configured otherwise.
 */
export async function startHttp(routes: HttpRoutes, listen: string, port: number): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    handle(routes, req, res).catch((e: unknown) => {
      routes.log?.warn({ err: String(e), method: req.method }, "http request failed");
      if (!res.headersSent) send(res, 500, TEXT, "internal error\n");
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, listen, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
