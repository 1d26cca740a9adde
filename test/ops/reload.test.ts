import { afterAll, describe, expect, it } from "vitest";
import { demoConfig, history, httpPort, killIfRunning, msg, runDaemon, type Daemon } from "./helpers.js";

/**
 * SIGHUP with the real process: a valid file applies (visible in /api/status and as a config-reloaded
 * event); an invalid one is refused with its errors logged, recorded as config-rejected, and the daemon
 * keeps running on the previous configuration.
 */
describe("reload on SIGHUP", () => {
  const cfg = demoConfig("reload", { schedule: "*/2 * * * * *", sim: { hotHosts: [] } });
  let d: Daemon | undefined;
  afterAll(() => {
    killIfRunning(d);
    cfg.cleanup();
  });

  const status = async (port: number) => (await (await fetch(`http://127.0.0.1:${port}/api/status`)).json()) as { roundsRun: number; thresholds: { cpuHigh: number; cpuLow: number } };
  const thresholds = async (port: number) => (await status(port)).thresholds;

  it("applies a valid configuration, refuses an invalid one and keeps the last good one", async () => {
    d = runDaemon(["run", "--config", cfg.file]);
    const port = await httpPort(d);
    await d.waitFor(msg("ready (first sample taken)"), 15_000);
    expect((await thresholds(port)).cpuHigh).toBe(0.85);

    // Valid: a new high-water mark.
    cfg.write({ thresholds: { cpuHigh: 0.92 } }); // cfg.config (the original) with this laid over it
    d.child.kill("SIGHUP");
    await d.waitFor(msg("config reloaded"), 5000);
    expect(await thresholds(port)).toMatchObject({ cpuHigh: 0.92, cpuLow: 0.7 });

    // Invalid: YAML that does not parse, then a value out of range; neither replaces the running config.
    cfg.write("thresholds: [unclosed\n");
    d.child.kill("SIGHUP");
    const refused = await d.waitFor(msg("config reload refused; keeping the running config"), 5000);
    expect((JSON.parse(refused) as { errors: string[] }).errors.length).toBeGreaterThan(0);
    cfg.write({ thresholds: { cpuHigh: 1.5 } });
    d.child.kill("SIGHUP");
    await d.waitFor((l) => msg("config reload refused; keeping the running config")(l) && l.includes("cpuHigh"), 5000);

    expect(d.child.exitCode).toBeNull();
    expect((await thresholds(port)).cpuHigh).toBe(0.92);
    // Rounds keep running on the kept configuration after the refusals.
    const rounds = (await status(port)).roundsRun;
    const deadline = Date.now() + 10_000;
    while ((await status(port)).roundsRun <= rounds && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect((await status(port)).roundsRun).toBeGreaterThan(rounds);
    cfg.write({ thresholds: { cpuHigh: 0.92 } }); // `ballast history` itself needs a valid file
    const h = history(cfg.file);
    const kinds = h.events.map((e) => e.kind);
    expect(kinds).toContain("config-reloaded");
    expect(kinds.filter((k) => k === "config-rejected")).toHaveLength(2);
    const rejected = h.events.find((e) => e.kind === "config-rejected");
    expect(rejected?.message).toMatch(/cpuHigh/);

    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
  }, 45_000);
});
