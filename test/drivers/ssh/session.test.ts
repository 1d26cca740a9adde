/**
 * SshSession against real OpenSSH servers: the lab's per-host sshd, each in its host's mount + UTS
 * namespace on 127.0.0.N (so a file or a name that only exists "on h1" really is only there).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { HostKeyMismatchError, SshSession, type SshTarget } from "../../../src/drivers/ssh/session.js";
import { ProcLoadSampler, parseLoadavg, parseMeminfo, parseProcStat } from "../../../src/drivers/ssh/proc-load.js";
import { labPrerequisites, startLab, type Lab, type LabHostName } from "../../lab/lab.js";

let lab: Lab;
const sessions: SshSession[] = [];

function target(host: LabHostName, patch: Partial<SshTarget> = {}): SshTarget {
  const ssh = lab.host(host).ssh;
  if (!ssh || lab.sshPrivateKeyFile === undefined) throw new Error("lab started without ssh");
  return { label: host, host: ssh.address, port: ssh.port, user: ssh.user, privateKeyFile: lab.sshPrivateKeyFile, hostKeys: [ssh.hostKeyFingerprint], keepaliveSec: 15, ...patch };
}

function session(host: LabHostName, patch: Partial<SshTarget> = {}): SshSession {
  const s = new SshSession(target(host, patch), { initialBackoffMs: 100 });
  sessions.push(s);
  return s;
}

const ppid = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "").split(" ")[1]);

beforeAll(async () => {
  expect(labPrerequisites(), "this machine lacks what the lab needs (run scripts/test-deps.sh as root)").toEqual([]);
  lab = await startLab({ hosts: 2, ssh: true });
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await lab?.stop();
});

describe("SshSession", () => {
  it("connects with a verified host key and reads /proc of that host over SFTP", async () => {
    const s = session("h1");
    await s.connect();
    expect(s.connected).toBe(true);
    expect((await s.readFile("/proc/sys/kernel/hostname")).toString().trim()).toBe("ballast-lab-h1");
    expect(parseProcStat((await s.readFile("/proc/stat")).toString()).cpus).toBeGreaterThan(0);
    expect(parseMeminfo((await s.readFile("/proc/meminfo")).toString()).totalMiB).toBeGreaterThan(0);
    expect(parseLoadavg((await s.readFile("/proc/loadavg")).toString()).load1).toBeGreaterThanOrEqual(0);
  });

  it("refuses a host whose key is not configured, naming the host and the fingerprint it saw", async () => {
    // h2's real key configured for h1: exactly what a swapped or spoofed machine looks like.
    const s = session("h1", { hostKeys: [lab.host("h2").ssh?.hostKeyFingerprint ?? ""] });
    const err = await s.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect((err as HostKeyMismatchError).seen).toBe(lab.host("h1").ssh?.hostKeyFingerprint);
    expect((err as Error).message).toContain(`h1 (root@${lab.host("h1").address}:`);
    expect((err as Error).message).toContain(lab.host("h1").ssh?.hostKeyFingerprint);
    expect(s.connected).toBe(false);
    // Back-off: the next call fails fast with the same reason instead of hanging.
    await expect(s.readFile("/proc/stat")).rejects.toBeInstanceOf(HostKeyMismatchError);
  });

  it("refuses to start without configured host keys (no trust on first use)", () => {
    expect(() => new SshSession(target("h1", { hostKeys: [] }))).toThrow(/no host keys configured/);
  });

  it("fails authentication with a key the host does not accept", async () => {
    const wrongKey = `${lab.dir}/h2/ssh/ssh_host_ed25519_key`; // a valid private key, just not authorised
    await expect(session("h1", { privateKeyFile: wrongKey }).connect()).rejects.toThrow(/h1 .*authentication/i);
  });

  it("names the host and the key file when the private key cannot be read", async () => {
    await expect(session("h1", { privateKeyFile: `${lab.dir}/no-such-key` }).connect()).rejects.toThrow(/^ssh h1 \(root@.*\): cannot read private key .*no-such-key: ENOENT/);
  });

  it("writes a new file exclusively, stats it and deletes it", async () => {
    const s = session("h2");
    const path = `/var/lib/libvirt/images/.ballast-test-${process.pid}`;
    await s.writeNewFile(path, "marker", 0o640);
    await expect(s.writeNewFile(path, "again")).rejects.toThrow(/write .*ballast-test/);
    const st = await s.stat(path);
    expect(st.mode & 0o777).toBe(0o640);
    expect(st.isDirectory).toBe(false);
    expect(st.size).toBe(6);
    expect((await s.readFile(path)).toString()).toBe("marker");
    // The file is on h2 only: h1 has its own images folder.
    await expect(session("h1").stat(path)).rejects.toThrow(/No such file/);
    await s.unlink(path);
    await expect(s.stat(path)).rejects.toThrow(/No such file/);
    expect((await s.stat("/var/lib/libvirt/images")).isDirectory).toBe(true);
  });

  it("reads files of several chunks, and files of exactly one chunk, whole", async () => {
    const s = session("h2");
    for (const size of [100_000, 32 * 1024, 64 * 1024, 0]) {
      const data = randomBytes(size);
      const path = `/var/lib/libvirt/images/.ballast-big-${process.pid}-${size}`;
      await s.writeNewFile(path, data);
      expect((await s.readFile(path)).equals(data)).toBe(true);
      await s.unlink(path);
    }
    await expect(s.readFile("/proc/kallsyms", { maxBytes: 1000 })).rejects.toThrow(/larger than 1000 bytes/);
  });

  it("opens TCP connections from the host, resolving names there", async () => {
    const s = session("h1");
    const h2 = lab.host("h2");
    expect(await s.probeTcp(h2.address, 16509)).toEqual({ result: "open" });
    // Only h1's /etc/hosts knows this name; this process could not resolve it.
    expect(await s.probeTcp(h2.hostname, 16509)).toEqual({ result: "open" });
    expect((await s.probeTcp(h2.address, 1)).result).toBe("refused");
    expect((await s.probeTcp("no-such-host.invalid", 16509)).result).toBe("unresolved");
  });

  it("reads the host key of an SSH server as reached from the host, and fails where no SSH server answers", async () => {
    const s = session("h1");
    const h2 = lab.host("h2");
    expect(await s.hostKeyVia(h2.hostname, h2.ssh?.port ?? 0)).toBe(h2.ssh?.hostKeyFingerprint);
    await expect(s.hostKeyVia(h2.address, 16509, 2000)).rejects.toThrow(/no SSH server at 127\.0\.\d+\.3:16509/);
  });

  it("reconnects after the server drops the connection", async () => {
    const s = session("h2");
    await s.readFile("/proc/loadavg");
    expect(s.connects).toBe(1);
    const sshd = lab.host("h2").ssh?.sshdPid ?? 0;
    // Kill the per-connection sshd processes (children of the listener), like a restart or a network cut would.
    const children = lab.pids().filter((p) => p !== sshd && ppid(p) === sshd);
    expect(children.length).toBeGreaterThan(0);
    for (const p of children) process.kill(p, "SIGKILL");
    for (const end = Date.now() + 10_000; s.connects < 2 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
    expect(s.connects).toBe(2);
    expect((await s.readFile("/proc/sys/kernel/hostname")).toString().trim()).toBe("ballast-lab-h2");
  });

  it("notices a silent peer by keepalive and reconnects", async () => {
    const sshd = lab.host("h2").ssh?.sshdPid ?? 0;
    const serverProcesses = (): number[] => lab.pids().filter((p) => p !== sshd && (ppid(p) === sshd || ppid(ppid(p)) === sshd));
    const before = new Set(serverProcesses());
    const s = session("h2", { keepaliveSec: 0.2 });
    await s.readFile("/proc/loadavg");
    // Freeze this connection's server processes: no reset, no FIN, just silence (a cut cable).
    const mine = serverProcesses().filter((p) => !before.has(p));
    expect(mine.length).toBeGreaterThan(0);
    for (const p of mine) process.kill(p, "SIGSTOP");
    try {
      for (const end = Date.now() + 10_000; s.connects < 2 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
      expect(s.connects).toBe(2);
      expect((await s.readFile("/proc/sys/kernel/hostname")).toString().trim()).toBe("ballast-lab-h2");
    } finally {
      for (const p of mine) process.kill(p, "SIGKILL");
    }
  });

  it("samples host load over one reused connection (prints the cost per sample)", async () => {
    const s = session("h1");
    const sampler = new ProcLoadSampler((p) => s.readFile(p, { keepOpen: true }));
    const first = await sampler.sample();
    expect(first.cpuLoad).toBeUndefined();
    const n = 50;
    const t0 = process.hrtime.bigint();
    let last = first;
    for (let i = 0; i < n; i++) last = await sampler.sample();
    const msPerSample = Number(process.hrtime.bigint() - t0) / 1e6 / n;
    console.log(`ssh: ${msPerSample.toFixed(2)} ms per host sample (/proc/stat + /proc/meminfo over SFTP, reused connection; target ≤ 10 ms)`);
    expect(s.connects).toBe(1);
    await new Promise((r) => setTimeout(r, 50)); // /proc/stat counts in 10 ms ticks
    last = await sampler.sample();
    expect(last.cpuLoad).toBeGreaterThanOrEqual(0);
    expect(last.cpuLoad).toBeLessThanOrEqual(1);
    expect(last.memory.totalMiB).toBeGreaterThan(last.memory.usedMiB);
  });
});
