import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { parse, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, startBallast } from "../helpers/cli.js";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = join(ROOT, "test-output", "status-page.png");

/** Chromium may still be installing (CI installs it in the background): wait for it, then fail, never skip. */
async function waitForChromium(maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!existsSync(CHROMIUM)) {
    if (Date.now() >= deadline) throw new Error(`${CHROMIUM} not found after ${maxMs / 1000} s: install the Debian package 'chromium' (scripts/test-deps.sh)`);
    await new Promise((r) => setTimeout(r, 20_000));
  }
}

/**
 * The status page end to end: the compiled daemon on the demo cluster, a host drained through its flag
 * file, and the page loaded in headless Chromium (Debian's, driven by playwright-core).
 */
describe("status page in headless Chromium", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballast-page-"));
  const flagDir = join(dir, "state/maintenance");
  const demo = parse(readFileSync(join(ROOT, "config/demo.yaml"), "utf8")) as Record<string, unknown>;
  const cfgFile = join(dir, "demo.yaml");
  writeFileSync(cfgFile, stringify({ ...demo, stateDir: join(dir, "state"), maintenanceDir: flagDir, http: { listen: "127.0.0.1", port: 0 } }));
  const run = startBallast(["run", "--config", cfgFile]);
  let context: BrowserContext | undefined;
  let port = 0;

  beforeAll(async () => {
    await waitForChromium(10 * 60_000);
    const listening = await run.waitFor((l) => l.includes('"http listening"'), 15_000);
    port = (JSON.parse(listening) as { port: number }).port;
  }, 11 * 60_000);

  afterAll(async () => {
    await context?.close();
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("shows cells, hosts, a drain, migrations and the imbalance chart, with no errors or outside requests", async () => {
    const origin = `http://127.0.0.1:${port}`;
    // A reason with markup: it must show as text, never become elements.
    mkdirSync(flagDir, { recursive: true });
    writeFileSync(join(flagDir, "edge-h2"), 'firmware <img src=x onerror="window.pwned=1"> & "bios"\n');
    await run.waitFor((l) => l.includes('"maintenance flag set"') && l.includes("edge-h2"), 15_000);
    // Two finished migrations: a few rounds of imbalance history for the chart, and the drain still going.
    const finished = (): number => run.lines.filter((l) => l.includes('"migration finished"')).length;
    await run.waitFor(() => finished() >= 2, 60_000);

    const profile = mkdtempSync(join(tmpdir(), "ballast-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1280, height: 900 },
      timeout: 60_000,
    });
    const page: Page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    const outside: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ""}`));
    page.on("response", (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    context.on("request", (r) => {
      const u = new URL(r.url());
      if (u.protocol !== "data:" && u.origin !== origin) outside.push(r.url());
    });

    const res = await page.goto(`${origin}/`, { waitUntil: "load" });
    expect(res?.status()).toBe(200);
    expect(res?.headers()["content-security-policy"]).toMatch(/default-src 'none'.*connect-src 'self'/);
    await page.waitForSelector("body[data-ready='1']", { timeout: 15_000 });

    // Hosts grouped by cell, with bars and threshold marks.
    for (const cell of ["batch", "core", "edge"]) await expect(page.locator(`#cells .cell[data-cell='${cell}'] h3`).textContent()).resolves.toBe(cell);
    expect(await page.locator("#cells .cell[data-cell='edge'] .host").count()).toBe(5);
    expect(await page.locator("#cells .cell[data-cell='core'] .host").count()).toBe(6);
    expect(await page.locator("#cells .host .track .mark.high").count()).toBe(2 * 15);
    expect(await page.locator("#cells .host[data-host='edge-h2'] .badge.maint").count()).toBe(1);

    // Drain progress, with the reason shown as text.
    const drain = page.locator("#drains .drain[data-host='edge-h2']");
    await expect(drain.locator(".counts").textContent()).resolves.toMatch(/\d+ VM\(s\) left · [1-9]\d* moved · \d+ blocked/);
    await expect(drain.locator(".reason").textContent()).resolves.toBe('firmware <img src=x onerror="window.pwned=1"> & "bios"');
    expect(await page.locator("img").count()).toBe(0);
    expect(await page.evaluate("typeof window.pwned")).toBe("undefined");

    // A finished migration with outcome, duration, prediction and downtime.
    const done = page.locator("#migrations tbody tr[data-status='succeeded']").first();
    await done.waitFor({ timeout: 10_000 });
    const cells = await done.locator("td").allTextContents();
    expect(cells[5]).toBe("succeeded");
    expect(cells[6]).toMatch(/\d( ms| s)$/); // duration
    expect(cells[8]).toMatch(/\d ms$/); // downtime

    // The drain goes on one VM at a time: the in-flight card shows its live progress.
    // (Polled from here: the page's CSP rightly refuses the string evaluation waitForFunction would use.)
    await expect.poll(() => page.locator("#inflight .kv").textContent({ timeout: 1000 }).catch(() => ""), { timeout: 30_000, interval: 250 }).toMatch(/data remaining.*(MiB|GiB).*memory pass \d/s);
    expect(await page.locator("#inflight .route").textContent()).toMatch(/^[a-z]+-vm\d+$/);

    // The imbalance chart: one path per cell.
    await page.waitForSelector("#imbalance svg path.series", { state: "attached", timeout: 15_000 });
    const paths = await Promise.all((await page.locator("#imbalance svg path.series").all()).map(async (p) => (await p.getAttribute("d")) ?? ""));
    expect(paths.length).toBe(2 * 3);
    for (const d of paths) expect(d).toMatch(/^M\d/);

    mkdirSync(join(ROOT, "test-output"), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`status page screenshot: ${SCREENSHOT}`);

    expect(problems).toEqual([]);
    expect(outside).toEqual([]);
  }, 150_000);
});
