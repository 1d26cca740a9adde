import { describe, expect, it } from "vitest";
import { graphicsListens, graphicsProblem } from "../../src/preflight/graphics.js";
import { compareAccounts, libvirtPort, parseAccounts, portRanges, transportCheck } from "../../src/preflight/preflight.js";
import type { LibvirtHostConfig } from "../../src/drivers/ssh/target.js";

const domain = (name: string, devices: string): string => `<domain type='kvm'><name>${name}</name><devices>${devices}</devices></domain>`;

describe("graphics listen", () => {
  it.each([
    ["vnc on 0.0.0.0 (attribute)", domain("a", "<graphics type='vnc' port='5900' listen='0.0.0.0'/>"), undefined],
    ["spice on :: with a listen element", domain("b", `<graphics type="spice" autoport="yes"><listen type="address" address="::"/></graphics>`), undefined],
    ["vnc on a UNIX socket", domain("c", "<graphics type='vnc'><listen type='socket' socket='/run/x.sock'/></graphics>"), undefined],
    ["vnc with no listener", domain("d", "<graphics type='vnc'><listen type='none'/></graphics>"), undefined],
    ["vnc on loopback", domain("e", "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>"), "e: vnc listens on 127.0.0.1"],
    ["spice on one host address", domain("f", "<graphics type='spice' listen='10.0.0.5'/>"), "f: spice listens on 10.0.0.5"],
    ["vnc without an address", domain("g&amp;h", "<graphics type='vnc' autoport='yes'/>"), "g&h: vnc sets no listen address (qemu.conf's vnc_listen applies; its default is 127.0.0.1)"],
  ])("%s", (_name, xml, problem) => {
    const [g, ...rest] = graphicsListens(xml);
    expect(rest).toEqual([]);
    expect(g && graphicsProblem(g)).toBe(problem);
  });
  it("finds every display of a domain and none in a domain without graphics", () => {
    expect(graphicsListens(domain("x", "<graphics type='vnc' listen='0.0.0.0'/><graphics type='spice' listen='127.0.0.1'/>")).map((g) => g.type)).toEqual(["vnc", "spice"]);
    expect(graphicsListens(domain("y", "<disk type='file'/>"))).toEqual([]);
  });
});

describe("service accounts", () => {
  const passwd = (uid: number, gid = 64055): string => `root:x:0:0:root:/root:/bin/bash\n# comment\nlibvirt-qemu:x:${uid}:${gid}:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n`;
  const group = (gid: number): string => `root:x:0:\nkvm:x:${gid}:libvirt-qemu\n`;
  const names = { users: ["libvirt-qemu"], groups: ["kvm"] };
  it("parses names, ids and primary groups", () => {
    expect(parseAccounts(passwd(64055), "passwd").get("libvirt-qemu")).toEqual({ id: 64055, gid: 64055 });
    expect(parseAccounts(group(993), "group").get("kvm")).toEqual({ id: 993 });
  });
  it.each([
    ["identical", passwd(64055), group(993), passwd(64055), group(993), [], ["libvirt-qemu=64055", "kvm=993"]],
    ["uid differs", passwd(64055), group(993), passwd(64056), group(993), ["user libvirt-qemu: uid 64055 on h1, 64056 on h2"], ["kvm=993"]],
    ["primary gid differs", passwd(64055, 1), group(993), passwd(64055, 2), group(993), ["user libvirt-qemu: primary gid 1 on h1, 2 on h2"], ["kvm=993"]],
    ["group gid differs", passwd(64055), group(993), passwd(64055), group(994), ["group kvm: gid 993 on h1, 994 on h2"], ["libvirt-qemu=64055"]],
    ["missing on one host", passwd(64055), group(993), "root:x:0:0::/root:/bin/sh\n", group(993), ["user libvirt-qemu is missing on h2"], ["kvm=993"]],
    ["missing on both", "", "", "", "", ["user libvirt-qemu exists on neither host", "group kvm exists on neither host"], []],
  ])("%s", (_name, p1, g1, p2, g2, problems, checked) => {
    expect(compareAccounts(names, { host: "h1", passwd: p1, group: g1 }, { host: "h2", passwd: p2, group: g2 })).toEqual({ problems, checked });
  });
});

describe("ports and transports", () => {
  it.each([
    ["qemu+tcp://h/system", 16509],
    ["qemu+tls://h/system", 16514],
    ["qemu://h/system", 16514],
    ["qemu+ssh://root@h/system", 22],
    ["qemu+ssh://root@h:2222/system", 2222],
    ["qemu+tcp://h:16600/system", 16600],
  ])("%s → port %i", (uri, port) => {
    expect(libvirtPort(uri)).toBe(port);
  });
  it("compresses port lists into ranges", () => {
    expect(portRanges([49152, 49153, 49154, 49160, 49170, 49171])).toBe("49152-49154, 49160, 49170-49171");
    expect(portRanges([])).toBe("");
  });
  const host = (uri: string): LibvirtHostConfig => ({ name: "h1", uri, sharedStorage: [], loadSource: "node" });
  it.each([
    ["qemu+ssh://root@a/system", false, "pass"],
    ["qemu+tls://a/system", false, "pass"],
    ["qemu+tcp://a/system", true, "warn"],
    ["qemu+tcp://a/system", false, "fail"],
    ["qemu:///system", false, "fail"],
    ["qemu+unix:///system", false, "fail"],
  ])("%s (insecure allowed: %s) → %s", (uri, allow, status) => {
    const r = transportCheck(host(uri), allow);
    expect(r.status).toBe(status);
    if (status !== "pass") expect(r.fix).toMatch(/qemu\+(tls|ssh):\/\//);
  });
});
