import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { clearFlag, FlagWatcher, scanFlags, setFlag } from "../../src/daemon/flags.js";
import { hostId } from "../../src/model/index.js";
import { ballast } from "../helpers/cli.js";
import { daemonFixture } from "../helpers/daemon-fixture.js";
import { expectNoTrace, tree } from "./hostile.js";

/**
 * Hostile maintenance flag directories. The rule (docs/RELIABILITY.md): a regular file whose name is a valid
 * host name is a flag, its first 4 KiB read as the reason (made one printable line of at most 200
 * characters); anything else — symbolic links (never followed), FIFOs, sockets, directories, names with
 * '/', '..' at the start, a leading '-' or '.', control characters, non-ASCII or over 253 characters — is
 * ignored and reported once (log + `flag-ignored` event). A flag naming no host of the cluster is kept
 * and reported once (`flag-unknown-host`). The configured directory itself may be a symlink (it is the
 * operator's path); when it is missing there are no flags; when it cannot be read, the flags in force stay.
 */

const root = mkdtempSync(join(tmpdir(), "ballast-hostile-flags-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const mkfifo = (path: string): void => void execFileSync("mkfifo", [path]);

/** A flag directory (default `<root>/<name>/flags`) holding one of each hostile kind; links point at files in `<root>/<name>`. */
function hostileDir(name: string, dir = join(root, name, "flags")): { dir: string; secret: string } {
  const base = join(root, name);
  mkdirSync(base, { recursive: true });
  mkdirSync(dir, { recursive: true });
  const secret = join(base, "secret");
  writeFileSync(secret, "TOP-SECRET-CONTENT");
  writeFileSync(join(dir, "empty"), "");
  writeFileSync(join(dir, "binary"), Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 131 + 7) % 256)));
  writeFileSync(join(dir, "big"), "y".repeat(10 * 1024 * 1024));
  // 64 GiB, sparse: a reader that takes the whole file runs out of memory or time.
  closeSync(openSync(join(dir, "sparse"), "w"));
  truncateSync(join(dir, "sparse"), 64 * 1024 ** 3);
  writeFileSync(join(dir, "escapes"), "\u001b[2J\u001b]0;owned\u0007 reason\r\nfake log line\u202e");
  writeFileSync(join(dir, "a..b"), "dots inside a name are harmless");
  writeFileSync(join(dir, "not-a-host"), "no such host");
  writeFileSync(join(dir, "h".repeat(253)), "longest valid name");
  writeFileSync(join(dir, "h".repeat(254)), "one too long");
  writeFileSync(join(dir, "-rf"), "leading dash");
  writeFileSync(join(dir, "new\nline"), "newline in the name");
  writeFileSync(join(dir, "tab\tname"), "");
  writeFileSync(join(dir, "ünïcödé"), "");
  writeFileSync(join(dir, "$(reboot)"), "");
  writeFileSync(Buffer.concat([Buffer.from(join(dir, "latin1-")), Buffer.from([0xe9])]), "a name that is not UTF-8");
  writeFileSync(join(dir, ".hidden"), "editor temp files are skipped silently");
  symlinkSync(secret, join(dir, "link-to-secret"));
  symlinkSync("/dev/zero", join(dir, "link-to-zero"));
  symlinkSync(join(base, "nowhere"), join(dir, "dangling"));
  mkfifo(join(dir, "fifo"));
  mkfifo(join(base, "outside-fifo"));
  symlinkSync(join(base, "outside-fifo"), join(dir, "link-to-fifo"));
  mkdirSync(join(dir, "subdir"));
  return { dir, secret };
}

describe("scanFlags on a hostile directory", () => {
  const { dir, secret } = hostileDir("scan");

  it("takes regular files with valid names as flags, reasons capped and printable; ignores the rest with why", async () => {
    const before = process.memoryUsage().rss;
    const scan = await scanFlags(dir);
    // Reading 10 MiB and a 64 GiB sparse file whole would show here (and the sparse one would not end).
    expect(process.memoryUsage().rss - before).toBeLessThan(8 * 1024 * 1024);
    const flags = Object.fromEntries([...scan.flags].map(([h, f]) => [h, f.reason]));
    expect(Object.keys(flags).sort()).toEqual(["a..b", "big", "binary", "empty", "escapes", "h".repeat(253), "not-a-host", "sparse"].sort());
    expect(flags.empty).toBe("");
    expect(flags.big).toBe("y".repeat(200));
    expect(flags.sparse).toBe("");
    expect(flags.escapes).toBe("[2J ]0;owned reason fake log line");
    for (const reason of Object.values(flags)) {
      expect(reason.length).toBeLessThanOrEqual(200);
      // eslint-disable-next-line no-control-regex
      expect(reason).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    }
    const why = Object.fromEntries(scan.ignored.map((i) => [i.name, i.why]));
    expect(why).toEqual({
      [JSON.stringify("h".repeat(254)).slice(0, 80)]: "not a valid host name",
      '"-rf"': "not a valid host name",
      '"new\\nline"': "not a valid host name",
      '"tab\\tname"': "not a valid host name",
      '"ünïcödé"': "not a valid host name",
      '"$(reboot)"': "not a valid host name",
      '"latin1-\ufffd"': "not a valid host name",
      '"link-to-secret"': "symbolic link (not followed)",
      '"link-to-zero"': "symbolic link (not followed)",
      '"link-to-fifo"': "symbolic link (not followed)",
      '"dangling"': "symbolic link (not followed)",
      '"fifo"': "not a regular file",
      '"subdir"': "not a regular file",
    });
    expect(readFileSync(secret, "utf8")).toBe("TOP-SECRET-CONTENT");
  });

  it("a missing directory means no flags; a file where the directory should be is an error for the caller", async () => {
    expect((await scanFlags(join(root, "missing"))).flags.size).toBe(0);
    await expect(scanFlags(secret)).rejects.toThrow(/ENOTDIR/);
  });

  it("a flag directory that is itself a symlink is the operator's path: followed, its entries still checked", async () => {
    const link = join(root, "scan", "flags-link");
    symlinkSync(dir, link);
    const scan = await scanFlags(link);
    expect(scan.flags.has(hostId("empty"))).toBe(true);
    expect(scan.ignored.some((i) => i.name === '"link-to-secret"')).toBe(true);
  });
});

describe("setFlag / clearFlag refuse names that could leave the directory", () => {
  const base = join(root, "set");
  const dir = join(base, "flags");
  mkdirSync(dir, { recursive: true });

  it.each(["../escape", "a/b", "/etc/passwd", "..", ".", "nul\0byte", "new\nline", "-rf", "ünï", "", "x".repeat(254)])("%j", async (name) => {
    const before = tree(base);
    await expect(setFlag(dir, name, "reason")).rejects.toThrow(/invalid host name/);
    await expect(clearFlag(dir, name)).rejects.toThrow(/invalid host name/);
    expect(tree(base)).toEqual(before);
  });

  it("a symlink planted under a host's flag name is replaced by drain and removed by undrain; its target is untouched", async () => {
    const target = join(base, "target");
    writeFileSync(target, "keep me");
    symlinkSync(target, join(dir, "h1"));
    await setFlag(dir, "h1", "firmware");
    expect(readFileSync(target, "utf8")).toBe("keep me");
    expect(readFileSync(join(dir, "h1"), "utf8")).toBe("firmware\n");
    symlinkSync(target, join(dir, "h2"));
    expect(await clearFlag(dir, "h2")).toBe(true);
    expect(readFileSync(target, "utf8")).toBe("keep me");
    expect(tree(base)).toEqual(["flags/", "flags/h1", "target"]);
  });

  it("a reason of any size is cut to 4 KiB in the file", async () => {
    await setFlag(dir, "h3", "r".repeat(1024 * 1024));
    expect(readFileSync(join(dir, "h3"), "utf8").length).toBe(4096 + 1);
  });
});

describe("ballast drain / undrain with hostile names (compiled CLI)", () => {
  const base = join(root, "cli");
  const stateDir = join(base, "state");
  mkdirSync(join(stateDir, "maintenance"), { recursive: true });
  const config = join(base, "ballast.yaml");
  writeFileSync(config, stringify({ stateDir, http: { enabled: false }, sim: { cells: [{ name: "a", hosts: 2 }] } }));

  it.each(["../../etc/cron.d/x", "a/b", "/tmp/x", "new\nline", "carriage\rreturn", "ünïcödé", "\u001b[2J", "-", "--help-me", "a".repeat(4096)])(
    "%j is refused with exit 64, a clear message, and nothing written",
    (name) => {
      const before = tree(base);
      for (const cmd of ["drain", "undrain"]) {
        const r = ballast([cmd, "--config", config, "--", name]);
        expect(r.code, r.stderr).toBe(64);
        expect(r.stderr).toMatch(new RegExp(`^ballast: ${cmd} ".*": invalid host name`));
        expectNoTrace(r.stderr);
        // The name is echoed JSON-escaped and on one line.
        expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      }
      expect(tree(base)).toEqual(before);
    },
  );
});

describe("FlagWatcher.stop", () => {
  it("a scan still running when the watcher stops reports nothing afterwards (the history may be closed by then)", async () => {
    const { dir } = hostileDir("stop");
    const calls: string[] = [];
    const clock = { now: () => 0, sleep: () => Promise.resolve(), every: () => () => undefined };
    const w = new FlagWatcher(dir, clock, 1000, () => calls.push("change"), () => calls.push("error"), () => calls.push("ignored"));
    const scanning = w.rescan();
    w.stop();
    await scanning;
    await w.rescan();
    expect(calls).toEqual([]);
  });
});

describe("the daemon with a hostile flag directory", () => {
  it("drains the valid flag, ignores and reports the rest once each, and writes only under its state directory", async () => {
    const fx = daemonFixture();
    try {
      const flagDir = fx.config.maintenanceDir;
      hostileDir("daemon", flagDir);
      writeFileSync(join(flagDir, "a-h1"), "\u001b[31mreal drain\u0000");
      const outside = tree(join(root, "daemon"));
      await fx.daemon.start();
      const t0 = fx.clock.now();
      void fx.daemon.trigger("test");
      // The drain takes simulated minutes: the flag directory is rescanned every 2 s of it, each report comes once.
      await fx.until(() => !fx.daemon.busy && fx.cluster.vmIds().every((v) => fx.cluster.vmPlacements(v)[0]?.host !== "a-h1"), 600_000);
      expect(fx.clock.now() - t0).toBeGreaterThan(5 * fx.config.flagRescanSeconds * 1000);
      const events = fx.store.recentEvents(1000);
      const ignored = events.filter((e) => e.kind === "flag-ignored").map((e) => e.message);
      expect(ignored.sort()).toEqual(
        [
          `${JSON.stringify("h".repeat(254)).slice(0, 80)}: not a valid host name`,
          '"-rf": not a valid host name',
          '"new\\nline": not a valid host name',
          '"tab\\tname": not a valid host name',
          '"ünïcödé": not a valid host name',
          '"$(reboot)": not a valid host name',
          '"latin1-\ufffd": not a valid host name',
          '"link-to-secret": symbolic link (not followed)',
          '"link-to-zero": symbolic link (not followed)',
          '"link-to-fifo": symbolic link (not followed)',
          '"dangling": symbolic link (not followed)',
          '"fifo": not a regular file',
          '"subdir": not a regular file',
        ].sort(),
      );
      const unknown = events.filter((e) => e.kind === "flag-unknown-host").map((e) => e.host);
      expect(unknown.sort()).toEqual(["a..b", "big", "binary", "empty", "escapes", "h".repeat(253), "not-a-host", "sparse"].sort());
      // The real host was drained, with its reason made printable.
      expect(fx.daemon.lastSnapshot?.hosts.find((h) => h.name === "a-h1")).toMatchObject({ maintenance: true, maintenanceReason: "[31mreal drain" });
      expect(tree(join(root, "daemon"))).toEqual(outside);
    } finally {
      await fx.dispose();
    }
  });

  // Policies off: rounds plan nothing, so no migration waits on the manual clock and rescans can be awaited.
  const quiet = { policies: { "maintenance-drain": { enabled: false }, "hotspot-relief": { enabled: false } } };

  it("a file where the flag directory should be: the daemon runs, reports it once, and plans without flags", async () => {
    const fx = daemonFixture(quiet);
    try {
      rmSync(fx.config.maintenanceDir, { recursive: true, force: true });
      writeFileSync(fx.config.maintenanceDir, "not a directory");
      await fx.daemon.start();
      await fx.daemon.trigger("test");
      expect(fx.daemon.lastRound?.outcome).toBe("ok");
      // Reported at start (cannot create it, cannot read it), then not again at every rescan.
      const reported = fx.store.recentEvents(100, { kind: "flag-scan-failed" }).map((e) => e.message);
      expect(reported.join("\n")).toMatch(/ENOTDIR/);
      for (let i = 0; i < 3; i++) await fx.daemon.rescanFlags();
      expect(fx.store.recentEvents(100, { kind: "flag-scan-failed" })).toHaveLength(reported.length);
      expect(readFileSync(fx.config.maintenanceDir, "utf8")).toBe("not a directory");
    } finally {
      await fx.dispose();
    }
  });

  it("flags stay in force while the directory is unreadable; removing the directory removes every flag", async () => {
    const fx = daemonFixture(quiet);
    try {
      await fx.daemon.start();
      writeFileSync(join(fx.config.maintenanceDir, "a-h2"), "kept");
      await fx.daemon.rescanFlags();
      expect([...fx.daemon.maintenanceFlags.keys()]).toEqual(["a-h2"]);
      const moved = join(fx.dir, "moved-aside");
      execFileSync("mv", [fx.config.maintenanceDir, moved]);
      writeFileSync(fx.config.maintenanceDir, "");
      await fx.daemon.rescanFlags();
      expect([...fx.daemon.maintenanceFlags.keys()]).toEqual(["a-h2"]);
      rmSync(fx.config.maintenanceDir);
      await fx.daemon.rescanFlags();
      expect(fx.daemon.maintenanceFlags.size).toBe(0);
      expect(existsSync(moved)).toBe(true);
    } finally {
      await fx.dispose();
    }
  });
});
