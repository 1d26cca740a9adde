import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { parse, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkConfigText } from "../../src/config/index.js";
import { adminAccess, loadAdminToken, startHttp, type AdminSettings, type HttpLog, type HttpRoutes } from "../../src/daemon/http.js";
import { ballast, ROOT, startBallast } from "../helpers/cli.js";

const TOKEN = "s3cret-token-0123456789abcdef";

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** A raw request: the path goes out exactly as given (no URL normalisation), the body as given. */
function call(port: number, method: string, path: string, opts: { token?: string; auth?: string; body?: string | Buffer; type?: string; chunked?: boolean } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    if (opts.auth !== undefined) headers.authorization = opts.auth;
    if (opts.type !== undefined) headers["content-type"] = opts.type;
    if (opts.body !== undefined && !opts.chunked) headers["content-length"] = String(Buffer.byteLength(opts.body));
    const req = request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

function captureLog(): HttpLog & { lines: string[] } {
  const lines: string[] = [];
  const rec = (obj: object, msg: string): void => void lines.push(JSON.stringify({ ...obj, msg }));
  return { lines, info: rec, warn: rec, error: rec };
}

const settings = (enabled: boolean, tokenFile?: string): AdminSettings => ({ http: { admin: { enabled, ...(tokenFile !== undefined && { tokenFile }) } } });

function baseRoutes(extra: Partial<HttpRoutes> = {}): HttpRoutes {
  return {
    registry: new Registry(),
    status: () => ({ ok: true }),
    snapshot: () => undefined,
    healthy: () => ({ ok: true, detail: "test" }),
    ...extra,
  };
}

describe("admin drain endpoint (in-process)", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballast-admin-"));
  const flagDir = join(dir, "state", "maintenance");
  const tokenFile = join(dir, "admin.token");
  writeFileSync(tokenFile, TOKEN + "\n", { mode: 0o600 });
  const log = captureLog();
  let current = settings(true, tokenFile);
  let on: Awaited<ReturnType<typeof startHttp>>;
  let off: Awaited<ReturnType<typeof startHttp>>;
  const listing = (): string[] => readdirSync(dir, { recursive: true }).map(String).sort();

  beforeAll(async () => {
    mkdirSync(flagDir, { recursive: true });
    on = await startHttp(baseRoutes({ log, admin: adminAccess(() => current, flagDir, log) }), "127.0.0.1", 0);
    off = await startHttp(baseRoutes({ admin: adminAccess(() => settings(false), flagDir) }), "127.0.0.1", 0);
  });
  afterAll(async () => {
    await on.close();
    await off.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is off by default: 404 on the drain path, 405 for other writes", async () => {
    expect(checkConfigText("sim: { cells: [{ name: c, hosts: 2 }] }\n", join(dir, "x.yaml"))).toMatchObject({ ok: true, config: { http: { admin: { enabled: false } } } });
    for (const method of ["POST", "DELETE", "GET"]) expect((await call(off.port, method, "/api/drain/edge-h1", { token: TOKEN })).status).toBe(404);
    const noAdmin = await startHttp(baseRoutes(), "127.0.0.1", 0);
    try {
      expect((await call(noAdmin.port, "POST", "/api/drain/edge-h1", { token: TOKEN })).status).toBe(404);
    } finally {
      await noAdmin.close();
    }
    for (const path of ["/api/status", "/metrics", "/"]) {
      const r = await call(on.port, "POST", path, { token: TOKEN, body: "x" });
      expect(r.status).toBe(405);
      expect(r.headers.allow).toBe("GET, HEAD");
    }
    expect(readdirSync(flagDir)).toEqual([]);
  });

  it("serves the status page with a nonce CSP, GET and HEAD only", async () => {
    const page = await call(on.port, "GET", "/");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    const csp = String(page.headers["content-security-policy"]);
    const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
    expect(csp).toMatch(/^default-src 'none'; .*connect-src 'self'/);
    expect(nonce).toBeDefined();
    expect(page.body).toContain(`<script nonce="${nonce}">`);
    expect(page.body).not.toMatch(/(src|href)=["']?(https?:)?\/\//i);
    const again = await call(on.port, "GET", "/");
    expect(again.headers["content-security-policy"]).not.toBe(csp);
    const head = await call(on.port, "HEAD", "/");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    expect((await call(on.port, "GET", "/api/imbalance")).status).toBe(404); // no history source wired here
  });

  it("drains and undrains with the right token", async () => {
    const r = await call(on.port, "POST", "/api/drain/edge-h1", { token: TOKEN, body: "firmware\nupdate\u0007", type: "text/plain" });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ host: "edge-h1", action: "drain", reason: "firmware update" });
    expect(readFileSync(join(flagDir, "edge-h1"), "utf8")).toBe("firmware update\n");

    const j = await call(on.port, "POST", "/api/drain/edge-h2", { auth: `bearer  ${TOKEN}`, body: JSON.stringify({ reason: "disk swap" }), type: "application/json" });
    expect(j.status).toBe(200);
    expect(readFileSync(join(flagDir, "edge-h2"), "utf8")).toBe("disk swap\n");
    const empty = await call(on.port, "POST", "/api/drain/edge-h3", { token: TOKEN });
    expect(empty.status).toBe(200);
    expect(readFileSync(join(flagDir, "edge-h3"), "utf8")).toBe("drained via the HTTP API\n");
    expect((await call(on.port, "POST", "/api/drain/edge-h4", { token: TOKEN, body: "[1]", type: "application/json" })).status).toBe(400);

    for (const host of ["edge-h1", "edge-h2", "edge-h3"]) {
      const d = await call(on.port, "DELETE", `/api/drain/${host}`, { token: TOKEN });
      expect(d.status).toBe(200);
      expect(JSON.parse(d.body)).toEqual({ host, action: "undrain", wasDraining: true });
    }
    expect(readdirSync(flagDir)).toEqual([]);
    expect(JSON.parse((await call(on.port, "DELETE", "/api/drain/edge-h1", { token: TOKEN })).body)).toMatchObject({ wasDraining: false });
    expect((await call(on.port, "GET", "/api/drain/edge-h1", { token: TOKEN })).status).toBe(405);
  });

  it("refuses a missing or wrong token with 401, and never logs the token", async () => {
    writeFileSync(join(flagDir, "edge-h9"), "kept\n");
    const cases: { token?: string; auth?: string }[] = [{}, { token: "wrong" }, { token: TOKEN.slice(0, -1) }, { token: TOKEN + "x" }, { auth: `Basic ${Buffer.from(`admin:${TOKEN}`).toString("base64")}` }, { auth: TOKEN }, { token: `${TOKEN} ${TOKEN}` }];
    for (const c of cases) {
      for (const method of ["POST", "DELETE"]) {
        const r = await call(on.port, method, "/api/drain/edge-h9", { ...c, body: "x" });
        expect(r.status, JSON.stringify(c)).toBe(401);
        expect(r.headers["www-authenticate"]).toMatch(/^Bearer/);
      }
    }
    expect(readFileSync(join(flagDir, "edge-h9"), "utf8")).toBe("kept\n");
    rmSync(join(flagDir, "edge-h9"));
    expect(log.lines.some((l) => l.includes("admin request refused"))).toBe(true);
    expect(log.lines.join("\n")).not.toContain(TOKEN);
    expect(log.lines.join("\n")).not.toContain(TOKEN.slice(0, 12));
  });

  it("rejects bad host names with 400 and writes nothing outside the flag directory", async () => {
    const before = listing();
    const names = ["../x", "..%2Fx", "%2e%2e%2fx", "a/b", "a%2Fb", "$(x)", "%24(x)", "..", ".", "", ".hidden", "-x", "a%00b", "x%20y", "%ZZ", "a".repeat(300), "h\u00e9"];
    for (const name of names) {
      for (const method of ["POST", "DELETE"]) {
        const r = await call(on.port, method, `/api/drain/${encodeURI(name).replace(/%25/g, "%")}`, { token: TOKEN, body: "x" });
        expect(r.status, `${method} ${name}`).toBe(400);
      }
    }
    expect(listing()).toEqual(before);
    expect(existsSync(join(dir, "state", "x"))).toBe(false);
    expect(readdirSync(flagDir)).toEqual([]);
  });

  it("refuses a body over 4 KiB with 413", async () => {
    const big = "r".repeat(4097);
    const r = await call(on.port, "POST", "/api/drain/edge-h1", { token: TOKEN, body: big });
    expect(r.status).toBe(413);
    const chunked = await call(on.port, "POST", "/api/drain/edge-h1", { token: TOKEN, body: "r".repeat(10_000), chunked: true });
    expect(chunked.status).toBe(413);
    expect(readdirSync(flagDir)).toEqual([]);
    const ok = await call(on.port, "POST", "/api/drain/edge-h1", { token: TOKEN, body: "r".repeat(4096) });
    expect(ok.status).toBe(200);
    rmSync(join(flagDir, "edge-h1"));
  });

  it("re-reads the token after a reload; an unreadable one refuses everything", async () => {
    const second = join(dir, "second.token");
    writeFileSync(second, "another-token-abcdefghijklmnop\n", { mode: 0o640 });
    current = settings(true, second);
    expect((await call(on.port, "POST", "/api/drain/edge-h1", { token: TOKEN })).status).toBe(401);
    expect((await call(on.port, "POST", "/api/drain/edge-h1", { token: "another-token-abcdefghijklmnop" })).status).toBe(200);
    expect((await call(on.port, "DELETE", "/api/drain/edge-h1", { token: "another-token-abcdefghijklmnop" })).status).toBe(200);

    current = settings(true, join(dir, "missing.token"));
    expect((await call(on.port, "POST", "/api/drain/edge-h1", { token: "another-token-abcdefghijklmnop" })).status).toBe(401);
    expect(log.lines.some((l) => l.includes("admin token unreadable after reload"))).toBe(true);

    current = settings(false);
    expect((await call(on.port, "POST", "/api/drain/edge-h1", { token: TOKEN })).status).toBe(404);
    current = settings(true, tokenFile);
    expect((await call(on.port, "DELETE", "/api/drain/edge-h1", { token: TOKEN })).status).toBe(200);
    expect(readdirSync(flagDir)).toEqual([]);
  });

  it("token files: at least 16 characters, not accessible to others, never echoed in errors", () => {
    const f = join(dir, "t.token");
    writeFileSync(f, "short\n", { mode: 0o600 });
    expect(() => loadAdminToken(f)).toThrow(/at least 16 characters/);
    writeFileSync(f, "world-readable-token-123456\n");
    chmodSync(f, 0o644);
    expect(() => loadAdminToken(f)).toThrow(/accessible to other users/);
    chmodSync(f, 0o600);
    expect(loadAdminToken(f)).toHaveLength(32);
    writeFileSync(f, "has space in the token value\n");
    expect(() => loadAdminToken(f)).toThrow(/printable ASCII/);
    try {
      loadAdminToken(f);
    } catch (e) {
      expect((e as Error).message).not.toContain("space in the");
    }
  });

  it("config: tokenFile required when enabled, resolved against the config file's directory", () => {
    const base = "sim: { cells: [{ name: c, hosts: 2 }] }\n";
    const bad = checkConfigText(base + "http: { admin: { enabled: true } }\n", join(dir, "c.yaml"));
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors.map((e) => `${e.path}: ${e.message}`).join("\n")).toMatch(/http\.admin\.tokenFile: .*token file/);
    const good = checkConfigText(base + "http: { admin: { enabled: true, tokenFile: secrets/admin.token } }\n", join(dir, "c.yaml"));
    expect(good.ok && good.config.http.admin.tokenFile).toBe(join(dir, "secrets/admin.token"));
  });
});

describe("admin drain endpoint on the real daemon", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballast-admin-run-"));
  const flagDir = join(dir, "state/maintenance");
  const tokenFile = join(dir, "admin.token");
  const demo = parse(readFileSync(join(ROOT, "config/demo.yaml"), "utf8")) as Record<string, unknown>;
  const cfg = (admin: object): string => {
    const file = join(dir, "demo.yaml");
    writeFileSync(file, stringify({ ...demo, stateDir: join(dir, "state"), maintenanceDir: flagDir, http: { listen: "127.0.0.1", port: 0, admin } }));
    return file;
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses to start when the token file is unreadable (exit 78, no token in the message)", () => {
    const r = ballast(["run", "--config", cfg({ enabled: true, tokenFile: "missing.token" })]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/http\.admin\.tokenFile: .*missing\.token/);
  });

  it("a drain posted over HTTP is picked up by the daemon", async () => {
    writeFileSync(tokenFile, TOKEN + "\n", { mode: 0o600 });
    const run = startBallast(["run", "--config", cfg({ enabled: true, tokenFile: "admin.token" })]);
    try {
      const port = (JSON.parse(await run.waitFor((l) => l.includes('"http listening"'), 15_000)) as { port: number }).port;
      expect((await call(port, "POST", "/api/drain/edge-h4", { token: "nope" })).status).toBe(401);
      const r = await call(port, "POST", "/api/drain/edge-h4", { token: TOKEN, body: "rack move" });
      expect(r.status).toBe(200);
      await run.waitFor((l) => l.includes('"maintenance flag set"') && l.includes("edge-h4") && l.includes("rack move"), 15_000);
      expect((await call(port, "DELETE", "/api/drain/edge-h4", { token: TOKEN })).status).toBe(200);
      await run.waitFor((l) => l.includes('"maintenance flag cleared"') && l.includes("edge-h4"), 15_000);
      expect(run.lines.some((l) => l.includes('"admin drain"'))).toBe(true);
      expect(run.lines.join("\n")).not.toContain(TOKEN);
    } finally {
      const exited = new Promise((resolve) => run.child.once("exit", resolve));
      run.child.kill("SIGTERM");
      await exited;
    }
  }, 60_000);
});
