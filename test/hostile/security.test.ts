import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { checkConfig } from "../../src/config/index.js";
import { startDaemon, type RunningDaemon } from "../../src/daemon/service.js";
import { VirtualClock } from "../../src/util/clock.js";
import { ballast, startBallast } from "../helpers/cli.js";

/**
 * The sim-side of issue 8's security list: HTTP on loopback by default, admin mutations only with the
 * token, state files private whatever the umask, and credential file contents never in any output. The
 * credential test points a libvirt (ssh) and a XenServer config at marked files, so it covers those drivers
 * as they land: whatever they print must not contain the marker.
 */

const dir = mkdtempSync(join(tmpdir(), "ballast-hostile-security-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);

/** Writes `<dir>/<name>.yaml` with its state in `<dir>/<name>-state`; returns the file's path. */
function config(name: string, body: object): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ stateDir: join(dir, `${name}-state`), ...body }));
  return file;
}

interface Reply {
  readonly status: number;
  readonly body: string;
}

function call(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString("utf8")));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const canConnect = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect({ host, port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });

describe("the daemon's HTTP surface and state files (in process, umask 000)", () => {
  const TOKEN = "s3cret-token-0123456789abcdef";
  const tokenFile = join(dir, "admin.token");
  let running: RunningDaemon;
  let port: number;
  let stateDir: string;
  let savedUmask: number;

  beforeAll(async () => {
    writeFileSync(tokenFile, `${TOKEN}\n`);
    chmodSync(tokenFile, 0o600);
    // http.listen is not set: the default must be loopback. Port 0: any free one.
    const file = config("daemon", { http: { port: 0, admin: { enabled: true, tokenFile } }, sim: { cells: [{ name: "a", hosts: 3, vmsPerHost: 2 }] } });
    const checked = checkConfig(file);
    if (!checked.ok) throw new Error(JSON.stringify(checked.errors));
    stateDir = checked.config.stateDir;
    // A careless umask must not make the history or the lock readable by others.
    savedUmask = process.umask(0);
    running = await startDaemon({ configFile: file, config: checked.config, log: pino({ level: "silent" }), clock: new VirtualClock(), schedule: false });
    port = running.httpPort ?? 0;
    await running.daemon.trigger("test");
  });

  afterAll(async () => {
    await running.stop();
    process.umask(savedUmask);
  });

  it("listens on 127.0.0.1 only, by default", async () => {
    expect(await canConnect("127.0.0.1", port)).toBe(true);
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i !== undefined && !i.internal && i.family === "IPv4");
    // A machine with only loopback has no other address to try; CI containers have one.
    if (external) expect(await canConnect(external.address, port)).toBe(false);
  });

  it.each([
    ["no Authorization header", {}],
    ["a wrong token", { authorization: "Bearer wrong-token-0123456789abcdef" }],
    ["the token with one character more", { authorization: `Bearer ${TOKEN}x` }],
    ["a prefix of the token", { authorization: `Bearer ${TOKEN.slice(0, 16)}` }],
    ["the token as Basic credentials", { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString("base64")}` }],
    ["the token in a cookie", { cookie: `token=${TOKEN}` }],
  ])("a drain with %s is refused (401) and writes no flag", async (_what, headers) => {
    const r = await call(port, "POST", "/api/drain/a-h1", headers);
    expect(r.status).toBe(401);
    expect(r.body).not.toContain(TOKEN);
    expect(readdirSync(join(stateDir, "maintenance"))).toEqual([]);
    expect((await call(port, "POST", `/api/drain/a-h1?token=${TOKEN}`)).status).toBe(401);
  });

  it("with the token, the drain is written (the control for the refusals above)", async () => {
    const r = await call(port, "POST", "/api/drain/a-h2", { authorization: `Bearer ${TOKEN}` });
    expect(r.status, r.body).toBe(200);
    expect(readdirSync(join(stateDir, "maintenance"))).toEqual(["a-h2"]);
    expect((await call(port, "DELETE", "/api/drain/a-h2", { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
  });

  it("state directory 0700; database, WAL, shared memory and lock files 0600, whatever the umask", () => {
    expect(mode(stateDir)).toBe("700");
    const files = readdirSync(stateDir).filter((f) => f !== "maintenance").sort();
    expect(files).toEqual(["ballast.db", "ballast.db-shm", "ballast.db-wal", "ballast.pid"]);
    for (const f of files) expect(`${f} ${mode(join(stateDir, f))}`).toBe(`${f} 600`);
    // Flags are meant to be written by operators of the ballast group: group may read, others nothing.
    expect(Number.parseInt(mode(join(stateDir, "maintenance")), 8) & 0o007).toBe(0);
  });
});

describe("directories others can write are refused", () => {
  it.each([
    ["stateDir", "replace the history database or the lock"],
    ["maintenanceDir", "drain any host"],
  ])("a world-writable %s: `ballast run` exits 78 naming it, and nothing is started", (field, risk) => {
    const writable = join(dir, `writable-${field}`);
    mkdirSync(writable, { recursive: true });
    chmodSync(writable, 0o777);
    const body = field === "stateDir" ? { stateDir: writable } : { maintenanceDir: writable };
    const file = config(`writable-${field}`, { ...body, http: { enabled: false }, sim: { cells: [{ name: "a", hosts: 2 }] } });
    const r = ballast(["run", "--config", file]);
    expect(r.code, r.stderr).toBe(78);
    expect(r.stderr).toContain(`${field}: ${writable} is writable by every user (mode 777), so anyone could ${risk}`);
    expect(readdirSync(writable)).toEqual([]);
  });
});

describe("credential files never reach any output", () => {
  const MARKER = "MARKER-7f3c9e-do-not-log";
  const key = join(dir, "id_ed25519");
  const creds = join(dir, "xen.credentials");
  const token = join(dir, "marked.token");

  beforeAll(() => {
    writeFileSync(key, `-----BEGIN OPENSSH PRIVATE KEY-----\n${MARKER}\n-----END OPENSSH PRIVATE KEY-----\n`);
    writeFileSync(creds, `root:${MARKER}\n`);
    writeFileSync(token, `${MARKER}-token-0123456789\n`);
    for (const f of [key, creds, token]) chmodSync(f, 0o600);
  });

  const configs = (): Record<string, string> => ({
    libvirt: config("libvirt", {
      http: { port: 0, admin: { enabled: true, tokenFile: token } },
      logLevel: "trace",
      libvirt: {
        hosts: [{ name: "kvm1", uri: "qemu+ssh://ballast@127.0.0.1:1/system", ssh: { privateKeyFile: key, port: 1, hostKeys: ["SHA256:6fUW319uiW2dZJoUeb0fJlxECw6QzOYUJQ/MT1wMg50"] } }],
      },
    }),
    xenserver: config("xen", {
      http: { port: 0 },
      logLevel: "trace",
      xenserver: { pools: [{ name: "pool1", url: "https://127.0.0.1:1", credentialsFile: creds }] },
    }),
    sim: config("sim-admin", { http: { port: 0, admin: { enabled: true, tokenFile: token } }, logLevel: "trace", sim: { cells: [{ name: "a", hosts: 2 }] } }),
  });

  it.each(["libvirt", "xenserver", "sim"])("%s: check-config and a short run print nothing of the files", async (name) => {
    const file = configs()[name] ?? "";
    const check = ballast(["check-config", "--config", file]);
    expect(`${check.stdout}${check.stderr}`).not.toContain(MARKER);
    const run = startBallast(["run", "--config", file]);
    // Until it is up (or has given up: an unreachable hypervisor), then a clean stop.
    const up = run.waitFor((l) => /"msg":"(ready \(first sample taken\)|round failed)"/.test(l), 20_000).then(
      () => true,
      () => false,
    );
    const exited = await Promise.race([run.exited.then(() => true), up.then(() => false)]);
    if (!exited) {
      run.child.kill("SIGTERM");
      await run.exited;
    }
    const out = `${run.lines.join("\n")}\n${run.stderr()}`;
    expect(out.length).toBeGreaterThan(0);
    expect(out).not.toContain(MARKER);
  }, 60_000);
});
