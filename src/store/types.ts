import type { CellId, HostId, MigrationKind, VmId } from "../model/index.js";

/**
 * Row and input types of the history store. Times are integer milliseconds since the epoch, always passed
 * in by the caller (the store never reads the clock). Absent values read back as `null`.
 */

/** Row ids are SQLite rowids (AUTOINCREMENT: never reused, even after pruning). */
export type RoundId = number;
export type MigrationId = number;

/** What JSON columns read back as. Inputs are `unknown` and stored with JSON.stringify. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

// ---------------------------------------------------------------------------------------------- rounds

/** Why a round ran. Open-ended: the daemon may add its own. */
export type RoundTrigger = "schedule" | "flag" | "startup" | "manual" | "reload" | (string & {});
export const ROUND_OUTCOMES = ["ok", "error", "skipped"] as const;
export type RoundOutcome = (typeof ROUND_OUTCOMES)[number];

export interface RoundStart {
  readonly startedAt: number;
  readonly trigger: RoundTrigger;
}

export interface RoundFinish {
  readonly finishedAt: number;
  readonly outcome: RoundOutcome;
  /** Moves the planner accepted. */
  readonly planned: number;
  /** Proposals no destination could take (or refused by a guard). */
  readonly blocked: number;
  /** Migrations the round actually performed, if the caller tracks it. */
  readonly migrated?: number;
  readonly summary?: string;
  readonly error?: string;
}

export interface RoundRow {
  readonly id: RoundId;
  readonly startedAt: number;
  readonly trigger: RoundTrigger;
  /** null while the round runs (or when the daemon died during it). */
  readonly finishedAt: number | null;
  readonly outcome: RoundOutcome | null;
  readonly planned: number | null;
  readonly blocked: number | null;
  readonly migrated: number | null;
  readonly summary: string | null;
  readonly error: string | null;
}

// ------------------------------------------------------------------------------------------- decisions

/** One row per proposal outcome: a move accepted, a proposal blocked, or a move refused by a guard. */
export const DECISION_OUTCOMES = ["moved", "blocked", "refused"] as const;
export type DecisionOutcome = (typeof DECISION_OUTCOMES)[number];

export interface DecisionInput {
  readonly roundId: RoundId;
  readonly at: number;
  readonly outcome: DecisionOutcome;
  readonly policy: string;
  readonly vm: VmId;
  readonly from?: HostId;
  readonly to?: HostId;
  readonly kind?: MigrationKind;
  /** Machine-readable reason (e.g. a Verdict code: "cooldown", "no-destination"), for counting by reason. */
  readonly code?: string;
  readonly reason: string;
  /** Anything else worth keeping (scores, prediction, guard inputs); stored as JSON. */
  readonly details?: unknown;
}

export interface DecisionRow {
  readonly id: number;
  readonly roundId: RoundId;
  readonly at: number;
  readonly outcome: DecisionOutcome;
  readonly policy: string;
  readonly vm: VmId;
  readonly from: HostId | null;
  readonly to: HostId | null;
  readonly kind: MigrationKind | null;
  readonly code: string | null;
  readonly reason: string;
  readonly details: JsonValue | null;
}

// ------------------------------------------------------------------------------------------ migrations

export const MIGRATION_STATUSES = ["intent", "running", "succeeded", "failed", "aborted", "interrupted"] as const;
export type MigrationStatus = (typeof MIGRATION_STATUSES)[number];
/** Not closed yet: reconciled at start-up, and a VM with one is never migrated again until then. */
export const OPEN_MIGRATION_STATUSES = ["intent", "running"] as const;
export type OpenMigrationStatus = (typeof OPEN_MIGRATION_STATUSES)[number];
export const FINAL_MIGRATION_STATUSES = ["succeeded", "failed", "aborted", "interrupted"] as const;
export type FinalMigrationStatus = (typeof FINAL_MIGRATION_STATUSES)[number];

export interface MigrationIntent {
  /** null for a migration started outside a round. */
  readonly roundId: RoundId | null;
  readonly vm: VmId;
  readonly from: HostId;
  readonly to: HostId;
  readonly kind: MigrationKind;
  readonly policy: string;
  readonly reason: string;
  readonly flags: readonly string[];
  readonly startedAt: number;
  readonly predictedMs?: number;
  /** E.g. the prediction's inputs; stored as JSON. */
  readonly details?: unknown;
}

export interface MigrationFinish {
  readonly status: FinalMigrationStatus;
  readonly finishedAt: number;
  readonly downtimeMs?: number;
  readonly dataMiB?: number;
  readonly passes?: number;
  readonly error?: string;
  readonly actualMs?: number;
}

export interface MigrationRow {
  readonly id: MigrationId;
  readonly roundId: RoundId | null;
  readonly vm: VmId;
  readonly from: HostId;
  readonly to: HostId;
  readonly kind: MigrationKind;
  readonly policy: string;
  readonly reason: string;
  readonly flags: readonly string[];
  readonly status: MigrationStatus;
  /** When the intent was written (before the driver was called). */
  readonly startedAt: number;
  readonly runningAt: number | null;
  readonly finishedAt: number | null;
  readonly predictedMs: number | null;
  readonly actualMs: number | null;
  readonly downtimeMs: number | null;
  readonly dataMiB: number | null;
  readonly passes: number | null;
  readonly error: string | null;
  readonly details: JsonValue | null;
}

export const MIGRATION_EVENT_KINDS = ["stats", "guard", "note"] as const;
export type MigrationEventKind = (typeof MIGRATION_EVENT_KINDS)[number];

export interface MigrationEventInput {
  readonly at: number;
  readonly kind: MigrationEventKind;
  readonly data: unknown;
}

export interface MigrationEventRow {
  readonly id: number;
  readonly migrationId: MigrationId;
  readonly at: number;
  readonly kind: MigrationEventKind;
  readonly data: JsonValue;
}

export interface MigrationWithEvents extends MigrationRow {
  /** Oldest first. */
  readonly events: readonly MigrationEventRow[];
}

// -------------------------------------------------------------------------------------- guard queries

export interface MigrationCounts {
  /** Migrations whose intent was written at or after the given time, whatever their status. */
  readonly total: number;
  /** The same, per host, counting a migration for its source and for its destination. */
  readonly byHost: ReadonlyMap<HostId, number>;
}

export interface FailureFilter {
  readonly vm?: VmId;
  /** Matches the host as source or destination. */
  readonly host?: HostId;
}

export interface FailureSummary {
  /** Migrations finished `failed` or `aborted` at or after the given time. */
  readonly count: number;
  /** finishedAt of the latest of them; null when count is 0. */
  readonly lastAt: number | null;
}

// -------------------------------------------------------------------------------------------- samples

export interface HostSampleInput {
  readonly host: HostId;
  readonly cell: CellId;
  readonly cpuLoad: number;
  readonly memoryUsedMiB: number;
  readonly memoryMiB: number;
  readonly maintenance: boolean;
}

/** Same shape as the policies' LoadPoint. */
export interface HostLoadPoint {
  readonly atMs: number;
  readonly cpuLoad: number;
}

export interface HostSampleRow extends HostSampleInput {
  readonly atMs: number;
}

export interface ImbalanceInput {
  readonly cell: CellId;
  readonly cpu: number;
  readonly memory: number;
}

export interface ImbalancePoint {
  readonly atMs: number;
  readonly cpu: number;
  readonly memory: number;
}

// --------------------------------------------------------------------------------------------- events

export type EventKind =
  | "flag-set"
  | "flag-cleared"
  | "config-reloaded"
  | "config-rejected"
  | "started"
  | "stopped"
  | "reconciled"
  | (string & {});

export interface EventInput {
  readonly at: number;
  readonly kind: EventKind;
  readonly host?: HostId;
  readonly message: string;
  readonly data?: unknown;
}

export interface EventRow {
  readonly id: number;
  readonly at: number;
  readonly kind: EventKind;
  readonly host: HostId | null;
  readonly message: string;
  readonly data: JsonValue | null;
}

// ---------------------------------------------------------------------------------------------- stats

export interface StoreStats {
  readonly schemaVersion: number;
  readonly rows: {
    readonly rounds: number;
    readonly decisions: number;
    readonly migrations: number;
    readonly migrationEvents: number;
    readonly hostSamples: number;
    readonly imbalanceSamples: number;
    readonly events: number;
  };
  /** Main database file; 0 for an in-memory store. */
  readonly fileBytes: number;
  /** The -wal file (0 when absent). */
  readonly walBytes: number;
  readonly pageSize: number;
  readonly pageCount: number;
  readonly freePages: number;
}

// --------------------------------------------------------------------------------------------- errors

export type StoreErrorCode =
  | "open-failed"
  | "not-ballast"
  | "schema-too-new"
  | "schema-too-old"
  | "not-found"
  | "invalid-transition"
  | "vm-has-open-migration"
  | "invalid-argument";

export class StoreError extends Error {
  constructor(
    message: string,
    readonly code: StoreErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "StoreError";
  }
}
