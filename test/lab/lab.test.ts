/**
 * The lab itself: real libvirtd hosts in namespaces, real TCG guests, a real live migration, and a
 * teardown that leaves nothing running. These run in CI (scripts/test-deps.sh installs the packages);
 * a machine without them fails here with the list of what is missing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { labPrerequisites, parseCounters, startLab, type Lab } from "./lab.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

describe("parseCounters", () => {
  it("reads magic, ticks and sweeps from the monitor's xp output", () => {
    expect(parseCounters("0000000000000500: 0xba11a570 0x00000123 0x00000004 0x00000000\n")).toEqual({ magic: 0xba11a570, ticks: 0x123, sweeps: 4 });
  });
  it("rejects anything else", () => {
    expect(() => parseCounters("error: Requested operation is not valid")).toThrow(/unexpected monitor output/);
  });
});

describe("lab", () => {
  let lab: Lab;

  beforeAll(async () => {
    expect(labPrerequisites(), "this machine lacks what the lab needs (run scripts/test-deps.sh as root)").toEqual([]);
    lab = await startLab({ hosts: 3 });
    console.log(`lab: 3 hosts up in ${lab.startSeconds.toFixed(2)} s`);
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it("starts three hosts, each its own libvirtd with its own address, host UUID and host name", async () => {
    expect(lab.hosts.map((h) => h.name)).toEqual(["h1", "h2", "h3"]);
    expect(new Set(lab.hosts.map((h) => h.address)).size).toBe(3);
    for (const h of lab.hosts) {
      const caps = await lab.virsh(h.name, "capabilities");
      expect(caps).toContain(`<uuid>${h.hostUuid}</uuid>`);
      expect((await lab.virsh(h.name, "hostname")).trim()).toBe(h.hostname);
      expect(alive(h.libvirtdPid)).toBe(true);
    }
    expect(new Set(lab.hosts.map((h) => h.hostUuid)).size).toBe(3);
  });

  it("runs an idle guest whose counters advance", async () => {
    await lab.defineGuest("h1", { name: "idle-1", kind: "idle", tags: ["web", "tier-1"] });
    const a = await lab.counters("h1", "idle-1");
    await sleep(600);
    const b = await lab.counters("h1", "idle-1");
    expect(b.magic).toBe(0xba11a570);
    expect(b.ticks).toBeGreaterThan(a.ticks);
    expect(b.sweeps).toBe(0);
    expect(await lab.virsh("h1", "dumpxml", "idle-1")).toContain('<ballast:tags xmlns:ballast="https://ballast.dev/xmlns/1">web,tier-1</ballast:tags>');
    expect(await lab.where("idle-1")).toEqual({ defined: ["h1"], running: ["h1"] });
  });

  it("runs a busy guest that keeps its vCPU spinning and still counts ticks", async () => {
    await lab.defineGuest("h2", { name: "busy-1", kind: "busy", persistent: false });
    const a = await lab.counters("h2", "busy-1");
    await sleep(600);
    const b = await lab.counters("h2", "busy-1");
    expect(b.ticks).toBeGreaterThan(a.ticks);
    // A spinning guest consumes CPU time continuously; an idle one almost none.
    const cpu = async (host: "h1" | "h2", d: string): Promise<number> => Number(/cpu\.time=(\d+)/.exec(await lab.virsh(host, "domstats", d, "--cpu-total"))?.[1]);
    const [busy0, idle0] = [await cpu("h2", "busy-1"), await cpu("h1", "idle-1")];
    await sleep(1000);
    const [busy1, idle1] = [await cpu("h2", "busy-1"), await cpu("h1", "idle-1")];
    expect(busy1 - busy0).toBeGreaterThan(5 * (idle1 - idle0));
    await lab.virsh("h2", "destroy", "busy-1");
    expect(await lab.where("busy-1")).toEqual({ defined: [], running: [] });
  });

  it("migrates a dirtying guest live (p2p, persistent, undefinesource) and it keeps running on the destination", async () => {
    await lab.defineGuest("h1", { name: "dirty-1", kind: { dirtyMiB: 16, rateMiBps: 10 } });
    await sleep(300);
    const before = await lab.counters("h1", "dirty-1");
    const t0 = Date.now();
    await lab.virsh("h1", "migrate", "--live", "--p2p", "--persistent", "--undefinesource", "dirty-1", lab.host("h3").uri);
    console.log(`lab: live migration of a 24 MiB guest dirtying 10 MiB/s took ${Date.now() - t0} ms`);
    expect(await lab.where("dirty-1")).toEqual({ defined: ["h3"], running: ["h3"] });
    const after = await lab.counters("h3", "dirty-1");
    expect(after.magic).toBe(0xba11a570);
    expect(after.ticks).toBeGreaterThanOrEqual(before.ticks);
    await sleep(600);
    const later = await lab.counters("h3", "dirty-1");
    expect(later.ticks).toBeGreaterThan(after.ticks);
    expect(later.sweeps).toBeGreaterThan(before.sweeps);
    expect(await lab.virsh("h3", "dominfo", "dirty-1")).toMatch(/Persistent:\s+yes/);
  });

  it("block-migrates a guest with a local qcow2 disk and the disk arrives identical", async () => {
    await lab.defineGuest("h2", { name: "disk-1", kind: "idle", disk: "local-qcow2", diskMiB: 8 });
    const sum = await lab.diskChecksum("h2", "disk-1");
    await expect(lab.virsh("h2", "migrate", "--live", "--p2p", "--persistent", "--undefinesource", "disk-1", lab.host("h1").uri)).rejects.toThrow(/shared storage/i);
    await lab.virsh("h2", "migrate", "--live", "--p2p", "--persistent", "--undefinesource", "--copy-storage-all", "disk-1", lab.host("h1").uri);
    expect(await lab.where("disk-1")).toEqual({ defined: ["h1"], running: ["h1"] });
    expect(await lab.diskChecksum("h1", "disk-1")).toBe(sum);
  });

  it("live-migrates a guest whose disk is on the shared folder without copying it", async () => {
    await lab.defineGuest("h3", { name: "shared-1", kind: "idle", disk: "shared", diskMiB: 4 });
    const sum = await lab.diskChecksum("h3", "shared-1");
    const before = await lab.counters("h3", "shared-1");
    await lab.virsh("h3", "migrate", "--live", "--p2p", "--persistent", "--undefinesource", "shared-1", lab.host("h2").uri);
    expect(await lab.where("shared-1")).toEqual({ defined: ["h2"], running: ["h2"] });
    expect((await lab.counters("h2", "shared-1")).ticks).toBeGreaterThanOrEqual(before.ticks);
    expect(await lab.diskChecksum("h2", "shared-1")).toBe(sum);
  });

  it("stop() ends every lab process (libvirtd, QEMU), may be called twice, and removes the folder", async () => {
    const pids = lab.pids();
    const qemus = pids.filter((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith("/usr/bin/qemu-system-x86_64"));
    expect(qemus.length).toBeGreaterThanOrEqual(4); // idle-1, dirty-1, disk-1, shared-1
    for (const h of lab.hosts) expect(pids).toContain(h.libvirtdPid);
    const t0 = Date.now();
    await lab.stop();
    console.log(`lab: teardown of ${pids.length} processes took ${Date.now() - t0} ms`);
    expect(pids.filter(alive)).toEqual([]);
    expect(lab.pids()).toEqual([]);
    await lab.stop();
    expect(() => readFileSync(`${lab.dir}/h1/passwd`)).toThrow();
    expect(readFileSync("/proc/self/mounts", "utf8")).not.toContain(lab.sharedDir);
  });
});

describe("lab with a shared instances dir", () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ hosts: 2, sharedInstancesDir: true });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it("mounts one folder as /var/lib/libvirt/images on every host", async () => {
    expect(lab.host("h1").imagesDir).toBe(lab.sharedDir);
    expect(lab.host("h2").imagesDir).toBe(lab.sharedDir);
    writeFileSync(`${lab.sharedDir}/probe.img`, Buffer.alloc(4096));
    for (const h of lab.hosts) {
      await lab.virsh(h.name, "pool-refresh", "default");
      expect(await lab.virsh(h.name, "vol-list", "default")).toMatch(/probe\.img\s+\/var\/lib\/libvirt\/images\/probe\.img/);
    }
    await expect(lab.defineGuest("h1", { name: "local", kind: "idle", disk: "local-qcow2" })).rejects.toThrow(/local-qcow2 needs a lab without sharedInstancesDir/);
  });
});
