import type { ClusterSnapshot, HostId, VmId } from "../model/index.js";
import { DriverError, type Driver, type DriverCapabilities, type MigrationHandle, type MigrationRequest, type Placement, type VmLocation } from "./driver.js";

/**
 * One driver over several (a site with both libvirt hosts and XenServer pools). Host names are unique
 * across the configuration, so each host — and each VM through the host it was last seen on — belongs
 * to exactly one part. Migrations never cross parts: the planner only moves within a cell's hypervisor.
 */
export class CompositeDriver implements Driver {
  readonly name: string;
  /** Only what every part can do; each migration carries its own part's capabilities. */
  readonly capabilities: DriverCapabilities;
  private readonly hostOwner = new Map<HostId, Driver>();

  constructor(private readonly parts: readonly Driver[]) {
    this.name = parts.map((d) => d.name).join("+");
    const all = (k: keyof DriverCapabilities): boolean => parts.every((d) => d.capabilities[k]);
    this.capabilities = { setDowntime: all("setDowntime"), postCopy: all("postCopy"), pauseGuest: all("pauseGuest"), dirtyRate: all("dirtyRate") };
  }

  async sample(): Promise<ClusterSnapshot> {
    const snaps = await Promise.all(this.parts.map((d) => d.sample()));
    snaps.forEach((s, i) => {
      for (const h of s.hosts) this.hostOwner.set(h.name, this.parts[i] as Driver);
    });
    return {
      takenAt: snaps.map((s) => s.takenAt).reduce((a, b) => (a > b ? a : b)),
      hosts: snaps.flatMap((s) => s.hosts),
      vms: snaps.flatMap((s) => s.vms),
    };
  }

  async migrate(request: MigrationRequest): Promise<MigrationHandle> {
    const part = await this.owner(request.from);
    if ((await this.owner(request.to)) !== part) {
      throw new DriverError(`${request.from} and ${request.to} are managed by different drivers; no migration between them`, "cross-driver", request.to);
    }
    const h = await part.migrate(request);
    return { stats: () => h.stats(), act: (a) => h.act(a), done: h.done, capabilities: h.capabilities ?? part.capabilities };
  }

  /** Every part is asked: a VM found under two hypervisors must show up as duplicated, not hidden. */
  async locate(vm: VmId): Promise<VmLocation> {
    const found = await Promise.all(this.parts.map((d) => d.locate(vm)));
    const placements: Placement[] = found.flatMap((l) => l.placements);
    return { vm, placements };
  }

  async cancel(vm: VmId): Promise<void> {
    await Promise.all(this.parts.map((d) => d.cancel(vm)));
  }

  async resume(vm: VmId, host: HostId): Promise<void> {
    await (await this.owner(host)).resume(vm, host);
  }

  async start(vm: VmId, host: HostId): Promise<void> {
    await (await this.owner(host)).start?.(vm, host);
  }

  async setMaintenance(host: HostId, on: boolean): Promise<void> {
    await (await this.owner(host)).setMaintenance?.(host, on);
  }

  async close(): Promise<void> {
    await Promise.all(this.parts.map((d) => d.close()));
  }

  /** Calls may come before any sample (start-up reconciliation resumes or restarts guests): sample once then. */
  private async owner(host: HostId): Promise<Driver> {
    if (!this.hostOwner.has(host)) await this.sample();
    const d = this.hostOwner.get(host);
    if (!d) throw new DriverError(`host ${host} is not reported by any driver`, "unknown-host", host);
    return d;
  }
}
