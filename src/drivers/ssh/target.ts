import type { Config } from "../../config/schema.js";
import type { SshTarget } from "./session.js";

export type LibvirtHostConfig = NonNullable<Config["libvirt"]>["hosts"][number];

/** The host part of a libvirt URI (qemu+ssh://user@host:port/system → host), without IPv6 brackets. */
export function uriHost(uri: string): string {
  const host = new URL(uri).hostname.replace(/^\[(.*)\]$/, "$1");
  if (host === "") throw new Error(`libvirt URI ${uri} names no host`);
  return host;
}

/** SSH settings of a configured libvirt host; the address is the URI's host. Undefined when it has no ssh section. */
export function sshTargetFor(host: LibvirtHostConfig): SshTarget | undefined {
  if (!host.ssh) return undefined;
  return {
    label: host.name,
    host: uriHost(host.uri),
    port: host.ssh.port,
    user: host.ssh.user,
    privateKeyFile: host.ssh.privateKeyFile,
    hostKeys: host.ssh.hostKeys,
    keepaliveSec: host.ssh.keepaliveSec,
  };
}
