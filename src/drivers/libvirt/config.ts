import type { Config } from "../../config/schema.js";
import { DriverError } from "../driver.js";
import { hostId } from "../../model/index.js";

export type LibvirtConfig = NonNullable<Config["libvirt"]>;
export type LibvirtHostConfig = LibvirtConfig["hosts"][number];

/**
 * qemu+tcp:// carries guest memory and the libvirt session unencrypted and unauthenticated: refused unless the
 * operator set `libvirt.allowInsecureTransport` (the config loader checks this too; the driver does not rely on it).
 */
export function checkTransport(cfg: LibvirtConfig): void {
  if (cfg.allowInsecureTransport) return;
  for (const h of cfg.hosts) {
    if (/^qemu\+tcp:/i.test(h.uri)) {
      throw new DriverError(
        `libvirt host ${h.name}: ${h.uri} uses qemu+tcp://, which is unencrypted; use qemu+ssh:// or qemu+tls://, or set libvirt.allowInsecureTransport: true`,
        "INSECURE_TRANSPORT",
        hostId(h.name),
      );
    }
  }
}
