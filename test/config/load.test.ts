import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { rmSync } from "node:fs";
import {
  checkConfig,
  checkConfigText,
  ConfigError,
  editDistance,
  formatIssue,
  formatPath,
  loadConfig,
  MAX_CONFIG_BYTES,
  planningDefaults,
  showValue,
  type ConfigIssue,
} from "../../src/config/index.js";

const tmp = mkdtempSync(join(tmpdir(), "ballast-config-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SIM = "sim:\n  cells:\n    - name: a\n      hosts: 2\n";

function write(name: string, content: string | Buffer): string {
  const file = join(tmp, name);
  writeFileSync(file, content);
  return file;
}

function errorsOf(file: string): ConfigIssue[] {
  const r = checkConfig(file);
  if (r.ok) throw new Error(`${file} unexpectedly valid`);
  return r.errors;
}

describe("shipped configurations", () => {
  it.each(["config/demo.yaml", "config/ballast.example.yaml"])("%s is valid", (file) => {
    const r = checkConfig(file);
    expect(r.ok ? [] : r.errors.map(formatIssue)).toEqual([]);
  });

  it("demo keeps its state in the checkout and runs the simulated cluster quickly", () => {
    const c = loadConfig("config/demo.yaml");
    expect(c.stateDir).toBe(resolve("state"));
    expect(c.maintenanceDir).toBe(resolve("state/maintenance"));
    expect(c.schedule).toBe("*/10 * * * * *");
    expect(c.http).toEqual({ enabled: true, listen: "127.0.0.1", port: 9464, admin: { enabled: false } });
    expect(c.policies["hotspot-relief"].sustainMinutes).toBe(0.25);
    expect(c.sim?.cells.map((x) => x.name)).toEqual(["edge", "core", "batch"]);
    expect(c.sim?.hotHosts.length).toBeGreaterThan(0);
    expect(c.libvirt).toBeUndefined();
    expect(c.xenserver).toBeUndefined();
  });

  it("the production example configures libvirt over tls and ssh, and a XenServer pool", () => {
    const c = loadConfig("config/ballast.example.yaml");
    const uris = c.libvirt?.hosts.map((h) => h.uri) ?? [];
    expect(uris.some((u) => u.startsWith("qemu+tls://"))).toBe(true);
    expect(uris.some((u) => u.startsWith("qemu+ssh://"))).toBe(true);
    expect(c.libvirt?.hosts.some((h) => h.ssh !== undefined)).toBe(true);
    expect(c.xenserver?.pools[0]?.allowUnauthorized).toBe(false);
    expect(c.sim).toBeUndefined();
  });
});

describe("derived defaults and paths", () => {
  it("fills defaults and puts maintenanceDir under stateDir", () => {
    const c = loadConfig(write("minimal.yaml", `stateDir: /srv/ballast\n${SIM}`));
    expect(c.maintenanceDir).toBe("/srv/ballast/maintenance");
    expect(c.thresholds).toEqual({ cpuHigh: 0.85, cpuLow: 0.7, memHigh: 0.9, memLow: 0.8 });
    expect(c.policies["hotspot-relief"]).toMatchObject({ enabled: true, sustainMinutes: 5 });
    expect(c.policies["maintenance-drain"].enabled).toBe(true);
    expect(c.migration.mode).toBe("live");
    expect(c.schedule).toBe("*/60 * * * * *");
  });

  it("resolves relative paths against the config file's directory, not the working directory", () => {
    const dir = join(tmp, "etc");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "ballast.yaml");
    writeFileSync(
      file,
      [
        "stateDir: state",
        "maintenanceDir: ../flags",
        "libvirt:",
        "  hosts:",
        "    - name: kvm1",
        "      uri: qemu+ssh://root@kvm1/system",
        "      ssh:",
        "        privateKeyFile: keys/id_ed25519",
        "        hostKeys: ['SHA256:6fUW319uiW2dZJoUeb0fJlxECw6QzOYUJQ/MT1wMg50']",
        "xenserver:",
        "  pools:",
        "    - name: p1",
        "      url: https://p1.example.net",
        "      credentialsFile: /etc/ballast/p1.cred",
        "    - name: p2",
        "      url: https://p2.example.net",
        "      credentialsFile: p2.cred",
        "",
      ].join("\n"),
    );
    const c = loadConfig(file);
    expect(c.stateDir).toBe(join(dir, "state"));
    expect(c.maintenanceDir).toBe(join(tmp, "flags"));
    expect(c.libvirt?.hosts[0]?.ssh?.privateKeyFile).toBe(join(dir, "keys/id_ed25519"));
    expect(c.xenserver?.pools.map((p) => p.credentialsFile)).toEqual(["/etc/ballast/p1.cred", join(dir, "p2.cred")]);
    expect(c.sourceFile).toBe(file);
  });

  it("accepts a UTF-8 byte order mark", () => {
    expect(checkConfig(write("bom.yaml", `\ufeff${SIM}`)).ok).toBe(true);
  });
});

describe("file-level problems", () => {
  it.each([
    ["a missing file", () => join(tmp, "nope.yaml"), /does not exist/],
    ["a directory", () => tmp, /is a directory/],
    ["a file over 1 MiB", () => write("big.yaml", `${SIM}# ${"x".repeat(MAX_CONFIG_BYTES)}\n`), /at most 1 MiB/],
  ])("%s gives one clean issue naming the file", (_name, make, message) => {
    const file = make();
    const errors = errorsOf(file);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ file, path: "", line: 0 });
    expect(errors[0]?.message).toMatch(message);
    expect(formatIssue(errors[0] as ConfigIssue)).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: `));
  });

  it("names the line of bytes that are not UTF-8", () => {
    const file = write("latin1.yaml", Buffer.concat([Buffer.from(`${SIM}stateDir: /srv/caf`), Buffer.from([0xe9]), Buffer.from("\n")]));
    const [e, ...rest] = errorsOf(file);
    expect(rest).toEqual([]);
    expect(e).toMatchObject({ line: 5, column: 19 });
    expect(e?.message).toMatch(/UTF-8/);
  });
});

describe("reporting", () => {
  it("reports every problem, in file order, not just the first", () => {
    const file = write(
      "several.yaml",
      [
        "thresholds:",
        "  cpuHigh: 2", // 2
        "  memHihg: 0.9", // 3
        "http:",
        "  port: abc", // 5
        "migration:",
        "  mode: fast", // 7
        SIM,
      ].join("\n"),
    );
    const errors = errorsOf(file);
    expect(errors.map((e) => [e.line, e.path])).toEqual([
      [2, "thresholds.cpuHigh"],
      [3, "thresholds.memHihg"],
      [5, "http.port"],
      [7, "migration.mode"],
    ]);
  });

  it("loadConfig throws a ConfigError that carries every issue and prints them one per line", () => {
    const file = write("throws.yaml", `logLevel: loud\nfoo: 1\n${SIM}`);
    let caught: unknown;
    try {
      loadConfig(file);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const err = caught as ConfigError;
    expect(err.issues).toHaveLength(2);
    expect(err.message.split("\n").slice(1)).toEqual(err.issues.map(formatIssue));
    expect(err.message).toContain(`${file}:1:11: logLevel: got "loud", expected one of fatal, error, warn, info, debug, trace`);
    expect(err.message).toContain(`${file}:2:1: foo: unknown key 'foo'`);
  });

  it("refuses __proto__ as an unknown key without touching prototypes", () => {
    const errors = errorsOf(write("proto.yaml", `__proto__:\n  polluted: true\n${SIM}`));
    expect(errors.map((e) => [e.line, e.path])).toEqual([[1, "__proto__"]]);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it("checkConfigText validates text under a given name", () => {
    const r = checkConfigText("thresholds: {cpuHigh: -1}\n" + SIM, "inline.yaml", "/etc/ballast");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(formatIssue(r.errors[0] as ConfigIssue)).toBe("inline.yaml:1:23: thresholds.cpuHigh: got -1, expected a number ≥ 0");
    const low = checkConfigText("thresholds:\n  cpuHigh: 0.6\n" + SIM, "inline.yaml");
    expect(low.ok ? [] : low.errors.map(formatIssue)).toEqual([
      "inline.yaml:1:1: thresholds.cpuLow: got 0.7 (the default), expected a number below cpuHigh (0.6)",
    ]);
    const ok = checkConfigText(SIM, "inline.yaml", "/etc/ballast");
    expect(ok.ok && ok.config.stateDir).toBe("/var/lib/ballast");
  });
});

describe("helpers", () => {
  it.each([
    [{ file: "f.yaml", line: 12, column: 5, path: "a.b", value: "1.5", message: "expected a number ≤ 1" }, "f.yaml:12:5: a.b: got 1.5, expected a number ≤ 1"],
    [{ file: "f.yaml", line: 3, column: 1, path: "a.x", message: "unknown key 'x'" }, "f.yaml:3:1: a.x: unknown key 'x'"],
    [{ file: "f.yaml", line: 0, column: 0, path: "", message: "cannot read the file: it does not exist" }, "f.yaml: cannot read the file: it does not exist"],
  ])("formatIssue %#", (issue, line) => expect(formatIssue(issue)).toBe(line));

  it.each([
    [["policies", "hotspot-relief", "cpuHigh"], "policies.hotspot-relief.cpuHigh"],
    [["libvirt", "hosts", 1, "uri"], "libvirt.hosts[1].uri"],
    [["hostCells", "xen-01.example.net"], 'hostCells["xen-01.example.net"]'],
    [[], ""],
  ])("formatPath %j", (path, out) => expect(formatPath(path)).toBe(out));

  it.each([
    [1.5, "1.5"],
    ["abc", '"abc"'],
    ["a\u001b[2Jb", '"a\\u001b[2Jb"'],
    ["rtl\u202eevil", '"rtl\\u202eevil"'],
    [null, "null"],
    [[1, 2], "[1,2]"],
    ["y".repeat(100), `"${"y".repeat(59)}…"`],
  ])("showValue %j", (value, out) => expect(showValue(value)).toBe(out));

  it.each([
    ["cpuHihg", "cpuHigh", 1],
    ["cpuHigh", "cpuHigh", 0],
    ["sustainMinute", "sustainMinutes", 1],
    ["abc", "xyz", 3],
    ["", "abc", 3],
  ])("editDistance(%s, %s) = %d", (a, b, d) => expect(editDistance(a, b)).toBe(d));
});

describe("YAML features", () => {
  it("accepts '<<' merge keys and anchors, and locates errors in merged values", () => {
    const base = [
      "libvirt:",
      "  hosts:",
      "    - &kvm",
      "      name: kvm1",
      "      uri: qemu+tls://kvm1/system",
      "      cell: a",
      "      sharedStorage: [nfs-1]",
      "    - <<: *kvm",
      "      name: kvm2",
      "      uri: qemu+tls://kvm2/system",
      "",
    ].join("\n");
    const r = checkConfigText(base, "merge.yaml");
    expect(r.ok ? r.config.libvirt?.hosts.map((h) => [h.name, h.cell, h.sharedStorage]) : r.errors.map(formatIssue)).toEqual([
      ["kvm1", "a", ["nfs-1"]],
      ["kvm2", "a", ["nfs-1"]],
    ]);
    const broken = checkConfigText(base.replace("cell: a", "cell: 'a b'"), "merge.yaml");
    expect(broken.ok ? [] : broken.errors.map((e) => [e.line, e.path])).toEqual([
      [6, "libvirt.hosts[0].cell"],
      [8, "libvirt.hosts[1].cell"], // the item that merges it in
    ]);
  });
});

describe("planningDefaults", () => {
  it("gives the defaults a config file would get", () => {
    const d = planningDefaults();
    const c = loadConfig("config/demo.yaml");
    expect(d.thresholds).toEqual(c.thresholds);
    expect(d.policies["hotspot-relief"].sustainMinutes).toBe(5);
    expect(d.migration.flags).toEqual(["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"]);
  });
});
