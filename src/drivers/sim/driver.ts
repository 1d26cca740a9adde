import type { ClusterSnapshot, HostId, VmId } from "../../model/index.js";
import { DriverError } from "../driver.js";
import type {
  Driver,
  DriverCapabilities,
  GuardAction,
  JobStats,
  MigrationHandle,
  MigrationRequest,
  VmLocation,
} from "../driver.js";
import type { SimCluster } from "./cluster.js";

export interface SimDriverOptions {
  readonly name?: string;
  /**
   * The driver owns its cluster: close() also disposes it (stops its clock timers, which on a RealClock keep the
   * process alive while a migration is in flight). Leave unset when the cluster must outlive the driver, as in
   * the crash/reconcile tests.
   */
  readonly ownsCluster?: boolean;
}

/**
 * The Driver over a SimCluster. A thin adapter: all state lives in the cluster, so a migration keeps running when
 * the driver (or the daemon holding it) is dropped, and a new driver on the same cluster sees and can cancel it.
 */
export class SimDriver implements Driver {
  readonly name: string;
  readonly capabilities: DriverCapabilities = { setDowntime: true, postCopy: true, pauseGuest: true, dirtyRate: true };
  private closed = false;
  private readonly ownsCluster: boolean;

  constructor(
    readonly cluster: SimCluster,
    options: SimDriverOptions = {},
  ) {
    this.name = options.name ?? "sim";
    this.ownsCluster = options.ownsCluster ?? false;
  }

  private check(): void {
    if (this.closed) throw new DriverError(`driver ${this.name} is closed`, "DRIVER_CLOSED");
  }

  sample(): Promise<ClusterSnapshot> {
    return this.call(() => this.cluster.sample());
  }

  migrate(request: MigrationRequest): Promise<MigrationHandle> {
    return this.call(() => {
      const job = this.cluster.startMigration(request);
      const handle: MigrationHandle = {
        stats: (): Promise<JobStats | null> => this.call(() => this.cluster.jobStats(job)),
        act: (action: GuardAction): Promise<void> => this.call(() => this.cluster.act(job, action)),
        done: job.done,
      };
      return handle;
    });
  }

  locate(vm: VmId): Promise<VmLocation> {
    return this.call(() => this.cluster.locate(vm));
  }

  cancel(vm: VmId): Promise<void> {
    return this.call(() => this.cluster.cancel(vm, `cancelled by driver ${this.name}`));
  }

  resume(vm: VmId, host: HostId): Promise<void> {
    return this.call(() => this.cluster.resume(vm, host));
  }

  /** Idempotent. Leaves the cluster (and any job in it) running unless the driver owns it (then its timers stop). */
  close(): Promise<void> {
    if (!this.closed && this.ownsCluster) this.cluster.dispose();
    this.closed = true;
    return Promise.resolve();
  }

  private call<T>(fn: () => T): Promise<T> {
    try {
      this.check();
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }
}
