/**
 * VM facts from libvirt domain XML: identity, memory, vCPUs, disks and ballast's tags.
 *
 * Disks (device disk or lun; CD-ROMs and floppies are ignored: they are media, not instance storage):
 * - a file or block source under one of the host's configured `sharedStorage` paths is on that shared storage;
 * - `type='network'` (rbd, iscsi, nbd, …), `type='volume'` (a storage-pool volume) and host block devices under
 *   /dev/disk/by-path/ (how iSCSI/FC LUNs are attached) are volumes that the destination reaches by itself;
 * - any other file, block or dir source is local: it has to be copied (block migration) or the VM moves cold.
 *
 * Tags live in the domain's metadata, in ballast's namespace (any prefix):
 *   <metadata><ballast:tags xmlns:ballast="https://ballast.dev/xmlns/1">web,tier-1</ballast:tags></metadata>
 * set with e.g. `virsh metadata DOMAIN https://ballast.dev/xmlns/1 --key ballast --set '<tags>web</tags>'`.
 */
import { posix } from "node:path";
import type { Storage } from "../../model/index.js";
import { child, children, parseXml, XmlError, type XmlElement } from "./xml.js";

export const BALLAST_XMLNS = "https://ballast.dev/xmlns/1";

export type DiskBacking = "shared" | "local" | "volume";

export interface DomainDisk {
  /** Guest device name (vda, sdb, …). */
  readonly target: string;
  readonly backing: DiskBacking;
  /** Source path (file, block) or description (network protocol/name, pool/volume). */
  readonly source: string;
  /** The configured shared storage path the disk lies under (backing "shared"). */
  readonly sharedStorage?: string;
  readonly readOnly: boolean;
}

export interface DomainFacts {
  readonly name: string;
  readonly uuid: string;
  readonly memoryMiB: number;
  readonly vcpus: number;
  readonly disks: readonly DomainDisk[];
  readonly tags: readonly string[];
}

export class DomainXmlError extends Error {
  override readonly name = "DomainXmlError";
}

const UNIT_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  bytes: 1,
  kb: 1e3,
  k: 1024,
  kib: 1024,
  mb: 1e6,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  gb: 1e9,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  tb: 1e12,
  t: 1024 ** 4,
  tib: 1024 ** 4,
};

function memoryMiB(el: XmlElement, what: string): number {
  const unit = (el.attrs.get("unit") ?? "KiB").toLowerCase();
  const factor = UNIT_BYTES[unit];
  const n = Number(el.text.trim());
  if (factor === undefined) throw new DomainXmlError(`${what}: unknown memory unit '${unit}'`);
  if (!Number.isFinite(n) || n <= 0) throw new DomainXmlError(`${what}: expected a positive memory size, got '${el.text.trim()}'`);
  return (n * factor) / 1024 ** 2;
}

/** The shared storage path `path` lies under (longest match), if any. */
export function sharedRootOf(path: string, sharedStorage: readonly string[]): string | undefined {
  const p = posix.normalize(path);
  let best: string | undefined;
  for (const root of sharedStorage) {
    const r = posix.normalize(root).replace(/\/+$/, "") || "/";
    const under = r === "/" ? p.startsWith("/") : p === r || p.startsWith(r + "/");
    if (under && (best === undefined || r.length > posix.normalize(best).length)) best = root;
  }
  return best;
}

function classify(disk: XmlElement, sharedStorage: readonly string[], what: string): DomainDisk | undefined {
  const device = disk.attrs.get("device") ?? "disk";
  if (device !== "disk" && device !== "lun") return undefined;
  const type = disk.attrs.get("type") ?? "file";
  const target = child(disk, "target")?.attrs.get("dev");
  if (!target) throw new DomainXmlError(`${what}: a <disk> has no <target dev=…>`);
  const readOnly = child(disk, "readonly") !== undefined;
  const src = child(disk, "source");
  switch (type) {
    case "network": {
      const source = `${src?.attrs.get("protocol") ?? "network"}:${src?.attrs.get("name") ?? ""}`;
      return { target, backing: "volume", source, readOnly };
    }
    case "volume":
      return { target, backing: "volume", source: `${src?.attrs.get("pool") ?? ""}/${src?.attrs.get("volume") ?? ""}`, readOnly };
    case "file":
    case "block":
    case "dir": {
      const path = src?.attrs.get(type === "file" ? "file" : type === "block" ? "dev" : "dir");
      // A source-less disk is an empty drive: nothing to copy.
      if (path === undefined) return undefined;
      const root = sharedRootOf(path, sharedStorage);
      if (root !== undefined) return { target, backing: "shared", source: path, sharedStorage: root, readOnly };
      if (type === "block" && path.startsWith("/dev/disk/by-path/")) return { target, backing: "volume", source: path, readOnly };
      return { target, backing: "local", source: path, readOnly };
    }
    default:
      // nvme, vhostuser, …: reached over the network by the destination like a volume.
      return { target, backing: "volume", source: type, readOnly };
  }
}

/** Parses a domain's XML; `sharedStorage` are the host's configured shared storage paths. */
export function parseDomainXml(xml: string, sharedStorage: readonly string[]): DomainFacts {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (e) {
    if (e instanceof XmlError) throw new DomainXmlError(`malformed domain XML: ${e.message}`);
    throw e;
  }
  if (root.name !== "domain") throw new DomainXmlError(`expected a <domain> document, got <${root.name}>`);
  const name = child(root, "name")?.text.trim();
  if (!name) throw new DomainXmlError("domain XML has no <name>");
  const what = `domain ${name}`;
  const uuid = child(root, "uuid")?.text.trim().toLowerCase();
  if (!uuid || !/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/.test(uuid)) {
    throw new DomainXmlError(`${what}: missing or invalid <uuid>`);
  }
  const mem = child(root, "memory");
  if (!mem) throw new DomainXmlError(`${what}: no <memory>`);
  const vcpuEl = child(root, "vcpu");
  const vcpus = Number((vcpuEl?.attrs.get("current") ?? vcpuEl?.text ?? "").trim());
  if (!Number.isInteger(vcpus) || vcpus < 1) throw new DomainXmlError(`${what}: expected a positive integer <vcpu>`);
  const devices = child(root, "devices");
  const disks = devices ? children(devices, "disk").flatMap((d) => classify(d, sharedStorage, what) ?? []) : [];
  return { name, uuid, memoryMiB: memoryMiB(mem, what), vcpus, disks, tags: tagsOf(root) };
}

function tagsOf(root: XmlElement): string[] {
  const meta = child(root, "metadata");
  const el = meta?.children.find((c) => c.ns === BALLAST_XMLNS && c.local === "tags");
  if (!el) return [];
  return [...new Set(el.text.split(",").map((t) => t.trim()).filter((t) => t !== ""))];
}

/**
 * The snapshot's storage of a VM from its disks: any local disk makes it local (it must be copied);
 * otherwise the first shared storage; otherwise volumes (a disk-less guest too: nothing to copy, no shared
 * storage needed, same flags as volume-backed).
 */
export function vmStorage(disks: readonly DomainDisk[]): { readonly storage: Storage; readonly volumes: number } {
  const volumes = disks.filter((d) => d.backing === "volume").length;
  if (disks.some((d) => d.backing === "local")) return { storage: { kind: "local" }, volumes };
  const shared = disks.find((d) => d.backing === "shared");
  if (shared?.sharedStorage !== undefined) return { storage: { kind: "shared", id: shared.sharedStorage }, volumes };
  return { storage: { kind: "volume" }, volumes };
}
