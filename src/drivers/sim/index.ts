import type { SimConfig } from "../../config/schema.js";
import { realClock } from "../../util/clock.js";
import type { Clock } from "../../util/clock.js";
import { SimCluster } from "./cluster.js";
import type { SimClusterOptions } from "./cluster.js";
import { SimDriver } from "./driver.js";
import { simConfig } from "./config.js";
import type { SimConfigInput } from "./config.js";

export { SimCluster } from "./cluster.js";
export type { SimClusterOptions, SimJobInfo } from "./cluster.js";
export { SimDriver } from "./driver.js";
export type { SimDriverOptions } from "./driver.js";
export { SimJob, SWITCHOVER_MS, POSTCOPY_SWITCH_MS, SHUTOFF_MOVE_MS } from "./migration-model.js";
export type { JobMode, JobPhase, JobPlan } from "./migration-model.js";
export { demandAt, buildLoadProfile, BURST_SLOT_MS, BURST_PROBABILITY } from "./load-model.js";
export type { LoadProfile } from "./load-model.js";
export { hostOverheadMiB } from "./inventory.js";

export { simConfig } from "./config.js";
export type { SimConfigInput } from "./config.js";

/**
 * Builds a simulated cluster on a clock (real time by default) from a SimConfig or a partial one (the schema's
 * defaults are filled in; validation is the config loader's job).
 */
export function createSimCluster(config: SimConfig | SimConfigInput, clock: Clock = realClock, options?: SimClusterOptions): SimCluster {
  return new SimCluster(simConfig(config), clock, options);
}

/** Cluster and driver in one call, for the daemon's embedded default and for tests. */
export function createSimDriver(
  config: SimConfig | SimConfigInput,
  clock: Clock = realClock,
  options?: SimClusterOptions,
): { cluster: SimCluster; driver: SimDriver } {
  const cluster = createSimCluster(config, clock, options);
  return { cluster, driver: new SimDriver(cluster, { ownsCluster: true }) };
}
export { pickMove, flagsFor, LIVE_FLAGS } from "./scenario.js";
export type { PickOptions } from "./scenario.js";
export { expandTimeline, BurstApplier } from "./timeline.js";
export type { TimelineAction } from "./timeline.js";
