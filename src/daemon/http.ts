import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface HttpRoutes {
  readonly registry: Registry;
  /** JSON for /api/status. */
  status(): unknown;
  /** The last sampled snapshot (DESIGN.md format), for `ballast snapshot` and `ballast plan` against a live daemon. */
  snapshot(): unknown;
  /** Healthy when the loop completed a round recently. */
  healthy(): { ok: boolean; detail: string };
}

function send(res: ServerResponse, code: number, type: string, body: string): void {
  res.writeHead(code, { "content-type": type, "cache-control": "no-store", "x-content-type-options": "nosniff" });
  res.end(body);
}

async function handle(routes: HttpRoutes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET, HEAD");
    return send(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
  }
  switch (path) {
    case "/metrics":
      return send(res, 200, routes.registry.contentType, await routes.registry.metrics());
    case "/healthz": {
      const h = routes.healthy();
      return send(res, h.ok ? 200 : 503, "text/plain; charset=utf-8", `${h.ok ? "ok" : "unhealthy"}: ${h.detail}\n`);
    }
    case "/api/status":
      return send(res, 200, "application/json; charset=utf-8", JSON.stringify(routes.status(), null, 2) + "\n");
    case "/api/snapshot": {
      const snap = routes.snapshot();
      if (snap === undefined) return send(res, 503, "text/plain; charset=utf-8", "no sample yet\n");
      return send(res, 200, "application/json; charset=utf-8", JSON.stringify(snap) + "\n");
    }
    default:
      return send(res, 404, "text/plain; charset=utf-8", "not found\n");
  }
}

/** Read-only HTTP surface; binds to loopback unless configured otherwise. */
export async function startHttp(routes: HttpRoutes, listen: string, port: number): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    handle(routes, req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", `internal error: ${String(e)}\n`);
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
