/**
 * HTTP side: one listener per simulated host address (127.0.p.h, one shared port), JSON-RPC at /jsonrpc,
 * XML-RPC at /xmlrpc (and at /, as XAPI), and GET /rrd_updates. Content types are exactly the strings the
 * client compares against ("application/json", "text/xml"): anything else makes it switch transport.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Transport } from "./index.js";
import { asFault, type XapiFault } from "./errors.js";
import type { XValue } from "./values.js";
import { toJson } from "./values.js";
import { formatFailure, formatSuccess, parseMethodCall } from "./xml-rpc.js";

const CLOSE_GRACE_MS = 50;

export interface Endpoint {
  readonly address: string;
  readonly pool: string;
  readonly host: string;
}

export interface RpcRequest {
  readonly endpoint: Endpoint;
  readonly transport: Transport;
  readonly method: string;
  readonly args: unknown[];
  readonly signal: AbortSignal;
}

export interface Handlers {
  /** Whether this call's connection must be destroyed without an answer. */
  drop(req: Omit<RpcRequest, "signal">): boolean;
  rpc(req: RpcRequest): Promise<XValue>;
  /** Answers a GET resource (e.g. /rrd_updates): status, content type, body. */
  resource(endpoint: Endpoint, path: string, query: URLSearchParams): { status: number; type: string; body: string };
}

export class SimServer {
  private readonly servers: Server[] = [];
  private readonly inflight = new Set<AbortController>();
  private readonly answering = new Set<Promise<void>>();
  port = 0;

  constructor(
    private readonly endpoints: readonly Endpoint[],
    private readonly handlers: Handlers,
  ) {}

  /** Binds every endpoint on one port; retries with a new port if another process holds it on some address. */
  async listen(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        for (const [i, ep] of this.endpoints.entries()) {
          const server = createServer((req, res) => this.handle(ep, req, res));
          server.keepAliveTimeout = 65_000; // longer than the client's event.from long-poll round trip
          this.servers.push(server);
          await new Promise<void>((resolve, reject) => {
            server.once("error", reject);
            server.listen(i === 0 ? 0 : this.port, ep.address, () => {
              server.off("error", reject);
              resolve();
            });
          });
          if (i === 0) this.port = (server.address() as { port: number }).port;
        }
        return;
      } catch (e) {
        await this.close();
        if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt >= 5) throw e;
      }
    }
  }

  /**
   * Answers pending long-polls (empty batch) and waits for in-flight answers, then destroys every connection:
   * a pending long-poll would otherwise hold close() for a minute, and a client cut mid-poll logs errors.
   */
  async close(): Promise<void> {
    // Twice, a moment apart: a client that just got its answer may send one more poll before it parks.
    for (let round = 0; round < 2; round++) {
      for (const c of this.inflight) c.abort();
      await Promise.allSettled([...this.answering]);
      if (round === 0) await new Promise((r) => setTimeout(r, CLOSE_GRACE_MS));
    }
    const servers = this.servers.splice(0);
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }

  private handle(ep: Endpoint, req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://sim");
    if (req.method === "GET") {
      let r: { status: number; type: string; body: string };
      try {
        r = this.handlers.resource(ep, url.pathname, url.searchParams);
      } catch (e) {
        r = { status: 500, type: "text/html", body: `<html><body><h1>HTTP 500 internal server error</h1>${String(e)}</body></html>` };
      }
      res.writeHead(r.status, { "content-type": r.type }).end(r.body);
      return;
    }
    const transport: Transport | undefined =
      url.pathname === "/jsonrpc" ? "json-rpc" : url.pathname === "/xmlrpc" || url.pathname === "/" ? "xml-rpc" : undefined;
    if (req.method !== "POST" || transport === undefined) {
      res.writeHead(404, { "content-type": "text/html" }).end("<html><body><h1>HTTP 404 not found</h1></body></html>");
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const answer = this.answer(ep, transport, Buffer.concat(chunks).toString("utf8"), req, res);
      this.answering.add(answer);
      const settled = (): void => void this.answering.delete(answer);
      answer.then(settled, settled);
    });
  }

  private async answer(ep: Endpoint, transport: Transport, body: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    let method: string;
    let args: unknown[];
    let id: unknown = null;
    let v2 = false;
    try {
      if (transport === "json-rpc") {
        const msg = JSON.parse(body) as { jsonrpc?: unknown; method?: unknown; params?: unknown; id?: unknown };
        if (typeof msg.method !== "string" || !Array.isArray(msg.params)) throw new Error("Jsonrpc.Malformed_method_request");
        ({ method } = msg as { method: string });
        args = msg.params as unknown[];
        id = msg.id ?? null;
        v2 = msg.jsonrpc === "2.0";
      } else {
        ({ method, params: args } = parseMethodCall(body));
      }
    } catch (e) {
      // XAPI answers malformed requests with an HTML 500.
      res.writeHead(500, { "content-type": "text/html" }).end(`<html><body><h1>HTTP 500 internal server error</h1>${String(e)}</body></html>`);
      return;
    }
    if (this.handlers.drop({ endpoint: ep, transport, method, args })) {
      req.socket.destroy();
      return;
    }

    const controller = new AbortController();
    this.inflight.add(controller);
    res.on("close", () => controller.abort());
    let result: { value: XValue } | { error: XapiFault };
    try {
      result = { value: await this.handlers.rpc({ endpoint: ep, transport, method, args, signal: controller.signal }) };
    } catch (e) {
      result = { error: asFault(e) };
    } finally {
      this.inflight.delete(controller);
    }
    if (res.destroyed) return;

    if (transport === "xml-rpc") {
      const xml = "value" in result ? formatSuccess(result.value) : formatFailure(result.error.code, result.error.params);
      res.writeHead(200, { "content-type": "text/xml" }).end(xml);
      return;
    }
    const payload =
      "value" in result
        ? v2
          ? { jsonrpc: "2.0", result: toJson(result.value), id }
          : { result: toJson(result.value), error: null, id }
        : v2
          ? { jsonrpc: "2.0", error: { code: 1, message: result.error.code, data: result.error.params }, id }
          : { result: null, error: [result.error.code, ...result.error.params], id };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(payload));
  }
}
