import { describe, expect, it } from "vitest";
import { DomainXmlError, parseDomainXml, sharedRootOf, vmStorage, type DomainDisk } from "../../src/drivers/libvirt/domain-xml.js";
import { parseXml, XmlError } from "../../src/drivers/libvirt/xml.js";

const UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f";
const SHARED = ["/var/lib/nova/instances", "/mnt/nfs-2/"];

function domain(devices: string, extra = ""): string {
  return `<domain type='kvm' id='3'>
  <name>web-1</name>
  <uuid>${UUID}</uuid>
  ${extra}
  <memory unit='KiB'>2097152</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    ${devices}
  </devices>
</domain>`;
}

const fileDisk = (path: string, dev: string): string =>
  `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${path}'/><target dev='${dev}' bus='virtio'/></disk>`;

describe("parseDomainXml", () => {
  it("reads name, UUID, memory in MiB and current vCPUs", () => {
    const f = parseDomainXml(domain(""), SHARED);
    expect(f).toEqual({ name: "web-1", uuid: UUID, memoryMiB: 2048, vcpus: 2, disks: [], tags: [] });
  });

  it.each([
    ["KiB", "1048576", 1024],
    ["MiB", "512", 512],
    ["G", "2", 2048],
    ["bytes", "134217728", 128],
    ["MB", "1000", 1e9 / 1024 ** 2],
  ])("memory unit %s", (unit, value, mib) => {
    const xml = domain("").replace("<memory unit='KiB'>2097152</memory>", `<memory unit='${unit}'>${value}</memory>`);
    expect(parseDomainXml(xml, []).memoryMiB).toBeCloseTo(mib, 6);
  });

  it.each<[string, string, Partial<DomainDisk>]>([
    ["file under a shared path", fileDisk("/var/lib/nova/instances/abc/disk", "vda"), { backing: "shared", sharedStorage: "/var/lib/nova/instances" }],
    ["file under a shared path given with a trailing slash", fileDisk("/mnt/nfs-2/x.qcow2", "vda"), { backing: "shared", sharedStorage: "/mnt/nfs-2/" }],
    ["file in a sibling folder whose name extends a shared path", fileDisk("/var/lib/nova/instances-local/disk", "vda"), { backing: "local" }],
    ["file escaping a shared path with ..", fileDisk("/var/lib/nova/instances/../images/disk", "vda"), { backing: "local" }],
    ["local file", fileDisk("/var/lib/libvirt/images/web-1.qcow2", "vda"), { backing: "local", source: "/var/lib/libvirt/images/web-1.qcow2" }],
    ["local LVM block device", "<disk type='block' device='disk'><source dev='/dev/vg0/web-1'/><target dev='vdb'/></disk>", { backing: "local", target: "vdb" }],
    ["iSCSI LUN attached by path", "<disk type='block' device='lun'><source dev='/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2010-10.org:vol-lun-1'/><target dev='sda' bus='scsi'/></disk>", { backing: "volume" }],
    ["rbd network disk", "<disk type='network' device='disk'><source protocol='rbd' name='volumes/volume-1'><host name='ceph-1' port='6789'/></source><target dev='vdc'/></disk>", { backing: "volume", source: "rbd:volumes/volume-1" }],
    ["storage-pool volume", "<disk type='volume' device='disk'><source pool='san' volume='lun7'/><target dev='vdd'/></disk>", { backing: "volume", source: "san/lun7" }],
  ])("classifies a %s", (_name, xml, want) => {
    const [disk, ...rest] = parseDomainXml(domain(xml), SHARED).disks;
    expect(rest).toEqual([]);
    expect(disk).toMatchObject(want);
  });

  it("ignores CD-ROMs, floppies and empty drives", () => {
    const xml = domain(
      `<disk type='file' device='cdrom'><source file='/isos/boot.iso'/><target dev='hdc'/><readonly/></disk>
       <disk type='file' device='floppy'><source file='/tmp/f.img'/><target dev='fda'/></disk>
       <disk type='file' device='disk'><target dev='vde'/></disk>`,
    );
    expect(parseDomainXml(xml, SHARED).disks).toEqual([]);
  });

  it("reads ballast tags from metadata by namespace, whatever the prefix, trimmed and de-duplicated", () => {
    const meta = `<metadata>
      <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1"><nova:name>x</nova:name></nova:instance>
      <b:tags xmlns:b="https://ballast.dev/xmlns/1"> web , tier-1,web,, </b:tags>
    </metadata>`;
    expect(parseDomainXml(domain("", meta), []).tags).toEqual(["web", "tier-1"]);
  });

  it("ignores tags elements of other namespaces", () => {
    const meta = `<metadata><x:tags xmlns:x="https://example.com/other">web</x:tags></metadata>`;
    expect(parseDomainXml(domain("", meta), []).tags).toEqual([]);
  });

  it("decodes entities in text and attributes", () => {
    const meta = `<metadata><ballast:tags xmlns:ballast="https://ballast.dev/xmlns/1">a&amp;b,&#99;</ballast:tags></metadata>`;
    const f = parseDomainXml(domain(fileDisk("/srv/it&apos;s.qcow2", "vda"), meta), []);
    expect(f.tags).toEqual(["a&b", "c"]);
    expect(f.disks[0]?.source).toBe("/srv/it's.qcow2");
  });

  it.each([
    ["truncated", domain("").slice(0, domain("").indexOf("<memory")), /malformed domain XML: <domain> is not closed/],
    ["mismatched tags", "<domain><name>x</nam></domain>", /malformed domain XML: <\/nam> does not close <name>/],
    ["garbage", "not xml at all", /malformed domain XML: text outside the root element/],
    ["empty", "", /malformed domain XML: no root element/],
    ["a DTD", "<!DOCTYPE domain [<!ENTITY x 'y'>]><domain/>", /DTDs are not supported/],
    ["an unknown entity", "<domain><name>&bogus;</name></domain>", /unknown entity/],
    ["an undeclared prefix", "<domain><x:tags>a</x:tags></domain>", /undeclared namespace prefix 'x'/],
    ["another document", "<network><name>default</name></network>", /expected a <domain> document, got <network>/],
    ["no name", `<domain><uuid>${UUID}</uuid></domain>`, /has no <name>/],
    ["no uuid", "<domain><name>a</name><memory>1</memory><vcpu>1</vcpu></domain>", /domain a: missing or invalid <uuid>/],
    ["bad memory", domain("").replace(">2097152<", ">lots<"), /domain web-1: expected a positive memory size, got 'lots'/],
    ["bad unit", domain("").replace("unit='KiB'>2097152", "unit='furlongs'>2097152"), /unknown memory unit 'furlongs'/],
    ["zero vCPUs", domain("").replace("current='2'>4", ">0"), /expected a positive integer <vcpu>/],
    ["a disk without target", domain("<disk type='file' device='disk'><source file='/a'/></disk>"), /a <disk> has no <target/],
  ])("rejects %s with a clear DomainXmlError", (_name, xml, message) => {
    expect(() => parseDomainXml(xml, [])).toThrow(DomainXmlError);
    expect(() => parseDomainXml(xml, [])).toThrow(message);
  });
});

describe("vmStorage", () => {
  const d = (backing: DomainDisk["backing"], sharedStorage?: string): DomainDisk => ({
    target: "vda",
    backing,
    source: "x",
    readOnly: false,
    ...(sharedStorage !== undefined && { sharedStorage }),
  });
  it.each<[string, DomainDisk[], ReturnType<typeof vmStorage>]>([
    ["disk-less (nothing to copy, no shared storage needed)", [], { storage: { kind: "volume" }, volumes: 0 }],
    ["shared", [d("shared", "/mnt/nfs")], { storage: { kind: "shared", id: "/mnt/nfs" }, volumes: 0 }],
    ["shared boot disk with an attached volume", [d("shared", "/mnt/nfs"), d("volume")], { storage: { kind: "shared", id: "/mnt/nfs" }, volumes: 1 }],
    ["boot from volume", [d("volume"), d("volume")], { storage: { kind: "volume" }, volumes: 2 }],
    ["any local disk makes it local", [d("shared", "/mnt/nfs"), d("local"), d("volume")], { storage: { kind: "local" }, volumes: 1 }],
  ])("%s", (_name, disks, want) => {
    expect(vmStorage(disks)).toEqual(want);
  });
});

describe("sharedRootOf", () => {
  it("picks the longest configured root that contains the path", () => {
    expect(sharedRootOf("/srv/a/b/disk", ["/srv", "/srv/a"])).toBe("/srv/a");
    expect(sharedRootOf("/srv/ab/disk", ["/srv/a"])).toBeUndefined();
  });
});

describe("parseXml", () => {
  it("keeps CDATA, skips comments and processing instructions, resolves default namespaces", () => {
    const el = parseXml(`<?xml version="1.0"?><!-- c --><a xmlns="urn:x"><b><![CDATA[<raw>]]></b><c k="v"/></a>`);
    expect(el.ns).toBe("urn:x");
    expect(el.children.map((c) => [c.local, c.ns, c.text])).toEqual([
      ["b", "urn:x", "<raw>"],
      ["c", "urn:x", ""],
    ]);
    expect(() => parseXml("<a k='1' k='2'/>")).toThrow(XmlError);
    expect(() => parseXml("<a/><b/>")).toThrow(/content after the root element/);
  });
});
