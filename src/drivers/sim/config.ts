import type { z } from "zod";
import type { SimConfig, simSchema } from "../../config/schema.js";

/** The sim section as written in YAML (defaults optional). */
export type SimConfigInput = z.input<typeof simSchema>;

/**
 * Fills the schema's defaults without importing zod at run time, so benches and tests can build a cluster from a
 * few fields. It mirrors `simSchema` in src/config/schema.ts (a test checks the two agree); config files still go
 * through the schema, which also validates.
 */
export function simConfig(input: SimConfigInput): SimConfig {
  return {
    seed: input.seed ?? 1,
    cells: input.cells.map((c) => ({
      name: c.name,
      hosts: c.hosts,
      cpus: c.cpus ?? 32,
      memoryMiB: c.memoryMiB ?? 262144,
      vmsPerHost: c.vmsPerHost ?? 10,
      sharedStorage: c.sharedStorage === undefined ? "nfs-1" : c.sharedStorage,
      memoryFill: c.memoryFill ?? 0.6,
      ...(c.wavePeakMinute !== undefined && { wavePeakMinute: c.wavePeakMinute }),
    })),
    bandwidthMiBps: input.bandwidthMiBps ?? 1000,
    meanUtilisation: input.meanUtilisation ?? 0.3,
    wavePeriodMinutes: input.wavePeriodMinutes ?? 1440,
    heavyDirtierFraction: input.heavyDirtierFraction ?? 0.02,
    migrationFailureRate: input.migrationFailureRate ?? 0,
    hotHosts: input.hotHosts ?? [],
    migrationOverheadSec: input.migrationOverheadSec ?? 1.5,
    tenants: input.tenants ?? [],
  };
}
