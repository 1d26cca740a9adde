import type { Config } from "../config/schema.js";
import type { Clock } from "../util/clock.js";
import { CompositeDriver } from "./composite.js";
import type { Driver } from "./driver.js";
import type { DriverLog } from "./xenserver/index.js";
import { createSimCluster, SimDriver } from "./sim/index.js";
import { DriverUnavailableError } from "./unavailable.js";

export { DriverUnavailableError } from "./unavailable.js";


/**
 * The driver for the configured hypervisors. Real drivers are imported only when configured: the libvirt
 * one loads a native addon that a machine running only the simulator need not have.
 */
export async function createDriver(config: Config, clock: Clock, log?: DriverLog): Promise<Driver> {
  if (config.sim) return new SimDriver(createSimCluster(config.sim, clock), { ownsCluster: true });
  const parts: Driver[] = [];
  try {
    if (config.libvirt) parts.push(await libvirtDriver(config.libvirt, clock));
    if (config.xenserver) {
      const { createXenServerDriver } = await import("./xenserver/index.js");
      parts.push(await createXenServerDriver(config.xenserver, { clock, ...(log && { log }) }));
    }
  } catch (e) {
    await Promise.all(parts.map((d) => d.close()));
    throw e;
  }
  return parts.length === 1 ? (parts[0] as Driver) : new CompositeDriver(parts);
}

async function libvirtDriver(cfg: NonNullable<Config["libvirt"]>, clock: Clock): Promise<Driver> {
  const { createLibvirtDriver, NativeBindingMissingError } = await import("./libvirt/index.js");
  try {
    return await createLibvirtDriver(cfg, { clock });
  } catch (e) {
    if (e instanceof NativeBindingMissingError) throw new DriverUnavailableError(e.message);
    throw e;
  }
}
