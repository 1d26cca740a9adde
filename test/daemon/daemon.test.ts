import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { hostId } from "../../src/model/index.js";
import { daemonFixture, type DaemonFixture } from "../helpers/daemon-fixture.js";

let fx: DaemonFixture | undefined;
afterEach(async () => {
  await fx?.dispose();
  fx = undefined;
});

const vmsOn = (f: DaemonFixture, host: string): number =>
  f.cluster.vmIds().filter((vm) => f.cluster.vmPlacements(vm).some((p) => p.host === hostId(host))).length;

describe("daemon loop on a fake clock", () => {
  it("a flag file triggers a round within the rescan interval and drains the host one VM at a time", async () => {
    fx = daemonFixture();
    const f = fx;
    await f.daemon.start();
    await f.daemon.trigger("start");
    const roundsBefore = f.daemon.roundsRun;
    expect(vmsOn(f, "a-h2")).toBe(3);

    writeFileSync(join(f.config.maintenanceDir, "a-h2"), "disk swap\n");
    await f.clock.advance(f.config.flagRescanSeconds * 1000);
    // The scan itself is real file I/O: give it real time, not simulated time.
    await vi.waitFor(() => expect(f.daemon.roundsRun).toBeGreaterThan(roundsBefore), { timeout: 5000 });
    expect(f.daemon.maintenanceFlags.get(hostId("a-h2"))?.reason).toBe("disk swap");

    await f.until(() => vmsOn(f, "a-h2") === 0 && !f.daemon.busy, 600_000);
    expect(f.driver.maxActiveMigrations).toBe(1);
    const migs = f.store.recentMigrations(50).filter((m) => m.policy === "maintenance-drain").reverse();
    expect(migs).toHaveLength(3);
    for (const m of migs) {
      expect(m.status).toBe("succeeded");
      expect(m.from).toBe("a-h2");
      expect(m.to).not.toBe("a-h2");
    }
    // One at a time: each migration's intent was written after the previous one finished.
    for (let i = 1; i < migs.length; i++) expect(migs[i]!.startedAt).toBeGreaterThanOrEqual(migs[i - 1]!.finishedAt!);
    expect(f.store.recentEvents(10).some((e) => e.kind === "flag-set" && e.host === "a-h2")).toBe(true);
  });

  it("removing the flag stops the drain", async () => {
    fx = daemonFixture({
      sim: { seed: 5, cells: [{ name: "a", hosts: 3, cpus: 32, memoryMiB: 262144, vmsPerHost: 6, sharedStorage: "nfs" }], heavyDirtierFraction: 0, bandwidthMiBps: 200 },
    });
    const f = fx;
    await f.daemon.start();
    await f.daemon.trigger("start");
    writeFileSync(join(f.config.maintenanceDir, "a-h1"), "");
    await f.clock.advance(2000);
    await f.until(() => f.store.recentMigrations(10).some((m) => m.status === "succeeded"), 600_000);
    rmSync(join(f.config.maintenanceDir, "a-h1"));
    await f.clock.advance(2000);
    await vi.waitFor(() => expect(f.daemon.maintenanceFlags.size).toBe(0), { timeout: 5000 });
    await f.until(() => !f.daemon.busy, 600_000);
    const moved = f.store.recentMigrations(50).length;
    expect(moved).toBeLessThan(6);
    expect(vmsOn(f, "a-h1")).toBe(6 - moved);
    await f.clock.advance(10 * 60_000);
    expect(f.store.recentMigrations(50).length).toBe(moved);
    expect(f.store.recentEvents(10).some((e) => e.kind === "flag-cleared" && e.host === "a-h1")).toBe(true);
  });

  it("rounds never overlap: triggers during a round coalesce into one follow-up", async () => {
    fx = daemonFixture({
      sim: { seed: 5, cells: [{ name: "a", hosts: 3, cpus: 32, memoryMiB: 262144, vmsPerHost: 4, sharedStorage: "nfs" }], heavyDirtierFraction: 0, bandwidthMiBps: 100 },
    });
    const f = fx;
    await f.daemon.start();
    writeFileSync(join(f.config.maintenanceDir, "a-h3"), "");
    await f.clock.advance(2000);
    await vi.waitFor(() => expect(f.driver.migrations.length).toBe(1), { timeout: 5000 }); // running (slow link)
    expect(f.daemon.busy).toBe(true);
    const before = f.daemon.roundsRun;
    const triggers = Array.from({ length: 10 }, (_, i) => f.daemon.trigger(`manual-${i}`));
    await f.until(() => !f.daemon.busy, 3_600_000);
    await Promise.all(triggers);
    expect(f.driver.maxActiveSamples).toBe(1);
    expect(f.driver.maxActiveMigrations).toBe(1);
    // Ten triggers while busy add at most one round beyond the drain's own follow-ups (4 VMs).
    expect(f.daemon.roundsRun - before).toBeLessThanOrEqual(4 + 1);
    expect(vmsOn(f, "a-h3")).toBe(0);
  });

  it("a failed round is recorded and the loop keeps going", async () => {
    fx = daemonFixture();
    const f = fx;
    await f.daemon.start();
    f.cluster.setHostReachable(hostId("a-h1"), false);
    const orig = f.driver.inner.sample.bind(f.driver.inner);
    let fail = true;
    f.driver.inner.sample = () => (fail ? Promise.reject(new Error("connection refused")) : orig());
    await f.daemon.trigger("manual");
    expect(f.daemon.lastRound?.outcome).toBe("error");
    expect(f.daemon.lastRound?.error).toContain("connection refused");
    fail = false;
    await f.daemon.trigger("manual");
    expect(f.daemon.lastRound?.outcome).toBe("ok");
    expect(f.store.recentRounds(5).map((r) => r.outcome)).toEqual(["ok", "error"]);
  });
});
