/**
 * Preflight between two real lab hosts (libvirtd + sshd in their own namespaces, each with private
 * /etc/passwd, /etc/group, /etc/hosts and images dir, plus one folder both mount at lab.sharedPath).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chmodSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { configSchema, type Config } from "../../src/config/schema.js";
import { runPreflight, type CheckResult, type PreflightReport } from "../../src/preflight/preflight.js";
import { labPrerequisites, startLab, type Lab } from "../lab/lab.js";
import { ballast } from "../helpers/cli.js";

let lab: Lab;

function rawConfig(patch: { instancesDir?: string; uri2?: string; hostKey1?: string } = {}): Record<string, unknown> {
  const libvirt = lab.libvirtConfig({ instancesDir: patch.instancesDir ?? lab.sharedPath });
  const hosts = libvirt.hosts.map((h, i) => ({
    ...h,
    ...(i === 1 && patch.uri2 !== undefined ? { uri: patch.uri2 } : {}),
    ...(i === 0 && patch.hostKey1 !== undefined && h.ssh ? { ssh: { ...h.ssh, hostKeys: [patch.hostKey1] } } : {}),
  }));
  return { stateDir: join(lab.dir, "state"), libvirt: { ...libvirt, hosts } };
}

const config = (patch: Parameters<typeof rawConfig>[0] = {}): Config => configSchema.parse(rawConfig(patch));
const byName = (r: PreflightReport, prefix: string): CheckResult => {
  const c = r.checks.find((x) => x.check.startsWith(prefix));
  if (!c) throw new Error(`no check ${prefix} in ${r.checks.map((x) => x.check).join(", ")}`);
  return c;
};
const failures = (r: PreflightReport): string[] => r.checks.filter((c) => c.status === "fail").map((c) => c.check);

beforeAll(async () => {
  expect(labPrerequisites(), "this machine lacks what the lab needs (run scripts/test-deps.sh as root)").toEqual([]);
  lab = await startLab({ hosts: 2, ssh: true });
  await lab.defineGuest("h1", { name: "vnc-any", kind: "idle", graphicsListen: "0.0.0.0" });
});
afterAll(async () => {
  await lab?.stop();
});

describe("preflight on the lab", () => {
  it("passes every check between two hosts that share the instances dir", async () => {
    const r = await runPreflight(config(), "h1", "h2");
    expect(failures(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(byName(r, "shared instances dir").status).toBe("pass");
    expect(byName(r, "service UIDs/GIDs").detail).toBe("same on both: libvirt-qemu=64055, kvm=" + /^kvm:x:(\d+):/m.exec(readFileSync(lab.host("h1").groupFile, "utf8"))?.[1]);
    expect(byName(r, "name resolution").detail).toBe("h1 → ballast-lab-h2, h2 → ballast-lab-h1");
    expect(byName(r, "migration ports").detail).toMatch(/^all 20 ports on 127\.0\.\d+\.3 answer from h1/);
    expect(byName(r, "graphics").detail).toMatch(/^1 domain\(s\), 1 display\(s\)/);
    // qemu+tcp is only tolerated because the config allows it, and said so.
    expect(byName(r, "secure transport (h1)").status).toBe("warn");
    // The marker was removed again.
    expect(readdirSync(lab.sharedDir).filter((f) => f.startsWith(".ballast-preflight"))).toEqual([]);
  });

  it("reports an instances dir that is not on shared storage", async () => {
    const r = await runPreflight(config({ instancesDir: "/var/lib/libvirt/images" }), "h1", "h2");
    expect(failures(r)).toEqual(["shared instances dir"]);
    const c = byName(r, "shared instances dir");
    expect(c.detail).toContain("does not exist on h2");
    expect(c.fix).toBe("mount the same shared storage (e.g. NFS) at /var/lib/libvirt/images on h1 and h2");
    expect(readdirSync(lab.host("h1").imagesDir).filter((f) => f.startsWith(".ballast-preflight"))).toEqual([]);
  });

  it("reports a service user whose UID differs, and passes once it matches", async () => {
    const file = lab.host("h2").passwdFile;
    const original = readFileSync(file, "utf8");
    // In place: the file is bind-mounted into h2, a new inode would not be seen there.
    writeFileSync(file, original.replace(/^libvirt-qemu:x:64055:/m, "libvirt-qemu:x:64099:"));
    try {
      const r = await runPreflight(config(), "h1", "h2");
      expect(failures(r)).toEqual(["service UIDs/GIDs"]);
      expect(byName(r, "service UIDs/GIDs").detail).toBe("user libvirt-qemu: uid 64055 on h1, 64099 on h2");
      expect(r.ok).toBe(false);
    } finally {
      writeFileSync(file, original);
    }
    expect(byName(await runPreflight(config(), "h1", "h2"), "service UIDs/GIDs").status).toBe("pass");
  });

  it("reports an instances dir without the search bit for others", async () => {
    chmodSync(lab.sharedDir, 0o770);
    try {
      const r = await runPreflight(config(), "h1", "h2");
      expect(failures(r)).toEqual(["instances dir o+x"]);
      expect(byName(r, "instances dir o+x").detail).toBe(`${lab.sharedPath} on h1 has mode 770; ${lab.sharedPath} on h2 has mode 770`);
    } finally {
      chmodSync(lab.sharedDir, 0o755);
    }
  });

  it("reports a host that cannot resolve the other's name (resolved on the host itself)", async () => {
    const file = lab.host("h1").hostsFile;
    const original = readFileSync(file, "utf8");
    writeFileSync(file, original.replace(/^.* ballast-lab-h2\n/m, ""));
    try {
      const r = await runPreflight(config(), "h1", "h2");
      expect(failures(r)).toEqual(["name resolution"]);
      expect(byName(r, "name resolution").detail).toMatch(/^h1 cannot resolve or reach ballast-lab-h2: unresolved/);
    } finally {
      writeFileSync(file, original);
    }
  });

  it("reports a name that resolves to the wrong machine (checked by its SSH host key)", async () => {
    const file = lab.host("h2").hostsFile;
    const original = readFileSync(file, "utf8");
    // h2 believes ballast-lab-h1 is its own address: a stale /etc/hosts entry.
    writeFileSync(file, original.replace(/^\S+ ballast-lab-h1$/m, `${lab.host("h2").address} ballast-lab-h1`));
    try {
      const r = await runPreflight(config(), "h1", "h2");
      expect(failures(r)).toEqual(["name resolution"]);
      expect(byName(r, "name resolution").detail).toBe(`ballast-lab-h1 resolves on h2 to a machine with host key ${lab.host("h2").ssh?.hostKeyFingerprint}, not h1`);
    } finally {
      writeFileSync(file, original);
    }
  });

  it("reports a destination libvirt that does not answer", async () => {
    const h2 = lab.host("h2");
    const r = await runPreflight(config({ uri2: `qemu+tcp://${h2.address}:16599/system` }), "h1", "h2");
    expect(failures(r)).toEqual(["libvirt reachable (h1 → h2)"]);
    expect(byName(r, "libvirt reachable").detail).toMatch(new RegExp(`^h1 → ${h2.address.replace(/\./g, "\\.")}:16599: refused`));
  });

  it("reports a display bound to one host's address", async () => {
    await lab.defineGuest("h1", { name: "vnc-local", kind: "idle", graphicsListen: "127.0.0.1", start: false });
    try {
      const r = await runPreflight(config(), "h1", "h2");
      expect(failures(r)).toEqual(["graphics listen on 0.0.0.0 (h1 domains)"]);
      expect(byName(r, "graphics").detail).toBe("vnc-local: vnc listens on 127.0.0.1");
    } finally {
      await lab.virsh("h1", "undefine", "vnc-local");
    }
  });

  it("refuses a host whose SSH key does not match and skips what needs SSH", async () => {
    const other = lab.host("h2").ssh?.hostKeyFingerprint ?? "";
    const r = await runPreflight(config({ hostKey1: other }), "h1", "h2");
    expect(byName(r, "ssh (h1)")).toMatchObject({ status: "fail" });
    expect(byName(r, "ssh (h1)").detail).toContain(`host key ${lab.host("h1").ssh?.hostKeyFingerprint} is not one of the configured hostKeys`);
    expect(byName(r, "shared instances dir").status).toBe("skip");
    expect(r.ok).toBe(false);
  });

  it("runs as `ballast preflight`: table and exit 1 on a failure, JSON and exit 0 when all pass, 64 for an unknown host", () => {
    const file = join(lab.dir, "ballast.yaml");
    writeFileSync(file, stringify(rawConfig({ instancesDir: "/var/lib/libvirt/images" })));
    const bad = ballast(["preflight", "h1", "h2", "--config", file]);
    expect(bad.stderr).toBe("");
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^shared instances dir\s+FAIL\s+.*mount the same shared storage/m);
    expect(bad.stdout).toContain("h1 → h2: 1 check(s) failed");

    writeFileSync(file, stringify(rawConfig()));
    const good = ballast(["preflight", "h1", "h2", "--config", file, "--json"]);
    expect(good.code).toBe(0);
    const report = JSON.parse(good.stdout) as PreflightReport;
    expect(report.ok).toBe(true);
    expect(report.checks.length).toBe(11);

    const unknown = ballast(["preflight", "h1", "nope", "--config", file]);
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toContain('unknown host "nope"; the config\'s libvirt hosts are: h1, h2');
  });
});
