import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/cli.js";

/**
 * scripts/check-systemd.sh in CI: `systemd-analyze verify` prints nothing for systemd/ballast.service (in a
 * throw-away root, ExecStart resolvable), sysusers/tmpfiles produce a 2770 ballast:ballast-admin
 * maintenance directory, and `systemd-analyze security --offline=yes` rates the unit at most 2.0.
 */
describe("systemd unit", () => {
  it("passes scripts/check-systemd.sh: verify clean, snippets valid, exposure ≤ 2.0", () => {
    const r = spawnSync("bash", [join(ROOT, "scripts/check-systemd.sh")], { encoding: "utf8", timeout: 30_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.status, out).toBe(0);
    expect(r.stdout).toContain("verify: clean");
    expect(r.stdout).toContain("sysusers/tmpfiles: ok");
    const m = /exposure score: (\d+(?:\.\d+)?) \(max 2\.0\)/.exec(r.stdout);
    expect(m, out).not.toBeNull();
    expect(Number(m?.[1])).toBeLessThanOrEqual(2.0);
  });

  it("is a notify service with watchdog, reload by SIGHUP, its own user and no MemoryDenyWriteExecute (V8 JIT)", () => {
    const unit = readFileSync(join(ROOT, "systemd/ballast.service"), "utf8");
    const settings = new Map<string, string[]>();
    for (const line of unit.split("\n")) {
      const m = /^([A-Za-z]+)=(.*)$/.exec(line);
      if (m?.[1] !== undefined) settings.set(m[1], [...(settings.get(m[1]) ?? []), m[2] ?? ""]);
    }
    const one = (k: string): string | undefined => settings.get(k)?.at(-1);
    expect(one("Type")).toBe("notify");
    expect(one("NotifyAccess")).toBe("main");
    expect(one("WatchdogSec")).toMatch(/^\d+s$/);
    expect(one("ExecReload")).toBe("/bin/kill -HUP $MAINPID");
    expect(one("User")).toBe("ballast");
    expect(one("StateDirectory")).toBe("ballast");
    expect(one("ConfigurationDirectory")).toBe("ballast");
    expect(one("MemoryDenyWriteExecute")).toBe("no");
    expect(one("RestrictAddressFamilies")).toBe("AF_UNIX AF_INET AF_INET6");
    // The daemon may wait shutdown.stopTimeoutSec (default 300 s) for a migration: systemd must wait longer.
    expect(Number(/^(\d+)s$/.exec(one("TimeoutStopSec") ?? "")?.[1])).toBeGreaterThan(300);
    // The lock refusal exits 75 (EX_TEMPFAIL) and must stay restartable; bad config (78) must not loop.
    expect(one("RestartPreventExitStatus")?.split(" ")).toEqual(expect.arrayContaining(["78"]));
    expect(one("RestartPreventExitStatus")?.split(" ")).not.toContain("75");
  });
});
