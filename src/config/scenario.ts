import { z } from "zod";
import { durationMs } from "../util/duration.js";

// The `scenario:` section of a config file: a timeline of what happens to the simulated cluster during
// `ballast simulate --scenario FILE`. Times are offsets from the start of the run. Custom messages are
// phrased "expected …" (the loader prints "got <value>, expected …").

const duration = z
  .string()
  .refine((s) => durationMs(s) !== undefined, "expected a duration like 90s, 15m, 6h or 2d")
  .transform((s) => durationMs(s) ?? 0);

const positiveDuration = duration.refine((ms) => ms > 0, "expected a duration above zero");

const burstSchema = z
  .strictObject({
    /** VMs tagged `tenant=<name>` (see sim.tenants). */
    tenant: z.string().min(1).optional(),
    /** Every VM on these hosts when the burst starts. */
    hosts: z.array(z.string().min(1)).min(1).optional(),
    /** Extra CPU demand of each VM, as a fraction of its vCPUs (demand is capped at its vCPUs). */
    cpu: z.number().gt(0).max(1),
    /** How long the burst lasts. */
    for: positiveDuration,
  })
  .superRefine((b, ctx) => {
    if ((b.tenant === undefined) === (b.hosts === undefined)) {
      ctx.addIssue({ code: "custom", path: [], message: "expected exactly one of tenant or hosts: which VMs burst" });
    }
  });

export const scenarioEventSchema = z
  .strictObject({
    /** When, from the start of the run. */
    at: duration,
    /** Repeat every this long (until the run ends, or `until`). */
    every: positiveDuration.optional(),
    until: duration.optional(),
    /** The operator puts the host in maintenance (creates its flag file). */
    drain: z.string().min(1).optional(),
    /** Kept in the flag file. */
    reason: z.string().max(200).optional(),
    /** The operator takes the host out of maintenance. */
    undrain: z.string().min(1).optional(),
    burst: burstSchema.optional(),
  })
  .superRefine((e, ctx) => {
    const kinds = [e.drain, e.undrain, e.burst].filter((x) => x !== undefined).length;
    if (kinds !== 1) {
      ctx.addIssue({ code: "custom", path: [], message: "expected exactly one of drain, undrain or burst in each event" });
    }
    if (e.reason !== undefined && e.drain === undefined) {
      ctx.addIssue({ code: "custom", path: ["reason"], input: e.reason, message: "expected reason only on a drain event" });
    }
    if (e.until !== undefined && e.every === undefined) {
      ctx.addIssue({ code: "custom", path: ["until"], input: e.until, message: "expected until only with every" });
    }
  });

export const scenarioSchema = z.strictObject({
  name: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[a-z0-9][a-z0-9-]*$/, "expected a short name of lower-case letters, digits and '-'"),
  description: z.string().max(2000).default(""),
  events: z.array(scenarioEventSchema).default([]),
});

export type Scenario = z.output<typeof scenarioSchema>;
export type ScenarioEvent = z.output<typeof scenarioEventSchema>;
