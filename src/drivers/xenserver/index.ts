import type { Config } from "../../config/schema.js";
import type { Clock } from "../../util/clock.js";
import { XenServerDriver } from "./driver.js";
import { PoolConnection } from "./pool.js";
import type { DriverLog, XenTransport } from "./pool.js";

export { XenServerDriver } from "./driver.js";
export type { DriverLog, XenTransport } from "./pool.js";

export interface XenServerDriverDeps {
  readonly clock: Clock;
  readonly log?: DriverLog;
  /** XAPI transport; "auto" (JSON-RPC, falling back to XML-RPC) unless a test pins one. */
  readonly transport?: XenTransport;
  /** Give up on a pool's connection attempt after this long (default 30 s); the pool is then unreachable. */
  readonly connectTimeoutMs?: number;
}

/**
 * Connects to every configured pool master (a pool that cannot be reached is reported unreachable, and
 * retried at each sample) and returns the driver.
 */
export async function createXenServerDriver(cfg: NonNullable<Config["xenserver"]>, deps: XenServerDriverDeps): Promise<XenServerDriver> {
  const pools = cfg.pools.map(
    (p) =>
      new PoolConnection(p, {
        clock: deps.clock,
        ...(deps.log && { log: deps.log }),
        ...(deps.transport && { transport: deps.transport }),
        ...(deps.connectTimeoutMs !== undefined && { connectTimeoutMs: deps.connectTimeoutMs }),
      }),
  );
  await Promise.all(pools.map((p) => p.ensureConnected()));
  return new XenServerDriver(pools, deps.clock, deps.log);
}
