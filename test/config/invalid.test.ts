import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkConfig, formatIssue, type ConfigIssue } from "../../src/config/index.js";

const DIR = "test/config/invalid";

interface Expected {
  /** Line of the offending node (1-based). */
  readonly line: number;
  /** Dotted field path; "" for file-level problems. */
  readonly path: string;
  /** What the message must say. */
  readonly message: RegExp;
  /** The bad value as printed, when there is one. */
  readonly value?: string;
}

/** One row per file in test/config/invalid/: the file's first line says, in words, what is wrong. */
const CASES: Record<string, Expected> = {
  "alias-bomb.yaml": { line: 1, path: "", message: /alias count/ },
  "cell-name-invalid.yaml": { line: 4, path: "sim.cells[0].name", value: '"cell one"', message: /expected a name of letters/ },
  "cpu-high-above-one.yaml": { line: 3, path: "thresholds.cpuHigh", value: "1.5", message: /^expected a number ≤ 1$/ },
  "duplicate-key.yaml": { line: 7, path: "stateDir", message: /duplicate key 'stateDir' \(first defined on line 2\)/ },
  "duplicate-nested-key.yaml": { line: 6, path: "sim.cells[0].hosts", message: /duplicate key 'hosts' \(first defined on line 5\)/ },
  "empty.yaml": { line: 1, path: "", message: /empty/ },
  "guards-negative-cooldown.yaml": { line: 3, path: "guards.vmCooldownMinutes", value: "-5", message: /^expected a number ≥ 0$/ },
  "history-retention-zero.yaml": { line: 3, path: "history.sampleRetentionHours", value: "0", message: /^expected a number > 0$/ },
  "http-null.yaml": { line: 2, path: "http", value: "null", message: /^expected a mapping$/ },
  "infinity.yaml": { line: 3, path: "guards.maxMigrationsPerHour", value: "Infinity", message: /expected an integer/ },
  "libvirt-instances-dir-relative.yaml": { line: 3, path: "libvirt.instancesDir", value: '"instances"', message: /expected an absolute path/ },
  "libvirt-migration-ports-reversed.yaml": { line: 6, path: "libvirt.hosts[0].migrationPorts.max", message: /expected min ≤ max/ },
  "libvirt-bad-uri.yaml": { line: 7, path: "libvirt.hosts[1].uri", value: '"http://kvm2/system"', message: /libvirt URI/ },
  "libvirt-duplicate-host.yaml": { line: 6, path: "libvirt.hosts[1].name", value: '"kvm1"', message: /unique host name .*hosts\[0\]/ },
  "libvirt-missing-hosts.yaml": { line: 2, path: "libvirt.hosts", message: /required field 'hosts' is missing, expected a list/ },
  "libvirt-tcp-insecure.yaml": { line: 5, path: "libvirt.hosts[0].uri", value: '"qemu+tcp://kvm1/system"', message: /unencrypted/ },
  "libvirt-unknown-host-key.yaml": { line: 7, path: "libvirt.hosts[1].ur1", message: /unknown key 'ur1' \(did you mean 'uri'\?\)/ },
  "log-level-control-chars.yaml": {
    line: 2,
    path: "logLevel",
    value: '"\\u001b[31mred\\u202etxt"',
    message: /expected one of fatal, error, warn, info, debug, trace/,
  },
  "log-level-long.yaml": { line: 2, path: "logLevel", value: `"${"x".repeat(59)}…"`, message: /expected one of fatal/ },
  "migration-flag-unknown.yaml": { line: 3, path: "migration.flags[2]", value: '"FAST"', message: /expected one of LIVE, PEER2PEER/ },
  "migration-flags-not-list.yaml": { line: 3, path: "migration.flags", value: '"LIVE"', message: /^expected a list$/ },
  "migration-mode-enum.yaml": { line: 3, path: "migration.mode", value: '"livee"', message: /^expected one of live, suspend$/ },
  "multiple-documents.yaml": { line: 6, path: "", message: /single YAML document/ },
  "no-backend.yaml": { line: 2, path: "", message: /one of sim, libvirt or xenserver/ },
  "policy-affinity-tag-clash.yaml": { line: 6, path: "policies.affinity.tags.ignore", value: '"keep"', message: /^expected a tag name different from pin's$/ },
  "policy-balance-weights-zero.yaml": { line: 4, path: "policies.balance.cpuWeight", value: "0", message: /cpuWeight and memoryWeight not both 0/ },
  "policy-enabled-yes.yaml": { line: 4, path: "policies.maintenance-drain.enabled", value: '"yes"', message: /^expected true or false$/ },
  "policy-name-typo.yaml": { line: 3, path: "policies.hotspot-releif", message: /did you mean 'hotspot-relief'\?/ },
  "policy-param-typo.yaml": { line: 4, path: "policies.hotspot-relief.sustainMinute", message: /did you mean 'sustainMinutes'\?/ },
  "port-negative.yaml": { line: 4, path: "http.port", value: "-1", message: /^expected an integer ≥ 0$/ },
  "port-string.yaml": { line: 3, path: "http.port", value: '"9464"', message: /^expected an integer$/ },
  "port-too-big.yaml": { line: 3, path: "http.port", value: "70000", message: /^expected an integer ≤ 65535$/ },
  "schedule-invalid.yaml": { line: 2, path: "schedule", value: '"every minute"', message: /cron expression/ },
  "sim-cell-missing-hosts.yaml": { line: 6, path: "sim.cells[1].hosts", message: /required field 'hosts' is missing, expected an integer/ },
  "sim-cells-empty.yaml": { line: 4, path: "sim.cells", value: "[]", message: /^expected a non-empty list$/ },
  "sim-duplicate-cell.yaml": { line: 6, path: "sim.cells[1].name", value: '"a"', message: /unique cell name/ },
  "sim-hosts-float.yaml": { line: 5, path: "sim.cells[0].hosts", value: "2.5", message: /^expected an integer$/ },
  "sim-hosts-zero.yaml": { line: 5, path: "sim.cells[0].hosts", value: "0", message: /^expected an integer ≥ 1$/ },
  "sim-hot-host-unknown.yaml": { line: 6, path: "sim.hotHosts[1]", value: '"a-h9"', message: /simulated host name/ },
  "sim-with-libvirt.yaml": { line: 2, path: "sim", message: /not both/ },
  "ssh-bad-fingerprint.yaml": { line: 9, path: "libvirt.hosts[0].ssh.hostKeys[0]", message: /SHA256:' and 43 base64/ },
  "ssh-missing-private-key.yaml": { line: 6, path: "libvirt.hosts[0].ssh.privateKeyFile", message: /required field 'privateKeyFile' is missing/ },
  "ssh-port-float.yaml": { line: 7, path: "libvirt.hosts[0].ssh.port", value: "22.5", message: /^expected an integer$/ },
  "thresholds-low-above-high.yaml": { line: 4, path: "thresholds.cpuLow", value: "0.9", message: /below cpuHigh \(0\.8\)/ },
  "thresholds-not-mapping.yaml": { line: 2, path: "thresholds", value: "0.8", message: /^expected a mapping$/ },
  "timezone-invalid.yaml": { line: 2, path: "timezone", value: '"Mars/Olympus_Mons"', message: /IANA time zone/ },
  "top-level-list.yaml": { line: 2, path: "", message: /mapping of settings at the top level, got a list/ },
  "top-level-scalar.yaml": { line: 2, path: "", message: /mapping of settings at the top level/ },
  "unknown-key-typo.yaml": { line: 3, path: "thresholds.cpuHihg", message: /^unknown key 'cpuHihg' \(did you mean 'cpuHigh'\?\)$/ },
  "xen-allow-unauthorized-string.yaml": { line: 7, path: "xenserver.pools[0].allowUnauthorized", value: '"no"', message: /true or false/ },
  "xen-bad-url.yaml": { line: 5, path: "xenserver.pools[0].url", value: '"ftp://pool1.example.net"', message: /https:\/\/ URL/ },
  "xen-hostcells-bad-key.yaml": { line: 9, path: 'xenserver.pools[0].hostCells["bad host"]', message: /invalid key: expected a name/ },
  "xen-pools-empty.yaml": { line: 3, path: "xenserver.pools", value: "[]", message: /non-empty list/ },
  "yaml-syntax-unclosed.yaml": { line: 8, path: "", message: /YAML syntax error: .*end with a \]/ },
  "yaml-tab-indent.yaml": { line: 3, path: "", message: /YAML syntax error: Tabs/ },
};

const files = readdirSync(DIR).filter((f) => f.endsWith(".yaml")).sort();

describe("invalid configuration corpus", () => {
  it("has at least 30 files, each with an expectation and a comment saying what is wrong", () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
    expect(files.filter((f) => !(f in CASES))).toEqual([]);
    expect(Object.keys(CASES).filter((f) => !files.includes(f))).toEqual([]);
    for (const f of files) expect(readFileSync(join(DIR, f), "utf8"), f).toMatch(/^# \S.*\n/);
  });

  it.each(files)("%s", (f) => {
    const file = join(DIR, f);
    const want = CASES[f];
    expect(want, `add ${f} to CASES`).toBeDefined();
    if (!want) return;
    const r = checkConfig(file);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const hit: ConfigIssue | undefined = r.errors.find((e) => e.path === want.path && want.message.test(e.message));
    expect(hit, `no issue at ${want.path} matching ${String(want.message)}; got:\n${r.errors.map(formatIssue).join("\n")}`).toBeDefined();
    if (!hit) return;
    expect(hit.file).toBe(file);
    expect(hit.line).toBe(want.line);
    expect(hit.column).toBeGreaterThanOrEqual(1);
    if (want.value !== undefined) expect(hit.value).toBe(want.value);
    const line = formatIssue(hit);
    expect(line.startsWith(`${file}:${want.line}:${hit.column}: `)).toBe(true);
    // Safe to print: no raw control or bidi characters ever reach the terminal.
    // eslint-disable-next-line no-control-regex
    expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(line.length).toBeLessThan(300);
  });
});
