import type { Clock } from "../../util/clock.js";
import type { Driver } from "../driver.js";
import { checkTransport, type LibvirtConfig } from "./config.js";
import { LibvirtDriver } from "./driver.js";
import { loadBinding, open } from "./native/index.js";

export { LibvirtDriver, type LibvirtDriverOptions } from "./driver.js";
export { checkTransport, type LibvirtConfig, type LibvirtHostConfig } from "./config.js";
export { BALLAST_XMLNS, parseDomainXml, vmStorage, DomainXmlError, type DomainFacts, type DomainDisk } from "./domain-xml.js";
export { NativeBindingMissingError } from "./native/index.js";

/**
 * The libvirt driver for the configured hosts. Refuses qemu+tcp:// unless `allowInsecureTransport`, and throws
 * NativeBindingMissingError (saying what to install) when the native binding is not built. Hosts that cannot be
 * reached yet are sampled as unreachable and retried with back-off; the first sample primes the CPU counters.
 */
export async function createLibvirtDriver(cfg: LibvirtConfig, deps: { clock: Clock }): Promise<Driver> {
  checkTransport(cfg);
  loadBinding();
  const driver = new LibvirtDriver(cfg, { clock: deps.clock, open });
  // Priming only: a failure here shows up again, with its cause, in the daemon's first real sample.
  await driver.sample().catch(() => undefined);
  return driver;
}
