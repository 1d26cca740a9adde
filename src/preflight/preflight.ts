/**
 * `ballast preflight SRC DST`: the seed's KVM live-migration prerequisites, checked between two
 * configured libvirt hosts over their SSH connections. Every remote action is an SFTP operation or a
 * TCP connection opened by the host (direct-tcpip); no host or VM name is ever part of a command line.
 */
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import type { Config } from "../config/schema.js";
import { SshSession, type TcpProbe } from "../drivers/ssh/session.js";
import { sshTargetFor, uriHost, type LibvirtHostConfig } from "../drivers/ssh/target.js";
import { virshDomainXml, type DomainXmlSource } from "./domain-xml.js";
import { graphicsListens, graphicsProblem } from "./graphics.js";

export type CheckStatus = "pass" | "warn" | "fail" | "skip";

export interface CheckResult {
  readonly check: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** One line telling the operator what to do; present on warn and fail. */
  readonly fix?: string;
}

export interface PreflightReport {
  readonly src: string;
  readonly dst: string;
  readonly ok: boolean;
  readonly checks: readonly CheckResult[];
}

export interface PreflightOptions {
  /** Where domain XML comes from (default: local virsh against each host's URI). */
  readonly domainXml?: DomainXmlSource;
  /** Per TCP probe (default 5 s). */
  readonly probeTimeoutMs?: number;
  /** Concurrent probes of the migration port range (default 8). */
  readonly probeConcurrency?: number;
}

/** libvirt's qemu.conf defaults (the seed quotes 49152–49261; libvirt itself uses 49152–49215). */
export const DEFAULT_MIGRATION_PORTS = { min: 49152, max: 49215 } as const;

const pass = (check: string, detail: string): CheckResult => ({ check, status: "pass", detail });
const fail = (check: string, detail: string, fix: string): CheckResult => ({ check, status: "fail", detail, fix });
const skip = (check: string, detail: string): CheckResult => ({ check, status: "skip", detail });

/** The port a p2p migration's source libvirtd connects to on the destination. */
export function libvirtPort(uri: string): number {
  const u = new URL(uri);
  if (u.port) return Number(u.port);
  if (u.protocol.startsWith("qemu+ssh")) return 22;
  if (u.protocol.startsWith("qemu+tcp")) return 16509;
  return 16514; // qemu+tls, and qemu:// with a host name, which is TLS
}

export function transportCheck(host: LibvirtHostConfig, allowInsecure: boolean): CheckResult {
  const check = `secure transport (${host.name})`;
  const scheme = new URL(host.uri).protocol.replace(/:$/, "");
  if (scheme === "qemu+ssh" || scheme === "qemu+tls") return pass(check, `${host.uri} uses ${scheme.slice(5)}`);
  const hostPart = new URL(host.uri).hostname;
  if (scheme === "qemu" && hostPart !== "") return pass(check, `${host.uri} uses tls (qemu:// with a host name)`);
  if (scheme === "qemu+tcp" && allowInsecure) {
    return { check, status: "warn", detail: `${host.uri} is unencrypted tcp, allowed by libvirt.allowInsecureTransport`, fix: `use qemu+tls:// or qemu+ssh:// for ${host.name} outside a lab` };
  }
  return fail(check, `${host.uri} is neither ssh nor tls`, `use qemu+ssh://${hostPart || "HOST"}/system or qemu+tls://${hostPart || "HOST"}/system for ${host.name}`);
}

interface Account {
  readonly id: number;
  /** Primary GID (users only). */
  readonly gid?: number;
}

/** name → id from /etc/passwd or /etc/group text. */
export function parseAccounts(text: string, kind: "passwd" | "group"): Map<string, Account> {
  const out = new Map<string, Account>();
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 3 || f[0] === undefined || f[0] === "" || f[0].startsWith("#")) continue;
    const id = Number(f[2]);
    if (!Number.isInteger(id)) continue;
    out.set(f[0], kind === "passwd" && f[3] !== undefined && /^\d+$/.test(f[3]) ? { id, gid: Number(f[3]) } : { id });
  }
  return out;
}

/** Mismatches of the configured users and groups between two hosts' account files. */
export function compareAccounts(
  names: { readonly users: readonly string[]; readonly groups: readonly string[] },
  a: { readonly host: string; readonly passwd: string; readonly group: string },
  b: { readonly host: string; readonly passwd: string; readonly group: string },
): { problems: string[]; checked: string[] } {
  const problems: string[] = [];
  const checked: string[] = [];
  const compare = (kind: "passwd" | "group", list: readonly string[]): void => {
    const [ma, mb] = [parseAccounts(kind === "passwd" ? a.passwd : a.group, kind), parseAccounts(kind === "passwd" ? b.passwd : b.group, kind)];
    const what = kind === "passwd" ? "user" : "group";
    for (const name of list) {
      const [x, y] = [ma.get(name), mb.get(name)];
      if (!x && !y) problems.push(`${what} ${name} exists on neither host`);
      else if (!x) problems.push(`${what} ${name} is missing on ${a.host}`);
      else if (!y) problems.push(`${what} ${name} is missing on ${b.host}`);
      else if (x.id !== y.id) problems.push(`${what} ${name}: ${kind === "passwd" ? "uid" : "gid"} ${x.id} on ${a.host}, ${y.id} on ${b.host}`);
      else if (x.gid !== y.gid) problems.push(`user ${name}: primary gid ${x.gid} on ${a.host}, ${y.gid} on ${b.host}`);
      else checked.push(`${name}=${x.id}`);
    }
  };
  compare("passwd", names.users);
  compare("group", names.groups);
  return { problems, checked };
}

/** Runs `fn` over `items` with at most `n` in flight, results in input order. */
async function mapLimit<T, R>(items: readonly T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** "49152-49160, 49170" from sorted ports. */
export function portRanges(ports: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ports.length; ) {
    let j = i;
    while (j + 1 < ports.length && ports[j + 1] === (ports[j] ?? 0) + 1) j++;
    parts.push(i === j ? `${ports[i]}` : `${ports[i]}-${ports[j]}`);
    i = j + 1;
  }
  return parts.join(", ");
}

const describeProbe = (p: TcpProbe): string => (p.result === "open" ? "connected" : p.result === "timeout" ? "no answer (filtered?)" : `${p.result}: ${p.message}`);

export async function runPreflight(config: Config, srcName: string, dstName: string, opts: PreflightOptions = {}): Promise<PreflightReport> {
  const libvirt = config.libvirt;
  if (!libvirt) throw new PreflightUsageError("preflight needs a libvirt: section in the config");
  const find = (name: string): LibvirtHostConfig => {
    const h = libvirt.hosts.find((x) => x.name === name);
    if (!h) throw new PreflightUsageError(`unknown host ${JSON.stringify(name)}; the config's libvirt hosts are: ${libvirt.hosts.map((x) => x.name).join(", ")}`);
    return h;
  };
  const src = find(srcName);
  const dst = find(dstName);
  if (src.name === dst.name) throw new PreflightUsageError("source and destination must be two different hosts");
  const probeTimeoutMs = opts.probeTimeoutMs ?? 5000;
  const dir = libvirt.instancesDir;
  const checks: CheckResult[] = [transportCheck(src, libvirt.allowInsecureTransport), transportCheck(dst, libvirt.allowInsecureTransport)];

  // Graphics come from libvirt, not SSH: checked whatever happens to the SSH connections.
  const graphics = (async (): Promise<CheckResult> => {
    const check = `graphics listen on 0.0.0.0 (${src.name} domains)`;
    try {
      const xmls = await (opts.domainXml ?? virshDomainXml)(src.uri);
      const devices = xmls.flatMap(graphicsListens);
      const problems = devices.map(graphicsProblem).filter((p): p is string => p !== undefined);
      if (problems.length > 0) {
        return fail(check, problems.join("; "), `set listen='0.0.0.0' on those <graphics> devices (virsh edit), or vnc_listen/spice_listen = "0.0.0.0" in qemu.conf on every host`);
      }
      return pass(check, `${xmls.length} domain(s), ${devices.length} display(s), none bound to a host address`);
    } catch (e) {
      return fail(check, `could not read domain XML: ${(e as Error).message}`, `make ${src.uri} reachable from this machine`);
    }
  })();

  const sessions = new Map<string, SshSession>();
  const connected = await Promise.all(
    [src, dst].map(async (h): Promise<CheckResult> => {
      const check = `ssh (${h.name})`;
      const target = sshTargetFor(h);
      if (!target) return fail(check, `${h.name} has no ssh: section`, `add ssh: {privateKeyFile, hostKeys} to libvirt.hosts[${h.name}] so preflight can look at the host`);
      const s = new SshSession(target);
      try {
        await s.connect();
        sessions.set(h.name, s);
        return pass(check, `${target.user}@${target.host}:${target.port}, host key verified`);
      } catch (e) {
        await s.close();
        return fail(check, (e as Error).message, `check ssh settings of ${h.name} (address from its URI, user, key, hostKeys)`);
      }
    }),
  );
  checks.push(...connected);
  const s1 = sessions.get(src.name);
  const s2 = sessions.get(dst.name);
  try {
    if (!s1 || !s2) {
      const why = "needs SSH to both hosts";
      for (const c of ["shared instances dir", "instances dir o+x", "service UIDs/GIDs", "name resolution", "libvirt reachable", "migration ports"]) checks.push(skip(c, why));
    } else {
      checks.push(await sharedStorage(s1, s2, src.name, dst.name, dir));
      checks.push(await searchBit(s1, s2, src.name, dst.name, dir));
      checks.push(await accounts(s1, s2, src.name, dst.name, { users: libvirt.serviceUsers, groups: libvirt.serviceGroups }));
      checks.push(await nameResolution([src, s1], [dst, s2], probeTimeoutMs));
      checks.push(await libvirtReachable(s1, src, dst, probeTimeoutMs));
      checks.push(await migrationPorts(s1, src, dst, probeTimeoutMs, opts.probeConcurrency ?? 8));
    }
    checks.push(await graphics);
  } finally {
    await Promise.all([...sessions.values()].map((s) => s.close()));
  }
  return { src: src.name, dst: dst.name, ok: checks.every((c) => c.status !== "fail"), checks };
}

export class PreflightUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PreflightUsageError";
  }
}

async function sharedStorage(s1: SshSession, s2: SshSession, a: string, b: string, dir: string): Promise<CheckResult> {
  const check = "shared instances dir";
  const marker = `${dir.replace(/\/+$/, "")}/.ballast-preflight-${randomBytes(8).toString("hex")}`;
  const token = randomBytes(16).toString("hex");
  try {
    await s1.writeNewFile(marker, token, 0o644);
  } catch (e) {
    return fail(check, `could not write a marker in ${dir} on ${a}: ${(e as Error).message}`, `create ${dir} on ${a}, writable by the SSH user`);
  }
  try {
    let seen: string | undefined;
    try {
      seen = (await s2.readFile(marker)).toString();
    } catch {
      seen = undefined;
    }
    if (seen === token) return pass(check, `a marker written in ${dir} on ${a} was read on ${b}`);
    return fail(
      check,
      seen === undefined ? `a marker written in ${dir} on ${a} does not exist on ${b}: not the same storage` : `${b} has a different file under the marker's name`,
      `mount the same shared storage (e.g. NFS) at ${dir} on ${a} and ${b}`,
    );
  } finally {
    await s1.unlink(marker).catch(() => undefined);
  }
}

async function searchBit(s1: SshSession, s2: SshSession, a: string, b: string, dir: string): Promise<CheckResult> {
  const check = "instances dir o+x";
  const problems: string[] = [];
  for (const [host, s] of [[a, s1], [b, s2]] as const) {
    try {
      const st = await s.stat(dir);
      if (!st.isDirectory) problems.push(`${dir} on ${host} is not a directory`);
      else if ((st.mode & 0o001) === 0) problems.push(`${dir} on ${host} has mode ${(st.mode & 0o7777).toString(8)}`);
    } catch (e) {
      problems.push(`${dir} on ${host}: ${(e as Error).message}`);
    }
  }
  if (problems.length > 0) return fail(check, problems.join("; "), `chmod o+x ${dir} on both hosts (QEMU must be able to search it)`);
  return pass(check, `${dir} is searchable by others on ${a} and ${b}`);
}

async function accounts(s1: SshSession, s2: SshSession, a: string, b: string, names: { users: readonly string[]; groups: readonly string[] }): Promise<CheckResult> {
  const check = "service UIDs/GIDs";
  try {
    const read = async (s: SshSession): Promise<{ passwd: string; group: string }> => {
      const [passwd, group] = await Promise.all([s.readFile("/etc/passwd"), s.readFile("/etc/group")]);
      return { passwd: passwd.toString(), group: group.toString() };
    };
    const [x, y] = await Promise.all([read(s1), read(s2)]);
    const { problems, checked } = compareAccounts(names, { host: a, ...x }, { host: b, ...y });
    if (problems.length > 0) {
      return fail(check, problems.join("; "), "give these users and groups the same UID/GID on every host (usermod -u / groupmod -g, then chown their files), or fix libvirt.serviceUsers/serviceGroups");
    }
    return pass(check, `same on both: ${checked.join(", ")}`);
  } catch (e) {
    return fail(check, (e as Error).message, "make /etc/passwd and /etc/group readable over SFTP");
  }
}

/** Names by which `of` must be reachable from the other host: its own host name, and its URI host when that is a name. */
async function namesOf(h: LibvirtHostConfig, s: SshSession): Promise<string[]> {
  const names = new Set<string>();
  const fromUri = uriHost(h.uri);
  if (isIP(fromUri) === 0) names.add(fromUri);
  const hostname = (await s.readFile("/proc/sys/kernel/hostname")).toString().trim();
  if (hostname) names.add(hostname);
  return [...names];
}

async function nameResolution(a: [LibvirtHostConfig, SshSession], b: [LibvirtHostConfig, SshSession], timeoutMs: number): Promise<CheckResult> {
  const check = "name resolution";
  const problems: string[] = [];
  const ok: string[] = [];
  for (const [[from, fs], [to, ts]] of [
    [a, b],
    [b, a],
  ] as const) {
    let names: string[];
    try {
      names = await namesOf(to, ts);
    } catch (e) {
      problems.push(`could not read ${to.name}'s host name: ${(e as Error).message}`);
      continue;
    }
    const port = to.ssh?.port ?? 22;
    const keys = to.ssh?.hostKeys ?? [];
    for (const name of names) {
      // The host opens the connection, so the name is resolved by its resolver (/etc/hosts, DNS).
      const p = await fs.probeTcp(name, port, timeoutMs);
      if (p.result !== "open") {
        if (p.result === "refused") ok.push(`${from.name} → ${name}`);
        else problems.push(`${from.name} cannot resolve or reach ${name}: ${describeProbe(p)}`);
        continue;
      }
      // An SSH server answers there: its host key tells whether the name leads to the right machine.
      const key = await fs.hostKeyVia(name, port, timeoutMs).catch(() => undefined);
      if (key !== undefined && keys.length > 0 && !keys.includes(key)) problems.push(`${name} resolves on ${from.name} to a machine with host key ${key}, not ${to.name}`);
      else ok.push(`${from.name} → ${name}`);
    }
  }
  if (problems.length > 0) return fail(check, problems.join("; "), "make every host's name resolve on every other host (DNS or identical /etc/hosts entries)");
  return pass(check, ok.join(", "));
}

async function libvirtReachable(s1: SshSession, src: LibvirtHostConfig, dst: LibvirtHostConfig, timeoutMs: number): Promise<CheckResult> {
  const check = `libvirt reachable (${src.name} → ${dst.name})`;
  const host = uriHost(dst.uri);
  const port = libvirtPort(dst.uri);
  const p = await s1.probeTcp(host, port, timeoutMs);
  if (p.result === "open") return pass(check, `${src.name} connects to ${host}:${port} (${dst.uri})`);
  return fail(check, `${src.name} → ${host}:${port}: ${describeProbe(p)}`, `run libvirtd listening on ${host}:${port} on ${dst.name} and allow TCP ${port} from ${src.name} in the firewall`);
}

async function migrationPorts(s1: SshSession, src: LibvirtHostConfig, dst: LibvirtHostConfig, timeoutMs: number, concurrency: number): Promise<CheckResult> {
  const range = dst.migrationPorts ?? DEFAULT_MIGRATION_PORTS;
  const check = `migration ports ${range.min}-${range.max} (${src.name} → ${dst.name})`;
  const host = uriHost(dst.uri);
  const ports = Array.from({ length: range.max - range.min + 1 }, (_, i) => range.min + i);
  const results = await mapLimit(ports, concurrency, (port) => s1.probeTcp(host, port, timeoutMs));
  const blocked = ports.filter((_, i) => results[i]?.result === "timeout" || results[i]?.result === "failed");
  const open = ports.filter((_, i) => results[i]?.result === "open").length;
  if (blocked.length > 0) {
    const sample = results.find((r) => r.result === "failed");
    return fail(
      check,
      `${blocked.length} of ${ports.length} ports on ${host} give no answer or fail: ${portRanges(blocked)}${sample && sample.result === "failed" ? ` (${sample.message})` : ""}`,
      `allow TCP ${range.min}-${range.max} from ${src.name} to ${dst.name} in the firewall`,
    );
  }
  // A refused connection proves the packets arrive (nothing listens until a migration starts); a firewall that drops gives no answer.
  return pass(check, `all ${ports.length} ports on ${host} answer from ${src.name} (${open} listening, ${ports.length - open} refused: free)`);
}
