import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/**
 * GET a URL and return its body as text. Used for /rrd_updates on each host: xen-api's getResource drops the
 * port when given a host (see notes/environment.md), and XAPI serves each host's RRDs from that host.
 */
export function httpGetText(url: URL, opts: { rejectUnauthorized: boolean; timeoutMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === "https:" ? httpsRequest : httpRequest)(
      url,
      { method: "GET", rejectUnauthorized: opts.rejectUnauthorized, timeout: opts.timeoutMs, headers: { accept: "application/json" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 299) reject(new Error(`GET ${url.pathname}: HTTP ${status}`));
          else resolve(Buffer.concat(chunks).toString("utf8"));
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${url.pathname}: no answer within ${opts.timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}
