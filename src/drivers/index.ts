import type { Config } from "../config/schema.js";
import type { Clock } from "../util/clock.js";
import type { Driver } from "./driver.js";
import { createSimCluster, SimDriver } from "./sim/index.js";
import { DriverUnavailableError } from "./unavailable.js";

export { DriverUnavailableError } from "./unavailable.js";

/**
 * The driver for the configured hypervisors. Real drivers are imported only when configured: the libvirt
 * one loads a native addon that a machine running only the simulator need not have.
 */
export async function createDriver(config: Config, clock: Clock): Promise<Driver> {
  if (config.sim) return new SimDriver(createSimCluster(config.sim, clock), { ownsCluster: true });
  const wanted = [config.libvirt && "libvirt", config.xenserver && "xenserver"].filter(Boolean).join(" and ");
  throw new DriverUnavailableError(`the ${wanted} driver is not part of this build yet; configure the simulated cluster (sim:) to run ballast here`);
}
