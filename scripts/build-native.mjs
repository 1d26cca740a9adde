#!/usr/bin/env node
// Builds ballast's libvirt Node-API addon (src/drivers/libvirt/native) with node-gyp against the system's Node
// headers and libvirt-dev. With --optional (the npm install hook) a machine without libvirt-dev skips the build
// with a one-line notice: the simulated cluster needs no addon, and a configured libvirt host says what to install.
import { spawnSync } from "node:child_process";
import process from "node:process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = join(root, "src", "drivers", "libvirt", "native");
const optional = process.argv.includes("--optional");

const probe = spawnSync("pkg-config", ["--exists", "libvirt"], { stdio: "ignore" });
if (probe.error || probe.status !== 0) {
  const why = probe.error ? "pkg-config is not installed" : "pkg-config cannot find libvirt";
  const msg = `ballast: libvirt binding not built (${why}); for the libvirt driver run: apt-get install libvirt-dev pkg-config && npm run build:native`;
  if (optional) {
    process.stdout.write(msg + "\n");
    process.exit(0);
  }
  process.stderr.write(msg + "\n");
  process.exit(1);
}

// npm names its bundled node-gyp in npm_config_node_gyp; outside npm use the project's own.
const gyp = process.env.npm_config_node_gyp ?? join(root, "node_modules", "node-gyp", "bin", "node-gyp.js");
const args = [gyp, "rebuild"];
// Debian's Node headers (no download), when npm has not passed its nodedir setting on already.
if (!process.env.npm_config_nodedir && existsSync("/usr/include/node/node_api.h")) args.push("--nodedir=/usr");
const r = spawnSync(process.execPath, args, { cwd: dir, stdio: "inherit" });
if (r.error) {
  process.stderr.write(`ballast: cannot run node-gyp: ${r.error.message}\n`);
  process.exit(1);
}
if (r.status !== 0 && optional) {
  // Installing still succeeds (the simulated cluster needs no addon); `npm run build:native` shows the failure.
  process.stdout.write("ballast: libvirt binding build failed (see above); the libvirt driver stays unavailable until `npm run build:native` succeeds\n");
  process.exit(0);
}
process.exit(r.status ?? 1);
