import { z } from "zod";
import { policyConfigSchema } from "../policies/registry.js";
import { MIGRATION_FLAGS } from "../drivers/driver.js";
import { validate as validateCron } from "node-cron";
import { scenarioSchema, type Scenario } from "./scenario.js";

// Custom messages are phrased "expected …": the loader prints them as "got <value>, expected …".

const fraction = z.number().min(0).max(1);
const positive = z.number().positive();
const name = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "expected a name of letters, digits, '.', '_' or '-' (starting with a letter or digit)");
const fingerprint = z
  .string()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, "expected an OpenSSH host key fingerprint: 'SHA256:' and 43 base64 characters");

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Adds one "duplicate name" issue per repeated entry, pointing at the repeat. */
function uniqueNames(items: readonly { name: string }[], path: (string | number)[], what: string, ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  for (const [i, item] of items.entries()) {
    const first = seen.get(item.name);
    if (first !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: [...path, i, "name"],
        input: item.name,
        message: `expected a unique ${what} name ('${item.name}' is already used by ${path.join(".")}[${first}])`,
      });
    } else {
      seen.set(item.name, i);
    }
  }
}

/** Simulated host names: `<cell>-h<N>`, N from 1. */
function simHostNames(sim: z.output<typeof simSchema>): Set<string> {
  return new Set(sim.cells.flatMap((cell) => Array.from({ length: cell.hosts }, (_, i) => `${cell.name}-h${i + 1}`)));
}

const SIM_HOST_EXPECTED = "expected a simulated host name '<cell>-h<N>' with N from 1 to that cell's host count";

/** A scenario runs on the simulator and names only its hosts, cells and tenants. */
function checkScenario(scenario: Scenario, sim: z.output<typeof simSchema> | undefined, ctx: z.RefinementCtx): void {
  if (!sim) {
    ctx.addIssue({ code: "custom", path: ["scenario"], message: "expected a sim: section (scenarios run on the simulated cluster)" });
    return;
  }
  const hosts = simHostNames(sim);
  const tenants = new Set(sim.tenants.map((t) => t.name));
  const host = (h: string, path: (string | number)[]): void => {
    if (!hosts.has(h)) ctx.addIssue({ code: "custom", path: ["scenario", ...path], input: h, message: SIM_HOST_EXPECTED });
  };
  for (const [i, e] of scenario.events.entries()) {
    if (e.drain !== undefined) host(e.drain, ["events", i, "drain"]);
    if (e.undrain !== undefined) host(e.undrain, ["events", i, "undrain"]);
    for (const [j, h] of (e.burst?.hosts ?? []).entries()) host(h, ["events", i, "burst", "hosts", j]);
    const tenant = e.burst?.tenant;
    if (tenant !== undefined && !tenants.has(tenant)) {
      const known = [...tenants].join(", ") || "none declared";
      ctx.addIssue({ code: "custom", path: ["scenario", "events", i, "burst", "tenant"], input: tenant, message: `expected a tenant of sim.tenants (${known})` });
    }
  }
}

export const thresholdsSchema = z
  .strictObject({
    cpuHigh: fraction.default(0.85),
    cpuLow: fraction.default(0.7),
    memHigh: fraction.default(0.9),
    memLow: fraction.default(0.8),
  })
  .superRefine((t, ctx) => {
    // Hysteresis needs a band: the low mark strictly below the high one. (Skipped when a mark is
    // already reported as out of range, so one mistake gives one message.)
    const valid = (x: number): boolean => x >= 0 && x <= 1;
    if (valid(t.cpuLow) && valid(t.cpuHigh) && !(t.cpuLow < t.cpuHigh)) {
      ctx.addIssue({ code: "custom", path: ["cpuLow"], input: t.cpuLow, message: `expected a number below cpuHigh (${t.cpuHigh})` });
    }
    if (valid(t.memLow) && valid(t.memHigh) && !(t.memLow < t.memHigh)) {
      ctx.addIssue({ code: "custom", path: ["memLow"], input: t.memLow, message: `expected a number below memHigh (${t.memHigh})` });
    }
  });

const sshSchema = z.strictObject({
  user: z.string().min(1).default("root"),
  port: z.number().int().min(1).max(65535).default(22),
  privateKeyFile: z.string().min(1),
  /** Accepted host key fingerprints; trust on first use is never implied. */
  hostKeys: z.array(fingerprint).min(1),
  keepaliveSec: positive.default(15),
});

const libvirtHostSchema = z.strictObject({
  name,
  uri: z.string().regex(/^qemu(\+(ssh|tls|tcp|unix))?:\/\/[^\s]*\/(system|session)(\?[^\s]*)?$/, "expected a libvirt URI such as qemu+tls://host/system or qemu+ssh://root@host/system"),
  cell: name.optional(),
  sharedStorage: z.array(z.string().min(1)).default([]),
  /** Where host CPU load and memory come from: libvirt node statistics, the sum of its domains, or /proc over SSH. */
  loadSource: z.enum(["node", "domains", "proc"]).default("node"),
  ssh: sshSchema.optional(),
  /** The host's qemu.conf migration_port_min/max (preflight checks them open from other hosts); libvirt's default 49152–49215 when absent. */
  migrationPorts: z
    .strictObject({ min: z.number().int().min(1).max(65535), max: z.number().int().min(1).max(65535) })
    .refine((r) => r.min <= r.max, { message: "expected min ≤ max", path: ["max"] })
    .optional(),
}).refine((h) => h.loadSource !== "proc" || h.ssh !== undefined, { message: "expected an ssh section: loadSource proc reads /proc over SSH", path: ["loadSource"] });

const xenPoolSchema = z.strictObject({
  name,
  url: z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL of the pool master" }),
  /** File holding "user:password"; never logged. */
  credentialsFile: z.string().min(1),
  allowUnauthorized: z.boolean().default(false),
  cell: name.optional(),
  /** Per-host cell overrides (host name → cell). */
  hostCells: z.record(name, name).default({}),
  /** Disable a draining host in XAPI so nothing new lands there; re-enable on undrain. */
  disableOnDrain: z.boolean().default(true),
});

const simCellSchema = z.strictObject({
  name,
  hosts: z.number().int().min(1).max(5000),
  cpus: z.number().int().min(1).default(32),
  memoryMiB: z.number().int().min(1024).default(262144),
  vmsPerHost: z.number().int().min(0).max(500).default(10),
  /** Shared storage all hosts of the cell mount; omit for local disks only. */
  sharedStorage: z.string().min(1).nullable().default("nfs-1"),
  /** Mean share of host memory the VMs take (each host within ±0.1 of it): 0.8 and up is a cluster near full. */
  memoryFill: z.number().min(0.2).max(0.9).default(0.6),
  /** When the cell's load wave peaks: minutes after midnight UTC (for a period that divides a day), modulo the period; seeded when absent. */
  wavePeakMinute: z.number().min(0).optional(),
});

const simTenantSchema = z.strictObject({
  /** VMs of the tenant carry the tag `tenant=<name>` (scenario bursts pick them by it). */
  name,
  /** Fraction of the VMs (of `cells`, or of every cell) that belong to it, drawn from the seed. */
  share: z.number().gt(0).max(1),
  cells: z.array(name).min(1).optional(),
});

export const simSchema = z.strictObject({
  seed: z.number().int().default(1),
  cells: z.array(simCellSchema).min(1),
  /** Migration link bandwidth. */
  bandwidthMiBps: positive.default(1000),
  /** Mean VM CPU demand as a fraction of its vCPUs. */
  meanUtilisation: fraction.default(0.3),
  /** Period of the daily wave (shorter in demos so something happens). */
  wavePeriodMinutes: positive.default(1440),
  /** Fraction of VMs that dirty memory faster than the link can copy it. */
  heavyDirtierFraction: fraction.default(0.02),
  /** Probability that a migration fails on the hypervisor side. */
  migrationFailureRate: fraction.default(0),
  /** Hosts that start overloaded: their VMs run hot from the start. */
  hotHosts: z.array(name).default([]),
  /** Seconds for QEMU to start and stop around a migration. */
  migrationOverheadSec: z.number().min(0).default(1.5),
  /** Tenants: tagged groups of VMs (a bursty tenant in a scenario). */
  tenants: z.array(simTenantSchema).default([]),
});

export const migrationSchema = z.strictObject({
  /** live: copy while the guest runs; suspend: no LIVE flag, guest paused for the whole copy (the seed's default). */
  mode: z.enum(["live", "suspend"]).default("live"),
  /** Per-cell override of mode, e.g. a cell of guests that must never run during a copy. */
  modeByCell: z.record(z.string().min(1), z.enum(["live", "suspend"])).default({}),
  /** The seed's "true live migration" set; NON_SHARED_DISK and OFFLINE are added per kind. */
  flags: z.array(z.enum(MIGRATION_FLAGS)).default(["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"]),
  allowBlockMigration: z.boolean().default(false),
  /** Running VMs carrying one of these tags may be moved cold (stopped, moved, started) when live is impossible. */
  allowColdForTags: z.array(z.string().min(1)).default([]),
  /** Highest guest downtime the convergence guard may allow (Nova live_migration_downtime). */
  maxDowntimeMs: positive.default(500),
  /** Downtime rises to maxDowntimeMs in this many steps (Nova live_migration_downtime_steps). */
  downtimeSteps: z.number().int().min(1).max(100).default(10),
  /** Seconds between downtime steps per GiB of RAM + disk (Nova live_migration_downtime_delay). */
  downtimeDelaySecPerGiB: positive.default(75),
  /** Migration link bandwidth cap; also what the convergence prediction assumes when the driver measures none. */
  bandwidthMiBps: positive.optional(),
  /** Budget per GiB of RAM + copied disk (Nova live_migration_completion_timeout). */
  completionTimeoutSecPerGiB: positive.default(800),
  /** No new low of remaining data across memory passes for this long is a stall (0 turns the check off). */
  progressTimeoutSec: z.number().min(0).default(150),
  /** Allow switching to post-copy (adds the POSTCOPY flag at start). */
  permitPostCopy: z.boolean().default(false),
  /** Let QEMU throttle the guest's vCPUs (adds AUTO_CONVERGE). */
  permitAutoConverge: z.boolean().default(false),
  /** When cheaper steps are exhausted: abort (VM stays on its source) or force-complete (post-copy or pause). */
  timeoutAction: z.enum(["abort", "force-complete"]).default("abort"),
  /** Consecutive samples with dirty rate at or above bandwidth before the guard escalates at once. */
  escalateAfterSamples: z.number().int().min(1).default(5),
  pollIntervalMs: z.number().int().min(100).default(1000),
});

export const guardsSchema = z.strictObject({
  /** A VM that moved is not moved again for this long. */
  vmCooldownMinutes: z.number().min(0).default(30),
  /** After a failed or aborted migration, the VM waits this long. */
  failureCooldownMinutes: z.number().min(0).default(120),
  maxMigrationsPerHour: z.number().int().min(1).default(30),
  /** A host that took part in this many failed or aborted migrations within hostBackoffMinutes… */
  hostFailureLimit: z.number().int().min(1).default(3),
  /** …is neither source nor destination until this long after its last failure. */
  hostBackoffMinutes: z.number().min(0).default(30),
  /** A host that took part (source or destination) in this many migrations in the last hour takes part in no more; drains are exempt. */
  maxMigrationsPerHostPerHour: z.number().int().min(1).default(6),
  /** A VM does not return to a host it left within this long (0 turns the check off); a drain returns it only when no other host fits. */
  returnCooldownMinutes: z.number().min(0).default(360),
});

export const configSchema = z
  .strictObject({
    /** SQLite history and the lock live here. */
    stateDir: z.string().min(1).default("/var/lib/ballast"),
    /** Flag files `<maintenanceDir>/<host>`; defaults to `<stateDir>/maintenance`. */
    maintenanceDir: z.string().min(1).optional(),
    /** node-cron expression (seconds field optional). */
    schedule: z
      .string()
      .min(1)
      .refine((s) => validateCron(s), "expected a cron expression such as '*/60 * * * * *' (sec min hour day month weekday)")
      .default("*/60 * * * * *"),
    timezone: z
      .string()
      .min(1)
      .refine(isTimeZone, "expected an IANA time zone such as 'UTC' or 'Europe/Berlin'")
      .optional(),
    /** Periodic rescan of the flag directory, on top of the file watch. */
    flagRescanSeconds: positive.default(5),
    http: z
      .strictObject({
        enabled: z.boolean().default(true),
        listen: z.string().min(1).default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(9464),
        /** POST/DELETE /api/drain/<host>: off unless enabled; a bearer token from tokenFile is then required. */
        admin: z
          .strictObject({
            enabled: z.boolean().default(false),
            /** File holding the bearer token (one line, at least 16 characters); never logged. */
            tokenFile: z.string().min(1).optional(),
          })
          .superRefine((a, ctx) => {
            if (a.enabled && a.tokenFile === undefined) {
              ctx.addIssue({ code: "custom", path: ["tokenFile"], message: "expected a token file path when http.admin.enabled is true" });
            }
          })
          .prefault({}),
      })
      .prefault({}),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
    thresholds: thresholdsSchema.prefault({}),
    policies: policyConfigSchema.prefault({}),
    migration: migrationSchema.prefault({}),
    guards: guardsSchema.prefault({}),
    history: z
      .strictObject({
        sampleRetentionHours: positive.default(48),
        /** Rounds and their decisions older than this are deleted (the migration journal and events are kept). */
        roundRetentionDays: positive.default(90),
      })
      .prefault({}),
    /** SIGTERM (systemctl stop): scheduling stops at once; then the migration in flight, if any, is… */
    shutdown: z
      .strictObject({
        /** wait: allowed to finish for up to stopTimeoutSec, then aborted; abort: aborted at once (VM stays on its source). */
        action: z.enum(["wait", "abort"]).default("wait"),
        /** Keep below the unit's TimeoutStopSec (330 s); the daemon also asks systemd for more time while it waits. */
        stopTimeoutSec: positive.default(300),
      })
      .prefault({}),
    sim: simSchema.optional(),
    /** A timeline for `ballast simulate --scenario` (ignored by `run`). */
    scenario: scenarioSchema.optional(),
    libvirt: z
      .strictObject({
        /** qemu+tcp:// carries guest memory unencrypted; refused unless this is set. */
        allowInsecureTransport: z.boolean().default(false),
        hosts: z.array(libvirtHostSchema).min(1),
        /** Where instance disks live (the seed's NOVA-INST-DIR/instances); preflight checks it is shared and searchable. */
        instancesDir: z.string().regex(/^\//, "expected an absolute path").default("/var/lib/libvirt/images"),
        /** Service users and groups whose UID/GID must match on every host (the seed: permissions on the shared mount). */
        serviceUsers: z.array(z.string().min(1)).default(["libvirt-qemu"]),
        serviceGroups: z.array(z.string().min(1)).default(["kvm"]),
      })
      .optional(),
    xenserver: z.strictObject({ pools: z.array(xenPoolSchema).min(1) }).optional(),
  })
  .superRefine((c, ctx) => {
    if (!c.sim && !c.libvirt && !c.xenserver) {
      ctx.addIssue({ code: "custom", path: [], message: "expected one of sim, libvirt or xenserver to be configured" });
    }
    if (c.sim && (c.libvirt || c.xenserver)) {
      ctx.addIssue({
        code: "custom",
        path: ["sim"],
        message: "expected either sim or real hypervisors (libvirt, xenserver), not both",
      });
    }
    if (c.sim) {
      uniqueNames(c.sim.cells, ["sim", "cells"], "cell", ctx);
      const simHosts = simHostNames(c.sim);
      const cells = new Set(c.sim.cells.map((cell) => cell.name));
      for (const [i, t] of c.sim.tenants.entries()) {
        for (const [j, cell] of (t.cells ?? []).entries()) {
          if (!cells.has(cell)) ctx.addIssue({ code: "custom", path: ["sim", "tenants", i, "cells", j], input: cell, message: "expected the name of a cell in sim.cells" });
        }
      }
      for (const [i, h] of c.sim.hotHosts.entries()) {
        if (!simHosts.has(h)) {
          ctx.addIssue({
            code: "custom",
            path: ["sim", "hotHosts", i],
            input: h,
            message: SIM_HOST_EXPECTED,
          });
        }
      }
    }
    if (c.scenario) checkScenario(c.scenario, c.sim, ctx);
    if (c.libvirt) uniqueNames(c.libvirt.hosts, ["libvirt", "hosts"], "host", ctx);
    if (c.xenserver) uniqueNames(c.xenserver.pools, ["xenserver", "pools"], "pool", ctx);
    for (const [i, h] of (c.libvirt?.hosts ?? []).entries()) {
      if (!c.libvirt?.allowInsecureTransport && /^qemu\+tcp:/.test(h.uri)) {
        ctx.addIssue({
          code: "custom",
          path: ["libvirt", "hosts", i, "uri"],
          message: "expected qemu+ssh:// or qemu+tls:// (qemu+tcp:// is unencrypted; set libvirt.allowInsecureTransport to allow it)",
          input: h.uri,
        });
      }
    }
  });

export type Config = z.output<typeof configSchema>;
export type SimConfig = z.output<typeof simSchema>;
export type MigrationConfig = z.output<typeof migrationSchema>;
export type GuardsConfig = z.output<typeof guardsSchema>;
