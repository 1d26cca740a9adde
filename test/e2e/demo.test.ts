import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { parse, stringify } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { ballast, ROOT, startBallast } from "../helpers/cli.js";

/**
 * The README's first command, for real: the compiled daemon on the demo config (state moved to a temp
 * folder, HTTP on a free port), in real time.
 */
describe("ballast run on the demo cluster", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballast-e2e-"));
  const demo = parse(readFileSync(join(ROOT, "config/demo.yaml"), "utf8")) as Record<string, unknown>;
  const cfgFile = join(dir, "demo.yaml");
  writeFileSync(cfgFile, stringify({ ...demo, stateDir: join(dir, "state"), maintenanceDir: join(dir, "state/maintenance"), http: { listen: "127.0.0.1", port: 0 } }));
  const run = startBallast(["run", "--config", cfgFile]);
  afterAll(() => {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  let port = 0;
  const get = async (path: string): Promise<string> => (await fetch(`http://127.0.0.1:${port}${path}`)).text();
  const finished = (policy: string) => (l: string) => l.includes('"migration finished"') && l.includes(`"policy":"${policy}"`);

  it("completes a migration within 60 s that shows in /metrics, history and the SQLite file", async () => {
    const listening = await run.waitFor((l) => l.includes('"http listening"'), 15_000);
    port = (JSON.parse(listening) as { port: number }).port;
    await run.waitFor(finished("hotspot-relief"), 60_000);

    expect(await get("/metrics")).toMatch(/ballast_migrations_total\{policy="hotspot-relief",kind="[a-z-]+",outcome="succeeded"\} [1-9]/);
    const hist = ballast(["history", "--config", cfgFile, "--json"]);
    expect(hist.code).toBe(0);
    const parsed = JSON.parse(hist.stdout) as { migrations: { status: string; policy: string }[] };
    expect(parsed.migrations.some((m) => m.status === "succeeded" && m.policy === "hotspot-relief")).toBe(true);
    const db = new Database(join(dir, "state/ballast.db"), { readonly: true });
    const n = db.prepare("SELECT count(*) AS n FROM migrations WHERE status = 'succeeded'").get() as { n: number };
    db.close();
    expect(n.n).toBeGreaterThanOrEqual(1);
    expect(await get("/healthz")).toMatch(/^ok/);
  }, 90_000);

  it("touching a flag file drains that host one VM at a time; status reports progress", async () => {
    writeFileSync(join(dir, "state/maintenance/edge-h3"), "firmware\n");
    await run.waitFor((l) => l.includes('"maintenance flag set"') && l.includes("edge-h3"), 10_000);
    const deadline = Date.now() + 110_000;
    let left = -1;
    let last = "";
    while (Date.now() < deadline) {
      last = await get("/api/status");
      const status = JSON.parse(last) as { drains: { host: string; vmsLeft: number }[] };
      left = status.drains.find((d) => d.host === "edge-h3")?.vmsLeft ?? -1;
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    // On failure, the drain's blocked reasons and the last plan say why a VM stayed.
    const why = (JSON.parse(last) as { drains?: unknown; plan?: unknown; inFlight?: unknown }) ?? {};
    expect(left, JSON.stringify({ drains: why.drains, plan: why.plan, inFlight: why.inFlight })).toBe(0);
    const hist = JSON.parse(ballast(["history", "--config", cfgFile, "--json", "-n", "100"]).stdout) as {
      migrations: { from: string; policy: string; status: string; startedAt: number; finishedAt: number }[];
    };
    const drains = hist.migrations.filter((m) => m.policy === "maintenance-drain").reverse();
    expect(drains.length).toBeGreaterThan(0);
    for (const m of drains) expect(m.from).toBe("edge-h3");
    const all = [...hist.migrations].reverse();
    for (let i = 1; i < all.length; i++) expect(all[i]!.startedAt).toBeGreaterThanOrEqual(all[i - 1]!.finishedAt);
    expect(await get("/metrics")).toMatch(/ballast_drain_vms_remaining\{host="edge-h3"\} 0/);
  }, 150_000);

  it("stops cleanly on SIGTERM", async () => {
    const exited = new Promise<number | null>((resolve) => run.child.once("exit", (code) => resolve(code)));
    run.child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }, 60_000);
});
