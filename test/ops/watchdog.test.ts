import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { createDriver } from "../../src/drivers/index.js";
import type { Driver } from "../../src/drivers/driver.js";
import type { ClusterSnapshot } from "../../src/model/index.js";
import type { Notifier } from "../../src/daemon/notify.js";
import { startDaemon } from "../../src/daemon/service.js";
import { ManualClock, flush } from "../../src/util/clock.js";
import { testConfig } from "../helpers/daemon-fixture.js";

/** Records what the daemon would send to systemd. */
function recordingNotifier(watchdogMs: number): Notifier & { sent: string[] } {
  const sent: string[] = [];
  const push = (s: string): void => void sent.push(s);
  return {
    sent,
    enabled: true,
    watchdogMs,
    send: (f) => (push(Object.entries(f).map(([k, v]) => `${k}=${String(v)}`).join("\n")), true),
    ready: () => push("READY=1"),
    status: (l) => push(`STATUS=${l}`),
    watchdog: () => push("WATCHDOG=1"),
    reloading: () => push("RELOADING=1"),
    stopping: () => push("STOPPING=1"),
    extendTimeout: (ms) => push(`EXTEND_TIMEOUT_USEC=${ms * 1000}`),
    close: () => undefined,
  };
}

/**
 * WATCHDOG=1 only while the loop is healthy: on a manual clock, a round whose driver call never returns
 * stops the keep-alives once it has shown no progress for max(3 × schedule interval, WatchdogSec); they
 * resume when the loop moves again.
 */
describe("watchdog keep-alives", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballast-watchdog-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("are sent while rounds complete, withheld while a round is wedged, resumed after", async () => {
    const clock = new ManualClock();
    // Rounds every 10 s (bound = max(30 s, WatchdogSec 20 s) = 30 s); keep-alives every 10 s.
    const config = testConfig(dir, { schedule: "*/10 * * * * *" });
    const sim = await createDriver(config, clock);
    let hang: (() => void) | undefined;
    let wedged = false;
    const driver: Driver = {
      name: sim.name,
      capabilities: sim.capabilities,
      sample: async (): Promise<ClusterSnapshot> => {
        if (wedged) await new Promise<void>((resolve) => (hang = resolve));
        return sim.sample();
      },
      migrate: (r) => sim.migrate(r),
      locate: (vm) => sim.locate(vm),
      cancel: (vm) => sim.cancel(vm),
      resume: (vm, h) => sim.resume(vm, h),
      close: () => sim.close(),
    };
    const notifier = recordingNotifier(20_000);
    const log = pino({ level: "silent" });
    const running = await startDaemon({ configFile: join(dir, "test.yaml"), config, log, clock, driver, notifier });
    try {
      await running.daemon.trigger("test");
      expect(notifier.sent).toContain("READY=1");
      expect(notifier.sent.some((s) => s.startsWith("STATUS=") && s.includes("last round ok"))).toBe(true);

      // Healthy: a keep-alive every 10 s while rounds end (the real cron is not on the manual clock, so
      // rounds are triggered by hand here, as the schedule would).
      for (let i = 0; i < 3; i++) {
        await clock.advance(10_000);
        await running.daemon.trigger("schedule");
      }
      const healthy = notifier.sent.filter((s) => s === "WATCHDOG=1").length;
      expect(healthy).toBeGreaterThanOrEqual(3);

      // Wedged: the next round's sample never returns.
      wedged = true;
      const stuck = running.daemon.trigger("schedule");
      await flush();
      expect(running.daemon.busy).toBe(true);
      const mark = notifier.sent.length;
      await clock.advance(60_000);
      const during = notifier.sent.slice(mark);
      // At most the pings within the first 30 s (the bound), none after; STATUS says why.
      expect(during.filter((s) => s === "WATCHDOG=1").length).toBeLessThanOrEqual(3);
      expect(during.at(-1)).toMatch(/^STATUS=wedged: the round in progress has shown no progress for \d+ s \(limit 30 s\)/);
      const after = notifier.sent.length;
      await clock.advance(30_000);
      expect(notifier.sent.slice(after).filter((s) => s === "WATCHDOG=1")).toHaveLength(0);

      // Unwedged: the round ends, keep-alives resume.
      wedged = false;
      hang?.();
      await stuck;
      const resumed = notifier.sent.length;
      await clock.advance(10_000);
      expect(notifier.sent.slice(resumed)).toContain("WATCHDOG=1");
    } finally {
      wedged = false;
      hang?.();
      await running.stop();
    }
    expect(notifier.sent).toContain("STOPPING=1");
  });
});
