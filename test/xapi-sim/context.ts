/** What API methods can reach beyond their own pool (migrate_send spans two pools). */
import type { Clock } from "../../src/util/clock.js";
import type { SimFaults } from "./faults.js";
import type { SimPool } from "./pool.js";
import type { TaskRunner } from "./tasks.js";

export interface SimContext {
  readonly pools: readonly SimPool[];
  readonly tasks: TaskRunner;
  readonly faults: SimFaults;
  readonly clock: Clock;
  readonly speedMiBps: number;
  readonly user: string;
  readonly password: string;
  /** The pool holding this object ref, if any. */
  poolOf(ref: string): SimPool | undefined;
}
