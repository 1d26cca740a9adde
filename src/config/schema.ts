import { z } from "zod";
import { policyConfigSchema } from "../policies/registry.js";
import { MIGRATION_FLAGS } from "../drivers/driver.js";

const fraction = z.number().min(0).max(1);
const positive = z.number().positive();
const name = z.string().min(1).max(253).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "a name of letters, digits, '.', '_' or '-'");
const fingerprint = z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, "an OpenSSH 'SHA256:…' host key fingerprint");

export const thresholdsSchema = z
  .strictObject({
    cpuHigh: fraction.default(0.85),
    cpuLow: fraction.default(0.7),
    memHigh: fraction.default(0.9),
    memLow: fraction.default(0.8),
  })
  .refine((t) => t.cpuLow < t.cpuHigh, { message: "cpuLow must be below cpuHigh", path: ["cpuLow"] })
  .refine((t) => t.memLow < t.memHigh, { message: "memLow must be below memHigh", path: ["memLow"] });

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
  uri: z.string().regex(/^qemu(\+(ssh|tls|tcp|unix))?:\/\/[^\s]*\/(system|session)(\?[^\s]*)?$/, "a libvirt URI such as qemu+tls://host/system"),
  cell: name.optional(),
  sharedStorage: z.array(z.string().min(1)).default([]),
  /** Where host CPU load comes from: node statistics, or the sum of its domains' CPU time. */
  loadSource: z.enum(["node", "domains"]).default("node"),
  ssh: sshSchema.optional(),
});

const xenPoolSchema = z.strictObject({
  name,
  url: z.url({ protocol: /^https?$/ }),
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
});

export const migrationSchema = z.strictObject({
  /** live: copy while the guest runs; suspend: no LIVE flag, guest paused for the whole copy (the seed's default). */
  mode: z.enum(["live", "suspend"]).default("live"),
  /** The seed's "true live migration" set; NON_SHARED_DISK and OFFLINE are added per kind. */
  flags: z.array(z.enum(MIGRATION_FLAGS)).default(["LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"]),
  allowBlockMigration: z.boolean().default(false),
  /** Running VMs carrying one of these tags may be moved cold (stopped, moved, started) when live is impossible. */
  allowColdForTags: z.array(z.string().min(1)).default([]),
  maxDowntimeMs: positive.default(500),
  bandwidthMiBps: positive.optional(),
  completionTimeoutSecPerGiB: positive.default(800),
  pollIntervalMs: z.number().int().min(100).default(1000),
});

export const guardsSchema = z.strictObject({
  /** A VM that moved is not moved again for this long. */
  vmCooldownMinutes: z.number().min(0).default(30),
  /** After a failed or aborted migration, the VM waits this long. */
  failureCooldownMinutes: z.number().min(0).default(120),
  maxMigrationsPerHour: z.number().int().min(1).default(30),
});

export const configSchema = z
  .strictObject({
    /** SQLite history and the lock live here. */
    stateDir: z.string().min(1).default("/var/lib/ballast"),
    /** Flag files `<maintenanceDir>/<host>`; defaults to `<stateDir>/maintenance`. */
    maintenanceDir: z.string().min(1).optional(),
    /** node-cron expression (seconds field optional). */
    schedule: z.string().min(1).default("*/60 * * * * *"),
    timezone: z.string().min(1).optional(),
    /** Periodic rescan of the flag directory, on top of the file watch. */
    flagRescanSeconds: positive.default(5),
    http: z
      .strictObject({
        enabled: z.boolean().default(true),
        listen: z.string().min(1).default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(9464),
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
      })
      .prefault({}),
    sim: simSchema.optional(),
    libvirt: z
      .strictObject({
        /** qemu+tcp:// carries guest memory unencrypted; refused unless this is set. */
        allowInsecureTransport: z.boolean().default(false),
        hosts: z.array(libvirtHostSchema).min(1),
      })
      .optional(),
    xenserver: z.strictObject({ pools: z.array(xenPoolSchema).min(1) }).optional(),
  })
  .superRefine((c, ctx) => {
    if (!c.sim && !c.libvirt && !c.xenserver) {
      ctx.addIssue({ code: "custom", path: [], message: "one of sim, libvirt or xenserver must be configured" });
    }
    if (c.sim && (c.libvirt || c.xenserver)) {
      ctx.addIssue({ code: "custom", path: ["sim"], message: "the simulated cluster cannot be mixed with real hypervisors" });
    }
    for (const [i, h] of (c.libvirt?.hosts ?? []).entries()) {
      if (!c.libvirt?.allowInsecureTransport && /^qemu\+tcp:/.test(h.uri)) {
        ctx.addIssue({
          code: "custom",
          path: ["libvirt", "hosts", i, "uri"],
          message: "qemu+tcp:// is unencrypted; use qemu+ssh:// or qemu+tls://, or set libvirt.allowInsecureTransport",
          input: h.uri,
        });
      }
    }
  });

export type Config = z.output<typeof configSchema>;
export type SimConfig = z.output<typeof simSchema>;
export type MigrationConfig = z.output<typeof migrationSchema>;
export type GuardsConfig = z.output<typeof guardsSchema>;
