/**
 * A real libvirt lab on one machine, for integration tests (facts: ../shared/notes/libvirt-lab.md).
 *
 * Each fake host is one `libvirtd` (system mode) in its own mount + UTS namespace, listening on
 * qemu+tcp://127.0.0.N/system, with its own host_uuid, migration port range, images dir, /etc/passwd,
 * /etc/group and /etc/hosts, and optionally its own sshd. One folder is mounted into every host at the
 * same path (shared storage). Guests are a tiny multiboot kernel run under TCG. Everything lives under
 * one temp folder and is torn down by PID.
 *
 * API published first (the libvirt driver's integration tests code against it); see lab.test.ts.
 */

import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { accessSync, closeSync, constants, createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { fingerprintOf } from "../../src/drivers/ssh/session.js";

/** Lab host names, in address order: h1 = 127.0.0.2 (slot 0), h2 = .3, h3 = .4. */
export type LabHostName = "h1" | "h2" | "h3";

export interface LabOptions {
  /** Number of libvirt hosts (default 3). */
  readonly hosts?: 2 | 3;
  /** Start an sshd per host in its namespace (root login with the lab's key only). Default false. */
  readonly ssh?: boolean;
  /**
   * Make /var/lib/libvirt/images the same shared folder on every host (the seed's shared instances
   * dir). Default false: each host has a private images dir. Either way the shared folder is also
   * mounted at `lab.sharedPath` on every host.
   */
  readonly sharedInstancesDir?: boolean;
}

export interface LabHost {
  readonly name: LabHostName;
  /** 127.0.0.N (another 127.0.x.N block when a second lab runs at the same time). */
  readonly address: string;
  /** qemu+tcp://ADDRESS/system */
  readonly uri: string;
  /** Kernel host name inside the host's UTS namespace ("ballast-lab-h1"); every host's /etc/hosts maps all of them. */
  readonly hostname: string;
  readonly hostUuid: string;
  readonly migrationPorts: { readonly min: number; readonly max: number };
  /** PID of this host's libvirtd (the first process of its namespaces; a new one after restartLibvirtd). */
  readonly libvirtdPid: number;
  /** Real-filesystem folder that appears as /var/lib/libvirt/images inside the host (the shared folder when sharedInstancesDir). */
  readonly imagesDir: string;
  /** Real-filesystem files bind-mounted over the host's /etc/passwd, /etc/group and /etc/hosts; edit them in place (writeFile) to change what the host sees. */
  readonly passwdFile: string;
  readonly groupFile: string;
  readonly hostsFile: string;
  /** Present when the lab was started with ssh: true. */
  readonly ssh?: LabSsh;
}

export interface LabSsh {
  readonly address: string;
  readonly port: number;
  readonly user: "root";
  /** OpenSSH fingerprint of the host's ed25519 key: "SHA256:" + 43 base64 characters. */
  readonly hostKeyFingerprint: string;
  readonly sshdPid: number;
}

export type GuestKind = "idle" | "busy" | { readonly dirtyMiB: number; readonly rateMiBps: number };

export interface GuestSpec {
  readonly name: string;
  /** Guest RAM (default 64; a dirtying guest gets at least dirtyMiB + 8). */
  readonly memoryMiB?: number;
  readonly kind: GuestKind;
  /**
   * none (default): disk-less. local-qcow2: a qcow2 of `diskMiB` (default 16) filled with random data in
   * the host's own images dir. shared: the same in the folder every host mounts at `lab.sharedPath`.
   */
  readonly disk?: "none" | "local-qcow2" | "shared";
  readonly diskMiB?: number;
  /** Define a persistent domain (default true); false starts a transient one (`virsh create`). */
  readonly persistent?: boolean;
  /** Start it (default true). */
  readonly start?: boolean;
  /** Adds a VNC display listening on this address (for preflight's graphics check). */
  readonly graphicsListen?: string;
  /** Written as <metadata><ballast:tags xmlns:ballast="https://ballast.dev/xmlns/1">a,b</ballast:tags></metadata>. */
  readonly tags?: readonly string[];
}

export interface LabGuest {
  readonly name: string;
  readonly host: LabHostName;
  /** The domain XML the lab defined. */
  readonly xml: string;
  /** Path of the disk inside the hosts (same path on every host), when it has one. */
  readonly diskPath?: string;
}

export interface LabLibvirtConfig {
  readonly allowInsecureTransport: true;
  readonly instancesDir: string;
  readonly hosts: readonly {
    readonly name: LabHostName;
    readonly uri: string;
    readonly loadSource: "domains";
    readonly migrationPorts: { readonly min: number; readonly max: number };
    readonly ssh?: { readonly user: "root"; readonly port: number; readonly privateKeyFile: string; readonly hostKeys: readonly string[] };
  }[];
}

/** The guest kernel's counters at guest-physical 0x500. */
export interface GuestCounters {
  /** 0xBA11A570 once the kernel runs. */
  readonly magic: number;
  /** 64 Hz PIT ticks since boot (they keep rising on the destination after a migration). */
  readonly ticks: number;
  /** Completed passes over the dirtied region (dirtying guests only). */
  readonly sweeps: number;
}

export interface GuestWhere {
  /** Hosts where the domain is defined (persistent or running). */
  readonly defined: LabHostName[];
  /** Hosts where it is running. */
  readonly running: LabHostName[];
}

export interface Lab {
  /** The lab's temp folder; removed by stop(). */
  readonly dir: string;
  readonly hosts: readonly LabHost[];
  /** Path, identical inside every host, of the folder all hosts share. */
  readonly sharedPath: string;
  /**
   * Real-filesystem path of the shared folder (a FUSE pass-through mount of type fuse.glusterfs, so libvirt
   * treats it as cluster storage and live-migrates guests with disks there without copying them).
   */
  readonly sharedDir: string;
  /** Present when the lab was started with ssh: true: the client key every host's sshd accepts for root. */
  readonly sshPrivateKeyFile?: string;
  /** Seconds it took startLab to have every host answering. */
  readonly startSeconds: number;
  host(name: LabHostName): LabHost;
  /**
   * A ballast `libvirt:` config section for this lab (qemu+tcp allowed, load from domain CPU time since
   * every fake host is the same machine, ssh settings when the lab has sshd). Plain data: YAML it or parse it.
   */
  libvirtConfig(opts?: { readonly instancesDir?: string }): LabLibvirtConfig;
  defineGuest(host: LabHostName, spec: GuestSpec): Promise<LabGuest>;
  counters(host: LabHostName, guest: string): Promise<GuestCounters>;
  where(guest: string): Promise<GuestWhere>;
  /** virsh -c <host uri> ...args (execFile, never a shell); resolves with stdout, rejects with stderr in the message. */
  virsh(host: LabHostName, ...args: string[]): Promise<string>;
  /** SHA-256 of the guest-visible content of the guest's disk on that host (qcow2 read through qemu-img). */
  diskChecksum(host: LabHostName, guest: string): Promise<string>;
  /** Every live process of the lab right now (libvirtd, QEMU, sshd and children), found by namespace. */
  pids(): number[];
  /**
   * Restarts a host's libvirtd inside its namespaces, as systemd would after a crash or on `systemctl restart`:
   * `signal` ends the running one first (default SIGTERM; nothing is sent to one already dead), SIGKILL follows
   * after `stopTimeoutMs` (default 30 s, like a unit's TimeoutStopSec), then a new one starts and answers the API;
   * QEMU guests keep running throughout. Needs a process still in the host's namespaces (its sshd, or a guest).
   * Resolves with the new PID (also `host(name).libvirtdPid` from then on).
   */
  restartLibvirtd(host: LabHostName, opts?: { readonly signal?: "SIGTERM" | "SIGKILL"; readonly stopTimeoutMs?: number }): Promise<number>;
  /** SIGTERM, wait, SIGKILL every lab process, then remove the folder. Safe to call twice. */
  stop(): Promise<void>;
}


// ───────────────────────────── implementation ─────────────────────────────

const execFileP = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
// From test/lab (vitest) or dist/test/lab (a compiled bench): the assembly source stays in test/lab.
const KERNEL_SOURCE = [join(HERE, "guest", "kernel.asm"), join(HERE, "../../../test/lab/guest/kernel.asm")].find((p) => existsSync(p)) ?? join(HERE, "guest", "kernel.asm");
/** Outlives labs: the QEMU capabilities cache (first start ≈ 8 s, later ≈ 0.5 s) and built kernels. */
const CACHE = process.env.BALLAST_LAB_CACHE ?? "/var/tmp/ballast-lab-cache";
const SHARED_PATH = "/var/lib/ballast-lab/shared";
const IMAGES_PATH = "/var/lib/libvirt/images";
const SSH_PORT = 2222;
const MAX_SLOTS = 8;
const HOST_NAMES: readonly LabHostName[] = ["h1", "h2", "h3"];
const SBIN = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
const ENV = { PATH: SBIN.join(":"), HOME: "/root", LANG: "C.UTF-8" };
// The lab's shell script may only contain fixed text and paths/numbers the lab generated; this keeps it so.
const SAFE_PATH = /^[A-Za-z0-9._/-]+$/;
const GUEST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function findCommand(cmd: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(":").filter(Boolean), ...SBIN];
  for (const d of dirs) {
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return join(d, cmd);
    } catch {
      // next directory
    }
  }
  return undefined;
}

/** Command → Debian package, as scripts/test-deps.sh installs them. */
const REQUIRED: readonly (readonly [string, string])[] = [
  ["virsh", "libvirt-clients"],
  ["libvirtd", "libvirt-daemon + libvirt-daemon-driver-qemu"],
  ["qemu-system-x86_64", "qemu-system-x86"],
  ["qemu-img", "qemu-utils"],
  ["nasm", "nasm"],
  ["sshd", "openssh-server"],
  ["ssh-keygen", "openssh-client"],
  ["unshare", "util-linux"],
  ["hostname", "hostname"],
  ["bindfs", "bindfs"],
];

export function labPrerequisites(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push("root (mount namespaces and system-mode libvirtd)");
  for (const [cmd, pkg] of REQUIRED) if (findCommand(cmd) === undefined) missing.push(`${cmd} (Debian package ${pkg}; run scripts/test-deps.sh)`);
  if (findCommand("libvirtd") !== undefined && !existsSync("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so")) {
    missing.push("libvirt's QEMU driver (Debian package libvirt-daemon-driver-qemu)");
  }
  if (!readFileSync("/proc/filesystems", "utf8").includes("overlay")) missing.push("overlayfs in the kernel");
  if (!existsSync("/dev/fuse")) missing.push("/dev/fuse (the shared folder is a FUSE mount)");
  return missing;
}

// ── guest kernel ──

/** Assembles the guest kernel once per source version; concurrent labs race harmlessly (write, then rename). */
async function guestKernel(): Promise<string> {
  const source = readFileSync(KERNEL_SOURCE);
  const out = join(CACHE, `kernel-${createHash("sha256").update(source).digest("hex").slice(0, 16)}.bin`);
  if (existsSync(out)) return out;
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  await execFileP("nasm", ["-f", "bin", "-o", tmp, KERNEL_SOURCE], { env: ENV });
  renameSync(tmp, out);
  return out;
}

// ── slots: several labs (parallel test files) get disjoint addresses and ports ──

interface Slot {
  readonly index: number;
  readonly file: string;
}

const isAlive = (pid: number): boolean => {
  try {
    // A zombie is gone for our purposes (its parent just has not reaped it yet).
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

function mountNs(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Every live process whose mount namespace is one of `namespaces`. */
function processesIn(namespaces: ReadonlySet<string>): number[] {
  if (namespaces.size === 0) return [];
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const ns = mountNs(Number(entry));
    if (ns !== undefined && namespaces.has(ns) && isAlive(Number(entry))) found.push(Number(entry));
  }
  return found;
}

function killAll(pids: Iterable<number>, signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** What a slot file records, so a lab whose test process was SIGKILLed can be cleaned up by the next one. */
interface SlotRecord {
  readonly owner: number;
  readonly dir?: string;
  readonly namespaces: readonly string[];
  /** Processes outside the namespaces (the FUSE server). */
  readonly pids?: readonly number[];
}

const cmdlineOf = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
};

function unmountLazily(path: string): void {
  try {
    execFileSync("umount", ["-l", path], { stdio: "ignore", env: ENV });
  } catch {
    // not mounted
  }
}

function reclaim(held: SlotRecord): void {
  killAll(processesIn(new Set(held.namespaces)), "SIGKILL");
  // A PID may have been reused since: only kill what still looks like this lab's.
  killAll((held.pids ?? []).filter((p) => held.dir !== undefined && cmdlineOf(p).includes(held.dir)), "SIGKILL");
  if (held.dir !== undefined && SAFE_PATH.test(held.dir) && held.dir.startsWith(join(tmpdir(), "ballast-lab-"))) {
    unmountLazily(join(held.dir, "shared"));
    rmSync(held.dir, { recursive: true, force: true });
  }
}

/** Slot locks live in /run (gone after a reboot) and are machine-wide, whatever BALLAST_LAB_CACHE says. */
const SLOTS_DIR = process.env.BALLAST_LAB_SLOTS ?? "/run/ballast-lab-slots";

const slotAddress = (slot: number, host: number): string => `127.0.${slot}.${host + 2}`;

/** True when nothing (another lab, a libvirtd or sshd not started by a lab) holds a port this slot needs. */
async function slotPortsFree(slot: number): Promise<boolean> {
  const free = (host: string, port: number): Promise<boolean> =>
    new Promise((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
    });
  for (let h = 0; h < HOST_NAMES.length; h++) {
    for (const port of [16509, SSH_PORT]) if (!(await free(slotAddress(slot, h), port))) return false;
  }
  return true;
}

function readSlot(file: string): SlotRecord | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as SlotRecord;
  } catch {
    return undefined; // being written right now, or garbage: leave it to its owner
  }
}

/**
 * Cleans up after labs whose test process died without stop() (SIGKILL), then claims the first free
 * slot whose addresses nothing else uses.
 */
async function claimSlot(): Promise<Slot> {
  mkdirSync(SLOTS_DIR, { recursive: true });
  for (let index = 0; index < MAX_SLOTS; index++) {
    const file = join(SLOTS_DIR, `slot-${index}.json`);
    const held = existsSync(file) ? readSlot(file) : undefined;
    if (held !== undefined && !isAlive(held.owner)) {
      reclaim(held);
      rmSync(file, { force: true });
    }
  }
  for (let index = 0; index < MAX_SLOTS; index++) {
    const file = join(SLOTS_DIR, `slot-${index}.json`);
    try {
      const fd = openSync(file, "wx");
      writeFileSync(fd, JSON.stringify({ owner: process.pid, namespaces: [] } satisfies SlotRecord));
      closeSync(fd);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw e;
    }
    if (await slotPortsFree(index)) return { index, file };
    rmSync(file, { force: true });
  }
  throw new Error(`lab: all ${MAX_SLOTS} lab slots (${SLOTS_DIR}) are in use or their addresses are taken`);
}

// ── host files ──

interface HostPlan {
  readonly name: LabHostName;
  readonly index: number;
  readonly dir: string;
  readonly address: string;
  readonly hostname: string;
  readonly hostUuid: string;
  readonly migrationPorts: { readonly min: number; readonly max: number };
  readonly displayPorts: { readonly min: number; readonly max: number };
}

function libvirtdConf(h: HostPlan): string {
  return [
    "listen_tls = 0",
    "listen_tcp = 1",
    `listen_addr = "${h.address}"`,
    'auth_tcp = "none"',
    'auth_unix_ro = "none"',
    'auth_unix_rw = "none"',
    // Two hosts with one UUID make libvirt refuse: "Attempt to migrate guest to the same host".
    `host_uuid = "${h.hostUuid}"`,
    'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"',
    "",
  ].join("\n");
}

function qemuConf(h: HostPlan): string {
  return [
    'user = "root"',
    'group = "root"',
    "dynamic_ownership = 0",
    "remember_owner = 0",
    'security_driver = "none"',
    // Two daemons on one machine would clash on cgroup names.
    "cgroup_controllers = [ ]",
    "namespaces = [ ]",
    // No virtlogd in the lab.
    'stdio_handler = "file"',
    `migration_address = "${h.address}"`,
    `migration_host = "${h.address}"`,
    `migration_port_min = ${h.migrationPorts.min}`,
    `migration_port_max = ${h.migrationPorts.max}`,
    `remote_display_port_min = ${h.displayPorts.min}`,
    `remote_display_port_max = ${h.displayPorts.max}`,
    "",
  ].join("\n");
}

// Block migration needs the destination to pre-create disks, which libvirt does only inside a storage pool.
const POOL_XML = `<pool type='dir'>
  <name>default</name>
  <target><path>${IMAGES_PATH}</path></target>
</pool>
`;

/** The real passwd/group plus the service accounts Debian's libvirt-daemon-system would add (that package is not installed). */
function accounts(): { passwd: string; group: string } {
  let passwd = readFileSync("/etc/passwd", "utf8");
  let group = readFileSync("/etc/group", "utf8");
  const has = (file: string, name: string): boolean => file.split("\n").some((l) => l.startsWith(`${name}:`));
  const gidOf = (name: string): string | undefined =>
    group
      .split("\n")
      .find((l) => l.startsWith(`${name}:`))
      ?.split(":")[2];
  if (!passwd.endsWith("\n")) passwd += "\n";
  if (!group.endsWith("\n")) group += "\n";
  if (!has(group, "kvm")) group += "kvm:x:64054:\n";
  if (!has(group, "libvirt")) group += "libvirt:x:64053:\n";
  // libvirt's qemu driver aborts ("Failed to parse user/group 'libvirt-qemu'") without these, even with user = "root".
  if (!has(group, "libvirt-qemu")) group += "libvirt-qemu:x:64055:\n";
  if (!has(passwd, "libvirt-qemu")) passwd += `libvirt-qemu:x:64055:${gidOf("libvirt-qemu") ?? "64055"}:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n`;
  return { passwd, group };
}

function sshdConfig(h: HostPlan, labDir: string): string {
  return [
    `ListenAddress ${h.address}:${SSH_PORT}`,
    `HostKey ${h.dir}/ssh/ssh_host_ed25519_key`,
    "PidFile none",
    `AuthorizedKeysFile ${labDir}/ssh/authorized_keys`,
    "PermitRootLogin prohibit-password",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    // The lab folder lives under /tmp (mode 1777), which StrictModes rejects.
    "StrictModes no",
    "Subsystem sftp internal-sftp",
    "MaxStartups 50",
    "LogLevel VERBOSE",
    "",
  ].join("\n");
}

/**
 * The host's namespace set-up: fixed text plus folders the lab created (checked against SAFE_PATH)
 * and numbers. No guest or host name from a caller ever appears here.
 */
function hostScript(h: HostPlan, opts: { ssh: boolean; sharedDir: string; sharedInstancesDir: boolean; capsDir: string }): string {
  for (const p of [h.dir, opts.sharedDir, opts.capsDir]) if (!SAFE_PATH.test(p)) throw new Error(`lab: unexpected characters in path ${p}`);
  const lines = [
    "set -eu",
    `hostname ballast-lab-h${h.index + 1}`,
    "mount -t tmpfs -o mode=755 tmpfs /run",
    "mkdir -p /run/lock /run/libvirt /run/sshd",
  ];
  for (const d of ["lib", "cache", "log"]) {
    lines.push(`mount -t overlay overlay -o lowerdir=/var/${d},upperdir=${h.dir}/upper-${d},workdir=${h.dir}/work-${d} /var/${d}`);
  }
  lines.push(
    `mkdir -p ${IMAGES_PATH} ${SHARED_PATH} /var/cache/libvirt/qemu/capabilities /var/log/libvirt/qemu`,
    `mount --bind ${h.dir}/etc-libvirt /etc/libvirt`,
    `mount --bind ${opts.sharedInstancesDir ? opts.sharedDir : `${h.dir}/images`} ${IMAGES_PATH}`,
    `mount --bind ${opts.sharedDir} ${SHARED_PATH}`,
    `mount --bind ${opts.capsDir} /var/cache/libvirt/qemu/capabilities`,
    `mount --bind ${h.dir}/passwd /etc/passwd`,
    `mount --bind ${h.dir}/group /etc/group`,
    `mount --bind ${h.dir}/hosts /etc/hosts`,
  );
  if (opts.ssh) lines.push(`/usr/sbin/sshd -D -f ${h.dir}/ssh/sshd_config -E ${h.dir}/sshd.log &`, `echo $! > ${h.dir}/sshd.pid`);
  lines.push("exec libvirtd --listen --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirtd.pid");
  return lines.join("\n") + "\n";
}

/** OpenSSH's "SHA256:…" fingerprint of a public key line ("ssh-ed25519 AAAA… comment"). */
function fingerprintOfPublicKey(line: string): string {
  const blob = line.trim().split(/\s+/)[1];
  if (blob === undefined) throw new Error(`lab: not an OpenSSH public key line: ${line}`);
  return fingerprintOf(Buffer.from(blob, "base64"));
}

/** Waits for a listener; `what` describes the server (with its log tail) only when it failed. */
async function waitForPort(address: string, port: number, deadline: number, alive: () => boolean, what: () => string): Promise<void> {
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = connect({ host: address, port });
      s.once("connect", () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (open) return;
    if (!alive()) throw new Error(`lab: ${what()} exited during start-up`);
    if (Date.now() > deadline) throw new Error(`lab: ${what()} did not listen on ${address}:${port} in time`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

// ── guests ──

const xmlEscape = (s: string): string => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

function guestCmdline(kind: GuestKind): string {
  if (kind === "idle" || kind === "busy") return `mode=${kind}`;
  if (!(Number.isInteger(kind.dirtyMiB) && kind.dirtyMiB > 0 && Number.isInteger(kind.rateMiBps) && kind.rateMiBps > 0)) {
    throw new Error(`lab: dirtyMiB and rateMiBps must be positive integers, got ${JSON.stringify(kind)}`);
  }
  return `mode=dirty mib=${kind.dirtyMiB} rate=${kind.rateMiBps}`;
}

function guestXml(spec: GuestSpec, kernel: string, diskPath: string | undefined): string {
  const dirty = typeof spec.kind === "object" ? spec.kind.dirtyMiB : 0;
  // The dirtied region starts at 2 MiB; leave room above it.
  const memory = Math.max(spec.memoryMiB ?? 64, dirty + 8);
  const tags = spec.tags?.length
    ? `  <metadata>\n    <ballast:tags xmlns:ballast="https://ballast.dev/xmlns/1">${xmlEscape(spec.tags.join(","))}</ballast:tags>\n  </metadata>\n`
    : "";
  const disk = diskPath
    ? `    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='${xmlEscape(diskPath)}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n`
    : "";
  const graphics = spec.graphicsListen !== undefined ? `    <graphics type='vnc' autoport='yes' listen='${xmlEscape(spec.graphicsListen)}'/>\n` : "";
  return `<domain type='qemu'>
  <name>${xmlEscape(spec.name)}</name>
${tags}  <memory unit='MiB'>${memory}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${xmlEscape(kernel)}</kernel>
    <cmdline>${guestCmdline(spec.kind)}</cmdline>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
${disk}${graphics}    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** Parses `xp /4wx 0x500` output: "0000000000000500: 0xba11a570 0x00000123 0x00000004 0x00000000". */
export function parseCounters(text: string): GuestCounters {
  const words = /0*500:\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)/i.exec(text);
  if (!words) throw new Error(`lab: unexpected monitor output: ${text}`);
  return { magic: parseInt(words[1] ?? "", 16), ticks: parseInt(words[2] ?? "", 16), sweeps: parseInt(words[3] ?? "", 16) };
}

// ── the lab ──

const running = new Set<() => void>();
let exitHookInstalled = false;

/**
 * Last resort when a test process ends without stop(): SIGKILL every lab process, synchronously, on exit
 * and on the signals test runners stop workers with (the signal is then re-raised, so it still ends the
 * process). A SIGKILLed process leaves its slot to be reclaimed by the next lab.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAllLabs = (): void => {
    for (const kill of running) kill();
    running.clear();
  };
  process.on("exit", killAllLabs);
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    const onSignal = (): void => {
      killAllLabs();
      process.removeListener(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  const missing = labPrerequisites();
  if (missing.length > 0) throw new Error(`lab: this machine lacks: ${missing.join("; ")}`);
  const started = Date.now();
  const count = opts.hosts ?? 3;
  const ssh = opts.ssh ?? false;
  const sharedInstancesDir = opts.sharedInstancesDir ?? false;
  const kernel = await guestKernel();
  const capsDir = join(CACHE, "qemu-capabilities");
  mkdirSync(capsDir, { recursive: true });

  const slot = await claimSlot();
  const dir = mkdtempSync(join(tmpdir(), "ballast-lab-"));
  // The shared folder is a FUSE pass-through mount typed fuse.glusterfs: libvirt then treats it as a
  // cluster filesystem, as it would NFS or GFS2, and allows live migration of guests with disks there.
  // (On a plain bind mount it refuses: "Migration without shared storage is unsafe".)
  const sharedDir = join(dir, "shared");
  const sharedData = join(dir, "shared-data");
  mkdirSync(sharedDir, { mode: 0o755 });
  mkdirSync(sharedData, { mode: 0o755 });

  const plans: HostPlan[] = HOST_NAMES.slice(0, count).map((name, index) => ({
    name,
    index,
    dir: join(dir, name),
    address: slotAddress(slot.index, index),
    hostname: `ballast-lab-h${index + 1}`,
    hostUuid: randomUUID(),
    migrationPorts: { min: 49152 + slot.index * 60 + index * 20, max: 49152 + slot.index * 60 + index * 20 + 19 },
    displayPorts: { min: 5900 + slot.index * 60 + index * 20, max: 5900 + slot.index * 60 + index * 20 + 19 },
  }));

  // State shared with stop() and the exit hook from here on, so a failed start still cleans up.
  const namespaces = new Set<string>();
  // Per host: its mount namespace, and its libvirtd's PID (replaced by restartLibvirtd).
  const hostNs = new Map<LabHostName, string>();
  const libvirtdPids = new Map<LabHostName, number>();
  const direct = new Set<number>();
  /**
   * Starts a process detached (its own session, so a test runner's process-group signals do not reach it half-way),
   * logging to `logFile`; its PID is kept for teardown.
   */
  const spawnDetached = (cmd: string, args: readonly string[], logFile: string, what: string): { child: ChildProcess; pid: number } => {
    const log = openSync(logFile, "a");
    const child = spawn(cmd, args, { detached: true, stdio: ["ignore", log, log], env: ENV });
    closeSync(log);
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`lab: could not start ${what}`);
    direct.add(pid);
    return { child, pid };
  };
  let fusePid: number | undefined;
  const record = (): void => writeFileSync(slot.file, JSON.stringify({ owner: process.pid, dir, namespaces: [...namespaces], pids: fusePid === undefined ? [] : [fusePid] } satisfies SlotRecord));
  const killNow = (): void => {
    const pids = [...processesIn(namespaces), ...[...direct].filter(isAlive), ...(fusePid !== undefined ? [fusePid] : [])];
    killAll(pids, "SIGKILL");
    // Synchronous (exit and signal handlers cannot await): wait until they are gone, so the namespaces'
    // overlay mounts no longer use the folder.
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (const end = Date.now() + 3000; pids.some(isAlive) && Date.now() < end; ) Atomics.wait(nap, 0, 0, 20);
    unmountLazily(sharedDir);
    try {
      rmSync(dir, { recursive: true, force: true });
    } finally {
      rmSync(slot.file, { force: true });
    }
  };
  running.add(killNow);
  installExitHook();

  let stopping: Promise<void> | undefined;
  const hostPids = (): number[] => [...new Set([...processesIn(namespaces), ...[...direct].filter(isAlive)])];
  const fusePids = (): number[] => (fusePid !== undefined && isAlive(fusePid) ? [fusePid] : []);
  const labPids = (): number[] => [...hostPids(), ...fusePids()];
  /** SIGTERM, wait, SIGKILL, wait. */
  const terminate = async (list: () => number[]): Promise<void> => {
    const gone = async (ms: number): Promise<boolean> => {
      for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
        if (list().length === 0) return true;
      }
      return list().length === 0;
    };
    killAll(list(), "SIGTERM");
    if (await gone(5000)) return;
    killAll(list(), "SIGKILL");
    if (!(await gone(3000))) throw new Error(`lab: processes survived SIGKILL: ${list().join(", ")}`);
  };
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      // Hosts first (QEMU may still write to the shared folder), then the FUSE server, which unmounts on SIGTERM.
      await terminate(hostPids);
      await terminate(fusePids);
      unmountLazily(sharedDir);
      running.delete(killNow);
      // BALLAST_LAB_KEEP=1 keeps the folder (logs, overlay upper layers) for a post-mortem.
      if (process.env.BALLAST_LAB_KEEP !== "1") rmSync(dir, { recursive: true, force: true });
      rmSync(slot.file, { force: true });
    })());

  try {
    // -f: stays in the foreground so its PID is the server's. As root no fusermount is involved.
    const fuseLog = openSync(join(dir, "bindfs.log"), "a");
    const fuse = spawn("bindfs", ["-f", "-o", "subtype=glusterfs,fsname=ballast-lab-shared", sharedData, sharedDir], { detached: true, stdio: ["ignore", fuseLog, fuseLog], env: ENV });
    closeSync(fuseLog);
    fuse.unref();
    fusePid = fuse.pid;
    record();
    for (const end = Date.now() + 10_000; !readFileSync("/proc/self/mounts", "utf8").includes(` ${sharedDir} fuse.glusterfs `); await new Promise((r) => setTimeout(r, 20))) {
      if (Date.now() > end || fuse.exitCode !== null) throw new Error(`lab: the shared FUSE folder did not mount: ${tail(join(dir, "bindfs.log"))}`);
    }

    let sshKey: string | undefined;
    if (ssh) {
      mkdirSync(join(dir, "ssh"), { mode: 0o700 });
      sshKey = join(dir, "ssh", "id_ed25519");
      await execFileP("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "ballast-lab", "-f", sshKey], { env: ENV });
      writeFileSync(join(dir, "ssh", "authorized_keys"), readFileSync(`${sshKey}.pub`), { mode: 0o600 });
    }
    const { passwd, group } = accounts();
    const hostsFile = ["127.0.0.1 localhost", ...plans.map((p) => `${p.address} ${p.hostname}`), ""].join("\n");

    const hosts = await Promise.all(
      plans.map(async (h): Promise<LabHost> => {
        for (const sub of ["etc-libvirt/qemu", "etc-libvirt/storage/autostart", "images", "upper-lib", "work-lib", "upper-cache", "work-cache", "upper-log", "work-log"]) {
          mkdirSync(join(h.dir, sub), { recursive: true });
        }
        writeFileSync(join(h.dir, "etc-libvirt/libvirtd.conf"), libvirtdConf(h));
        writeFileSync(join(h.dir, "etc-libvirt/qemu.conf"), qemuConf(h));
        writeFileSync(join(h.dir, "etc-libvirt/storage/default.xml"), POOL_XML);
        symlinkSync("/etc/libvirt/storage/default.xml", join(h.dir, "etc-libvirt/storage/autostart/default.xml"));
        writeFileSync(join(h.dir, "passwd"), passwd);
        writeFileSync(join(h.dir, "group"), group);
        writeFileSync(join(h.dir, "hosts"), hostsFile);
        let fingerprint = "";
        if (ssh) {
          mkdirSync(join(h.dir, "ssh"), { mode: 0o700 });
          await execFileP("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", h.hostname, "-f", join(h.dir, "ssh/ssh_host_ed25519_key")], { env: ENV });
          fingerprint = fingerprintOfPublicKey(readFileSync(join(h.dir, "ssh/ssh_host_ed25519_key.pub"), "utf8"));
          writeFileSync(join(h.dir, "ssh/sshd_config"), sshdConfig(h, dir));
        }
        const script = hostScript(h, { ssh, sharedDir, sharedInstancesDir, capsDir });
        const { child, pid } = spawnDetached("unshare", ["--mount", "--uts", "--propagation", "private", "--", "sh", "-c", script], join(h.dir, "start.log"), h.name);
        let exited = false;
        child.once("exit", () => (exited = true));
        const deadline = Date.now() + 90_000;
        const why = (): string => `${h.name}:\n${tail(join(h.dir, "start.log"))}\n${tail(join(h.dir, "upper-log/libvirt/libvirtd.log"))}`;
        // The namespace exists once unshare has exec'd the shell.
        const own = mountNs(process.pid);
        while (mountNs(pid) === own && !exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        const ns = mountNs(pid);
        if (ns !== undefined && ns !== own) {
          namespaces.add(ns);
          hostNs.set(h.name, ns);
        }
        libvirtdPids.set(h.name, pid);
        record();
        await waitForPort(h.address, 16509, deadline, () => !exited, () => `libvirtd of ${why()}`);
        let hostSsh: LabSsh | undefined;
        if (ssh) {
          await waitForPort(h.address, SSH_PORT, deadline, () => !exited, () => `sshd of ${h.name}:\n${tail(join(h.dir, "sshd.log"))}`);
          const sshdPid = Number(readFileSync(join(h.dir, "sshd.pid"), "utf8").trim());
          hostSsh = { address: h.address, port: SSH_PORT, user: "root", hostKeyFingerprint: fingerprint, sshdPid };
        }
        return {
          name: h.name,
          address: h.address,
          uri: `qemu+tcp://${h.address}/system`,
          hostname: h.hostname,
          hostUuid: h.hostUuid,
          migrationPorts: h.migrationPorts,
          get libvirtdPid(): number {
            return libvirtdPids.get(h.name) ?? pid;
          },
          imagesDir: sharedInstancesDir ? sharedDir : join(h.dir, "images"),
          passwdFile: join(h.dir, "passwd"),
          groupFile: join(h.dir, "group"),
          hostsFile: join(h.dir, "hosts"),
          ...(hostSsh ? { ssh: hostSsh } : {}),
        };
      }),
    );

    const byName = new Map(hosts.map((h) => [h.name, h]));
    const host = (name: LabHostName): LabHost => {
      const h = byName.get(name);
      if (!h) throw new Error(`lab: no host ${name} (this lab has ${hosts.map((x) => x.name).join(", ")})`);
      return h;
    };
    const virsh = async (name: LabHostName, ...args: string[]): Promise<string> => {
      try {
        const { stdout } = await execFileP("virsh", ["-q", "-c", host(name).uri, ...args], { env: ENV, timeout: 180_000, maxBuffer: 16 << 20 });
        return stdout;
      } catch (e) {
        const err = e as Error & { stderr?: string };
        throw new Error(`virsh ${args.join(" ")} on ${name}: ${(err.stderr ?? "").trim() || err.message}`);
      }
    };
    // Every host answers the API, not only the TCP port (the QEMU driver has finished initialising)…
    await Promise.all(hosts.map((h) => virsh(h.name, "list", "--all")));
    // …and it is our daemon that answered: one that cannot bind its address exits within milliseconds.
    for (const h of hosts) if (!isAlive(h.libvirtdPid)) throw new Error(`lab: libvirtd of ${h.name} exited: ${tail(join(dir, h.name, "upper-log/libvirt/libvirtd.log"))}`);

    /** Where a path inside the hosts lives on the real filesystem. */
    const realPath = (name: LabHostName, inside: string): string => {
      if (inside.startsWith(`${IMAGES_PATH}/`)) return join(host(name).imagesDir, inside.slice(IMAGES_PATH.length + 1));
      if (inside.startsWith(`${SHARED_PATH}/`)) return join(sharedDir, inside.slice(SHARED_PATH.length + 1));
      throw new Error(`lab: ${inside} is not in a lab images folder`);
    };

    const lab: Lab = {
      dir,
      hosts,
      sharedPath: SHARED_PATH,
      sharedDir,
      ...(sshKey !== undefined ? { sshPrivateKeyFile: sshKey } : {}),
      startSeconds: (Date.now() - started) / 1000,
      host,
      virsh,
      libvirtConfig: (o = {}) => ({
        allowInsecureTransport: true,
        instancesDir: o.instancesDir ?? IMAGES_PATH,
        hosts: hosts.map((h) => ({
          name: h.name,
          uri: h.uri,
          loadSource: "domains" as const,
          migrationPorts: h.migrationPorts,
          ...(h.ssh && sshKey !== undefined ? { ssh: { user: "root" as const, port: h.ssh.port, privateKeyFile: sshKey, hostKeys: [h.ssh.hostKeyFingerprint] } } : {}),
        })),
      }),
      async defineGuest(name, spec) {
        if (!GUEST_NAME.test(spec.name)) throw new Error(`lab: guest name ${JSON.stringify(spec.name)} is not a plain name`);
        const disk = spec.disk ?? "none";
        if (disk === "local-qcow2" && sharedInstancesDir) throw new Error("lab: local-qcow2 needs a lab without sharedInstancesDir");
        let diskPath: string | undefined;
        if (disk !== "none") {
          diskPath = `${disk === "shared" ? SHARED_PATH : IMAGES_PATH}/${spec.name}.qcow2`;
          const real = realPath(name, diskPath);
          const raw = `${real}.raw`;
          // Random content, so a block migration that copied nothing (or the wrong thing) shows in diskChecksum.
          writeFileSync(raw, randomBytes((spec.diskMiB ?? 16) << 20));
          await execFileP("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", raw, real], { env: ENV });
          unlinkSync(raw);
        }
        const xml = guestXml(spec, kernel, diskPath);
        const file = join(dir, `${name}-${spec.name}.xml`);
        writeFileSync(file, xml);
        if (spec.persistent ?? true) {
          await virsh(name, "define", file);
          if (spec.start ?? true) await virsh(name, "start", spec.name);
        } else {
          if (spec.start === false) throw new Error("lab: a transient guest exists only while it runs (start: false needs persistent: true)");
          await virsh(name, "create", file);
        }
        return { name: spec.name, host: name, xml, ...(diskPath !== undefined ? { diskPath } : {}) };
      },
      async counters(name, guest) {
        return parseCounters(await virsh(name, "qemu-monitor-command", guest, "--hmp", "xp /4wx 0x500"));
      },
      async where(guest) {
        const lists = await Promise.all(
          hosts.map(async (h) => {
            const [all, active] = await Promise.all([virsh(h.name, "list", "--all", "--name"), virsh(h.name, "list", "--name")]);
            const has = (out: string): boolean => out.split("\n").some((l) => l.trim() === guest);
            return { name: h.name, defined: has(all), running: has(active) };
          }),
        );
        return { defined: lists.filter((l) => l.defined).map((l) => l.name), running: lists.filter((l) => l.running).map((l) => l.name) };
      },
      async diskChecksum(name, guest) {
        const xml = await virsh(name, "dumpxml", guest);
        const source = /<source file='([^']+)'/.exec(xml)?.[1];
        if (source === undefined) throw new Error(`lab: ${guest} on ${name} has no file disk`);
        const tmp = join(dir, `checksum-${randomUUID()}.raw`);
        try {
          // -U: the image is open (locked) by the running QEMU.
          await execFileP("qemu-img", ["convert", "-U", "-q", "-O", "raw", realPath(name, source), tmp], { env: ENV });
          const hash = createHash("sha256");
          for await (const chunk of createReadStream(tmp)) hash.update(chunk as Buffer);
          return hash.digest("hex");
        } finally {
          rmSync(tmp, { force: true });
        }
      },
      pids: labPids,
      async restartLibvirtd(name, opts = {}) {
        const h = host(name);
        const old = h.libvirtdPid;
        if (isAlive(old)) {
          process.kill(old, opts.signal ?? "SIGTERM");
          // On SIGTERM libvirtd waits for its jobs (a migration no one steers may never end): SIGKILL after the timeout.
          for (const end = Date.now() + (opts.stopTimeoutMs ?? 30_000); isAlive(old); await new Promise((r) => setTimeout(r, 50))) {
            if (Date.now() > end) process.kill(old, "SIGKILL");
          }
        }
        const ns = hostNs.get(name);
        // Any process left in the namespace (sshd, QEMU) keeps its mounts alive; libvirtd joins it again.
        const anchor = ns === undefined ? undefined : processesIn(new Set([ns]))[0];
        if (anchor === undefined) throw new Error(`lab: nothing runs in ${name}'s namespaces any more (no sshd, no guest), so its libvirtd cannot be restarted`);
        // nsenter execs libvirtd (no --fork), so the child's PID is libvirtd's.
        const { child, pid } = spawnDetached(
          "nsenter",
          ["--target", String(anchor), "--mount", "--uts", "--", "libvirtd", "--listen", "--config", "/etc/libvirt/libvirtd.conf", "--pid-file", "/run/libvirtd.pid"],
          join(dir, name, "start.log"),
          `libvirtd of ${name} (restart)`,
        );
        libvirtdPids.set(name, pid);
        let exited = false;
        child.once("exit", () => (exited = true));
        const why = (): string => `libvirtd of ${name} (restarted):\n${tail(join(dir, name, "start.log"))}\n${tail(join(dir, name, "upper-log/libvirt/libvirtd.log"))}`;
        await waitForPort(h.address, 16509, Date.now() + 60_000, () => !exited, why);
        await virsh(name, "list", "--all");
        if (!isAlive(pid)) throw new Error(`lab: ${why()} exited`);
        return pid;
      },
      stop,
    };
    return lab;
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}
