import type { Config } from "../config/schema.js";
import type { Clock } from "../util/clock.js";
import type { Driver } from "./driver.js";
import { createSimCluster, SimDriver } from "./sim/index.js";

export class DriverUnavailableError extends Error {
  override readonly name = "DriverUnavailableError";
}

/** The driver for the configured hypervisors. */
export function createDriver(config: Config, clock: Clock): Driver {
  if (config.sim) return new SimDriver(createSimCluster(config.sim, clock), { ownsCluster: true });
  const wanted = [config.libvirt && "libvirt", config.xenserver && "xenserver"].filter(Boolean).join(" and ");
  throw new DriverUnavailableError(
    `the ${wanted} driver is not part of this build yet; configure the simulated cluster (sim:) to run ballast here`,
  );
}
