import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../helpers/cli.js";

interface PackResult {
  filename: string;
  files: { path: string; mode: number }[];
}

/** `npm pack` yields the tarball that `npm install -g ./ballast-*.tgz` installs (README: Installing on a Debian host). */
describe("npm pack", () => {
  // --dry-run lists the tarball's contents without writing it; no network, no scripts.
  const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT, encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] });
  const [pack] = JSON.parse(out) as PackResult[];
  const files = new Set(pack?.files.map((f) => f.path));

  it("holds the compiled CLI, configuration examples, systemd files and README", () => {
    expect(pack?.filename).toMatch(/^ballast-\d+\.\d+\.\d+\.tgz$/);
    for (const f of [
      "package.json",
      "README.md",
      "dist/src/cli/main.js",
      "dist/src/daemon/service.js",
      "dist/src/daemon/notify.js",
      "dist/src/daemon/lock.js",
      "config/demo.yaml",
      "config/ballast.example.yaml",
      "systemd/ballast.service",
      "systemd/ballast.sysusers.conf",
      "systemd/ballast.tmpfiles.conf",
    ]) {
      expect(files, f).toContain(f);
    }
  });

  it("leaves out tests, local state, sources and benchmarks", () => {
    for (const f of files) {
      expect(f).not.toMatch(/^(test|state|src|bench|dist\/test|dist\/bench|node_modules)\//);
      expect(f).not.toMatch(/\.ts$/);
    }
  });

  it("installs a working `ballast` command: bin points at an executable file with a node shebang", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string>; dependencies: Record<string, string> };
    expect(pkg.bin.ballast).toBe("dist/src/cli/main.js");
    const main = join(ROOT, pkg.bin.ballast ?? "");
    expect(readFileSync(main, "utf8").split("\n")[0]).toBe("#!/usr/bin/env node");
    // npm sets the executable bits of bin targets on install; the shebang is what matters. Runtime deps
    // must include the native sd_notify helper.
    expect(statSync(main).isFile()).toBe(true);
    expect(Object.keys(pkg.dependencies)).toEqual(expect.arrayContaining(["unix-dgram", "better-sqlite3"]));
    const version = execFileSync(process.execPath, [main, "--version"], { encoding: "utf8" }).trim();
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
  });
});
