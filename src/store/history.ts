import type { CellId, HostId, VmId } from "../model/index.js";
import { fileSize, IN_MEMORY, openDatabase, type OpenOptions, type SqliteDatabase } from "./db.js";
import {
  DECISION_OUTCOMES,
  FINAL_MIGRATION_STATUSES,
  MIGRATION_EVENT_KINDS,
  ROUND_OUTCOMES,
  StoreError,
  type DecisionInput,
  type DecisionOutcome,
  type DecisionRow,
  type EventInput,
  type EventRow,
  type FailureFilter,
  type FailureSummary,
  type HostLoadPoint,
  type HostSampleInput,
  type HostSampleRow,
  type ImbalanceInput,
  type ImbalancePoint,
  type JsonValue,
  type MigrationCounts,
  type MigrationEventInput,
  type MigrationEventRow,
  type MigrationFinish,
  type MigrationId,
  type MigrationIntent,
  type MigrationRow,
  type MigrationStatus,
  type MigrationWithEvents,
  type RoundFinish,
  type RoundId,
  type RoundOutcome,
  type RoundRow,
  type RoundStart,
  type StoreStats,
} from "./types.js";

/** Opens the history database at `path` (or `:memory:`), creating and migrating it as needed. */
export function openHistory(path: string, opts: OpenOptions = {}): HistoryStore {
  const { db, version } = openDatabase(path, opts);
  try {
    return new HistoryStore(db, path, version);
  } catch (e) {
    db.close();
    throw e;
  }
}

// Raw rows as SELECTed (columns aliased to camelCase; JSON still text).
type Raw<T, JsonKeys extends keyof T> = Omit<T, JsonKeys> & { readonly [K in JsonKeys]: string | null };
type RawMigration = Raw<MigrationRow, "flags" | "details">;
type RawDecision = Raw<DecisionRow, "details">;
type RawEvent = Raw<EventRow, "data">;
type RawMigrationEvent = Raw<MigrationEventRow, "data">;

const MIGRATION_COLUMNS = `id, round_id AS roundId, vm, from_host AS "from", to_host AS "to", kind, policy, reason, flags,
  status, started_at AS startedAt, running_at AS runningAt, finished_at AS finishedAt, predicted_ms AS predictedMs,
  actual_ms AS actualMs, downtime_ms AS downtimeMs, data_mib AS dataMiB, passes, error, details`;
const DECISION_COLUMNS = `id, round_id AS roundId, at, outcome, policy, vm, from_host AS "from", to_host AS "to", kind,
  code, reason, details`;
const ROUND_COLUMNS = `id, started_at AS startedAt, trigger, finished_at AS finishedAt, outcome, planned, blocked,
  migrated, summary, error`;
const EVENT_COLUMNS = "id, at, kind, host, message, data";
const OPEN_STATUSES_SQL = "('intent', 'running')";

/**
 * The ballast history: rounds, decisions, the migration journal, host samples, events. Synchronous
 * (better-sqlite3), statements prepared once. Not safe to share between threads; one per process.
 */
export class HistoryStore {
  readonly #db: SqliteDatabase;
  readonly #s: ReturnType<typeof prepare>;
  readonly #insertSamples: (at: number, rows: readonly HostSampleInput[]) => void;
  #closed = false;

  /** Use openHistory(). */
  constructor(
    db: SqliteDatabase,
    readonly path: string,
    readonly schemaVersion: number,
  ) {
    this.#db = db;
    const s = (this.#s = prepare(db));
    this.#insertSamples = db.transaction((at: number, rows: readonly HostSampleInput[]) => {
      for (const r of rows) {
        s.insertSample.run(at, r.host, r.cell, r.cpuLoad, r.memoryUsedMiB, r.memoryMiB, r.maintenance ? 1 : 0);
      }
    });
  }

  get readonly(): boolean {
    return this.#db.readonly;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs fn in one transaction (e.g. all of a round's decisions); nests as a savepoint. */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  // ------------------------------------------------------------------------------------------- rounds

  startRound(start: RoundStart): RoundId {
    const r = this.#s.insertRound.run({ startedAt: time(start.startedAt, "startedAt"), trigger: start.trigger });
    return Number(r.lastInsertRowid);
  }

  finishRound(id: RoundId, finish: RoundFinish): void {
    oneOf(finish.outcome, ROUND_OUTCOMES, "round outcome");
    const r = this.#s.finishRound.run({
      id,
      finishedAt: time(finish.finishedAt, "finishedAt"),
      outcome: finish.outcome,
      planned: finish.planned,
      blocked: finish.blocked,
      migrated: finish.migrated ?? null,
      summary: finish.summary ?? null,
      error: finish.error ?? null,
    });
    if (r.changes === 1) return;
    const row = this.round(id);
    if (!row) throw new StoreError(`round ${id} does not exist`, "not-found");
    throw new StoreError(`round ${id} is already finished (${row.outcome ?? "?"})`, "invalid-transition");
  }

  round(id: RoundId): RoundRow | undefined {
    return this.#s.round.get(id);
  }

  /** Newest first. */
  recentRounds(limit: number): RoundRow[] {
    return this.#s.recentRounds.all(count(limit));
  }

  // ---------------------------------------------------------------------------------------- decisions

  recordDecision(d: DecisionInput): number {
    oneOf(d.outcome, DECISION_OUTCOMES, "decision outcome");
    const r = this.#s.insertDecision.run({
      roundId: d.roundId,
      at: time(d.at, "at"),
      outcome: d.outcome,
      policy: d.policy,
      vm: d.vm,
      from: d.from ?? null,
      to: d.to ?? null,
      kind: d.kind ?? null,
      code: d.code ?? null,
      reason: d.reason,
      details: json(d.details),
    });
    return Number(r.lastInsertRowid);
  }

  /** All in one transaction. */
  recordDecisions(ds: readonly DecisionInput[]): void {
    this.transaction(() => {
      for (const d of ds) this.recordDecision(d);
    });
  }

  /** In insertion order. */
  decisionsForRound(roundId: RoundId): DecisionRow[] {
    return this.#s.decisionsForRound.all(roundId).map(decisionRow);
  }

  /** Newest first; optionally only one VM's, or one outcome's. */
  recentDecisions(limit: number, filter: { vm?: VmId; outcome?: DecisionOutcome } = {}): DecisionRow[] {
    return this.#s.recentDecisions
      .all({ limit: count(limit), vm: filter.vm ?? null, outcome: filter.outcome ?? null })
      .map(decisionRow);
  }

  /**
   * Deletes rounds started before the time, and with them their decisions; migrations keep their record
   * (their round becomes NULL). Returns the rounds deleted.
   */
  pruneRounds(olderThanMs: number): number {
    return this.#s.pruneRounds.run(time(olderThanMs, "olderThanMs")).changes;
  }

  /** Deletes decisions taken before the time; returns rows deleted. */
  pruneDecisions(olderThanMs: number): number {
    return this.#s.pruneDecisions.run(time(olderThanMs, "olderThanMs")).changes;
  }

  // --------------------------------------------------------------------------------- migration journal

  /**
   * Journals a migration BEFORE the driver is called. Throws StoreError "vm-has-open-migration" when the VM
   * already has an unfinished one (it must be reconciled first).
   */
  recordIntent(intent: MigrationIntent): MigrationId {
    try {
      const r = this.#s.insertIntent.run({
        roundId: intent.roundId,
        vm: intent.vm,
        from: intent.from,
        to: intent.to,
        kind: intent.kind,
        policy: intent.policy,
        reason: intent.reason,
        flags: JSON.stringify([...intent.flags]),
        startedAt: time(intent.startedAt, "startedAt"),
        predictedMs: intent.predictedMs ?? null,
        details: json(intent.details),
      });
      return Number(r.lastInsertRowid);
    } catch (e) {
      if (sqliteCode(e) === "SQLITE_CONSTRAINT_UNIQUE") {
        const open = this.#s.openIntentOfVm.get(intent.vm);
        throw new StoreError(
          `VM ${intent.vm} already has an unfinished migration (${open ? `#${open.id}, ${open.status}` : "?"}); ` +
            `it must be reconciled first`,
          "vm-has-open-migration",
          { cause: e },
        );
      }
      throw e;
    }
  }

  /** intent → running (the hypervisor accepted the job). */
  markRunning(id: MigrationId, at: number): void {
    if (this.#s.markRunning.run({ id, at: time(at, "at") }).changes === 1) return;
    this.#transitionError(id, "running");
  }

  /** intent | running → succeeded | failed | aborted | interrupted. Finishing twice throws. */
  finishMigration(id: MigrationId, finish: MigrationFinish): void {
    oneOf(finish.status, FINAL_MIGRATION_STATUSES, "final migration status");
    const r = this.#s.finishMigration.run({
      id,
      status: finish.status,
      finishedAt: time(finish.finishedAt, "finishedAt"),
      downtimeMs: finish.downtimeMs ?? null,
      dataMiB: finish.dataMiB ?? null,
      passes: finish.passes ?? null,
      error: finish.error ?? null,
      actualMs: finish.actualMs ?? null,
    });
    if (r.changes === 1) return;
    this.#transitionError(id, finish.status);
  }

  #transitionError(id: MigrationId, to: MigrationStatus): never {
    const row = this.migration(id);
    if (!row) throw new StoreError(`migration ${id} does not exist`, "not-found");
    throw new StoreError(`migration ${id} is ${row.status}; it cannot become ${to}`, "invalid-transition");
  }

  /**
   * Guard decisions (always), sampled job statistics (throttling them is the caller's concern) and notes.
   * Allowed after the migration finished too (e.g. a reconciliation note).
   */
  appendMigrationEvent(id: MigrationId, event: MigrationEventInput): number {
    oneOf(event.kind, MIGRATION_EVENT_KINDS, "migration event kind");
    try {
      const r = this.#s.insertMigrationEvent.run({
        id,
        at: time(event.at, "at"),
        kind: event.kind,
        data: json(event.data) ?? "null",
      });
      return Number(r.lastInsertRowid);
    } catch (e) {
      if (sqliteCode(e) === "SQLITE_CONSTRAINT_FOREIGNKEY") {
        throw new StoreError(`migration ${id} does not exist`, "not-found", { cause: e });
      }
      throw e;
    }
  }

  migration(id: MigrationId): MigrationRow | undefined {
    const raw = this.#s.migration.get(id);
    return raw && migrationRow(raw);
  }

  /** Unfinished (intent or running), oldest first: what start-up reconciliation must close. */
  openIntents(): MigrationRow[] {
    return this.#s.openIntents.all().map(migrationRow);
  }

  /** Newest first. */
  migrationsForVm(vm: VmId, limit: number): MigrationRow[] {
    return this.#s.migrationsForVm.all(vm, count(limit)).map(migrationRow);
  }

  /** Newest first. */
  recentMigrations(limit: number): MigrationRow[] {
    return this.#s.recentMigrations.all(count(limit)).map(migrationRow);
  }

  migrationWithEvents(id: MigrationId): MigrationWithEvents | undefined {
    return this.#db.transaction(() => {
      const m = this.migration(id);
      if (!m) return undefined;
      const events = this.#s.migrationEvents.all(id).map((e) => ({ ...e, data: parseJson(e.data) ?? null }));
      return { ...m, events };
    })();
  }

  // ------------------------------------------------------------------------------------- guard queries

  /** The VM's latest migration, whatever its status (cooldown, failure back-off). */
  lastMigrationOfVm(vm: VmId): MigrationRow | undefined {
    const raw = this.#s.lastMigrationOfVm.get(vm);
    return raw && migrationRow(raw);
  }

  /** Migrations whose intent was written at or after sinceMs (any status), overall and per host. */
  migrationsSince(sinceMs: number): MigrationCounts {
    const since = time(sinceMs, "sinceMs");
    return this.#db.transaction(() => {
      const total = this.#s.migrationsSinceTotal.get(since) ?? 0;
      const byHost = new Map<HostId, number>();
      for (const r of this.#s.migrationsSinceByHost.all({ since })) byHost.set(r.host, r.n);
      return { total, byHost };
    })();
  }

  /** Migrations that finished failed or aborted at or after sinceMs, of a VM and/or involving a host. */
  failuresSince(sinceMs: number, filter: FailureFilter = {}): FailureSummary {
    const r = this.#s.failuresSince.get({
      since: time(sinceMs, "sinceMs"),
      vm: filter.vm ?? null,
      host: filter.host ?? null,
    });
    return { count: r?.n ?? 0, lastAt: r?.lastAt ?? null };
  }

  /** When the VM last left the host (finishedAt of its latest succeeded migration from it), or undefined. */
  vmLeftHostAt(vm: VmId, host: HostId): number | undefined {
    return this.#s.vmLeftHostAt.get(vm, host)?.at ?? undefined;
  }

  // ------------------------------------------------------------------------------------------ samples

  /** One sample per host at `at`, in one transaction (a repeated (at, host) replaces the earlier row). */
  recordSamples(at: number, rows: readonly HostSampleInput[]): void {
    this.#insertSamples(time(at, "at"), rows);
  }

  /** Deletes host and imbalance samples taken before the time; returns the rows deleted from both. */
  pruneSamples(olderThanMs: number): number {
    const t = time(olderThanMs, "olderThanMs");
    return this.transaction(() => this.#s.pruneSamples.run(t).changes + this.#s.pruneImbalance.run(t).changes);
  }

  /** CPU load per host since sinceMs, oldest first (the hotspot policy's sustain window after a restart). */
  hostLoadHistory(sinceMs: number): Map<HostId, HostLoadPoint[]> {
    const out = new Map<HostId, HostLoadPoint[]>();
    for (const [atMs, host, cpuLoad] of this.#s.hostLoad.all(time(sinceMs, "sinceMs"))) {
      const point = { atMs, cpuLoad };
      const list = out.get(host);
      if (list) list.push(point);
      else out.set(host, [point]);
    }
    return out;
  }

  /** Every field of one host's samples since sinceMs, oldest first. */
  hostSamples(host: HostId, sinceMs: number): HostSampleRow[] {
    return this.#s.hostSamples
      .all(time(sinceMs, "sinceMs"), host)
      .map((r) => ({ ...r, maintenance: r.maintenance === 1 }));
  }

  recordImbalance(at: number, rows: readonly ImbalanceInput[]): void {
    const t = time(at, "at");
    this.transaction(() => {
      for (const r of rows) this.#s.insertImbalance.run(t, r.cell, r.cpu, r.memory);
    });
  }

  /** Per-cell imbalance since sinceMs, oldest first. */
  imbalanceHistory(sinceMs: number): Map<CellId, ImbalancePoint[]> {
    const out = new Map<CellId, ImbalancePoint[]>();
    for (const [atMs, cell, cpu, memory] of this.#s.imbalance.all(time(sinceMs, "sinceMs"))) {
      const point = { atMs, cpu, memory };
      const list = out.get(cell);
      if (list) list.push(point);
      else out.set(cell, [point]);
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------- events

  recordEvent(e: EventInput): number {
    const r = this.#s.insertEvent.run({
      at: time(e.at, "at"),
      kind: e.kind,
      host: e.host ?? null,
      message: e.message,
      data: json(e.data),
    });
    return Number(r.lastInsertRowid);
  }

  /** Newest first; optionally of one kind. */
  recentEvents(limit: number, filter: { kind?: string } = {}): EventRow[] {
    return this.#s.recentEvents
      .all({ limit: count(limit), kind: filter.kind ?? null })
      .map((r) => ({ ...r, data: parseJson(r.data) }));
  }

  // -------------------------------------------------------------------------------------------- admin

  /** The connection's effective settings (for `ballast preflight` and tests). */
  settings(): { journalMode: string; synchronous: "off" | "normal" | "full" | "extra"; foreignKeys: boolean; busyTimeoutMs: number } {
    const p = (name: string): unknown => this.#db.pragma(name, { simple: true });
    const sync = (["off", "normal", "full", "extra"] as const)[Number(p("synchronous"))] ?? "full";
    return {
      journalMode: String(p("journal_mode")),
      synchronous: sync,
      foreignKeys: Number(p("foreign_keys")) === 1,
      busyTimeoutMs: Number(p("busy_timeout")),
    };
  }

  stats(): StoreStats {
    const n = (table: string): number => Number(this.#db.prepare(`SELECT count(*) FROM ${table}`).pluck().get());
    const pragma = (p: string): number => Number(this.#db.pragma(p, { simple: true }));
    const memory = this.path === IN_MEMORY;
    return this.#db.transaction(() => ({
      schemaVersion: this.schemaVersion,
      rows: {
        rounds: n("rounds"),
        decisions: n("decisions"),
        migrations: n("migrations"),
        migrationEvents: n("migration_events"),
        hostSamples: n("host_samples"),
        imbalanceSamples: n("imbalance_samples"),
        events: n("events"),
      },
      fileBytes: memory ? 0 : fileSize(this.path),
      walBytes: memory ? 0 : fileSize(`${this.path}-wal`),
      pageSize: pragma("page_size"),
      pageCount: pragma("page_count"),
      freePages: pragma("freelist_count"),
    }))();
  }

  /** Checkpoints the WAL into the main file (writer only) and closes. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (!this.#db.readonly && this.#db.open) {
        this.#db.pragma("optimize");
        this.#db.pragma("wal_checkpoint(TRUNCATE)");
      }
    } finally {
      this.#db.close();
    }
  }
}

// ------------------------------------------------------------------------------------------ statements

function prepare(db: SqliteDatabase) {
  return {
    insertRound: db.prepare<{ startedAt: number; trigger: string }>(
      "INSERT INTO rounds (started_at, trigger) VALUES (@startedAt, @trigger)",
    ),
    finishRound: db.prepare<{
      id: number;
      finishedAt: number;
      outcome: RoundOutcome;
      planned: number;
      blocked: number;
      migrated: number | null;
      summary: string | null;
      error: string | null;
    }>(
      `UPDATE rounds SET finished_at = @finishedAt, outcome = @outcome, planned = @planned, blocked = @blocked,
         migrated = @migrated, summary = @summary, error = @error
       WHERE id = @id AND finished_at IS NULL`,
    ),
    round: db.prepare<[number], RoundRow>(`SELECT ${ROUND_COLUMNS} FROM rounds WHERE id = ?`),
    recentRounds: db.prepare<[number], RoundRow>(`SELECT ${ROUND_COLUMNS} FROM rounds ORDER BY id DESC LIMIT ?`),

    insertDecision: db.prepare<{
      roundId: number;
      at: number;
      outcome: DecisionOutcome;
      policy: string;
      vm: string;
      from: string | null;
      to: string | null;
      kind: string | null;
      code: string | null;
      reason: string;
      details: string | null;
    }>(
      `INSERT INTO decisions (round_id, at, outcome, policy, vm, from_host, to_host, kind, code, reason, details)
       VALUES (@roundId, @at, @outcome, @policy, @vm, @from, @to, @kind, @code, @reason, @details)`,
    ),
    decisionsForRound: db.prepare<[number], RawDecision>(
      `SELECT ${DECISION_COLUMNS} FROM decisions WHERE round_id = ? ORDER BY id`,
    ),
    recentDecisions: db.prepare<{ limit: number; vm: string | null; outcome: string | null }, RawDecision>(
      `SELECT ${DECISION_COLUMNS} FROM decisions
       WHERE (@vm IS NULL OR vm = @vm) AND (@outcome IS NULL OR outcome = @outcome)
       ORDER BY id DESC LIMIT @limit`,
    ),
    pruneDecisions: db.prepare<[number]>("DELETE FROM decisions WHERE at < ?"),
    // Decisions go by ON DELETE CASCADE, migrations' round_id by ON DELETE SET NULL (foreign keys are on).
    pruneRounds: db.prepare<[number]>("DELETE FROM rounds WHERE started_at < ?"),

    insertIntent: db.prepare<{
      roundId: number | null;
      vm: string;
      from: string;
      to: string;
      kind: string;
      policy: string;
      reason: string;
      flags: string;
      startedAt: number;
      predictedMs: number | null;
      details: string | null;
    }>(
      `INSERT INTO migrations (round_id, vm, from_host, to_host, kind, policy, reason, flags, status, started_at,
         predicted_ms, details)
       VALUES (@roundId, @vm, @from, @to, @kind, @policy, @reason, @flags, 'intent', @startedAt, @predictedMs,
         @details)`,
    ),
    markRunning: db.prepare<{ id: number; at: number }>(
      "UPDATE migrations SET status = 'running', running_at = @at WHERE id = @id AND status = 'intent'",
    ),
    finishMigration: db.prepare<{
      id: number;
      status: string;
      finishedAt: number;
      downtimeMs: number | null;
      dataMiB: number | null;
      passes: number | null;
      error: string | null;
      actualMs: number | null;
    }>(
      `UPDATE migrations SET status = @status, finished_at = @finishedAt, downtime_ms = @downtimeMs,
         data_mib = @dataMiB, passes = @passes, error = @error, actual_ms = @actualMs
       WHERE id = @id AND status IN ${OPEN_STATUSES_SQL}`,
    ),
    insertMigrationEvent: db.prepare<{ id: number; at: number; kind: string; data: string }>(
      "INSERT INTO migration_events (migration_id, at, kind, data) VALUES (@id, @at, @kind, @data)",
    ),
    migration: db.prepare<[number], RawMigration>(`SELECT ${MIGRATION_COLUMNS} FROM migrations WHERE id = ?`),
    openIntents: db.prepare<[], RawMigration>(
      `SELECT ${MIGRATION_COLUMNS} FROM migrations WHERE status IN ${OPEN_STATUSES_SQL} ORDER BY id`,
    ),
    openIntentOfVm: db.prepare<[string], { id: number; status: MigrationStatus }>(
      `SELECT id, status FROM migrations WHERE vm = ? AND status IN ${OPEN_STATUSES_SQL}`,
    ),
    migrationsForVm: db.prepare<[string, number], RawMigration>(
      `SELECT ${MIGRATION_COLUMNS} FROM migrations WHERE vm = ? ORDER BY id DESC LIMIT ?`,
    ),
    recentMigrations: db.prepare<[number], RawMigration>(
      `SELECT ${MIGRATION_COLUMNS} FROM migrations ORDER BY id DESC LIMIT ?`,
    ),
    migrationEvents: db.prepare<[number], RawMigrationEvent>(
      `SELECT id, migration_id AS migrationId, at, kind, data FROM migration_events WHERE migration_id = ? ORDER BY id`,
    ),
    lastMigrationOfVm: db.prepare<[string], RawMigration>(
      `SELECT ${MIGRATION_COLUMNS} FROM migrations WHERE vm = ? ORDER BY id DESC LIMIT 1`,
    ),
    migrationsSinceTotal: db
      .prepare<[number], number>("SELECT count(*) FROM migrations WHERE started_at >= ?")
      .pluck(),
    migrationsSinceByHost: db.prepare<{ since: number }, { host: HostId; n: number }>(
      `SELECT host, count(*) AS n FROM (
         SELECT from_host AS host FROM migrations WHERE started_at >= @since
         UNION ALL
         SELECT to_host AS host FROM migrations WHERE started_at >= @since
       ) GROUP BY host`,
    ),
    failuresSince: db.prepare<
      { since: number; vm: string | null; host: string | null },
      { n: number; lastAt: number | null }
    >(
      `SELECT count(*) AS n, max(finished_at) AS lastAt FROM migrations
       WHERE status IN ('failed', 'aborted') AND finished_at >= @since
         AND (@vm IS NULL OR vm = @vm)
         AND (@host IS NULL OR from_host = @host OR to_host = @host)`,
    ),
    vmLeftHostAt: db.prepare<[string, string], { at: number | null }>(
      `SELECT max(finished_at) AS at FROM migrations WHERE vm = ? AND from_host = ? AND status = 'succeeded'`,
    ),

    insertSample: db.prepare<[number, string, string, number, number, number, number]>(
      `INSERT OR REPLACE INTO host_samples (at, host, cell, cpu_load, memory_used_mib, memory_mib, maintenance)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    pruneSamples: db.prepare<[number]>("DELETE FROM host_samples WHERE at < ?"),
    hostLoad: db
      .prepare<[number], [number, HostId, number]>("SELECT at, host, cpu_load FROM host_samples WHERE at >= ? ORDER BY at")
      .raw(),
    hostSamples: db.prepare<
      [number, string],
      Omit<HostSampleRow, "maintenance"> & { maintenance: number }
    >(
      `SELECT at AS atMs, host, cell, cpu_load AS cpuLoad, memory_used_mib AS memoryUsedMiB,
         memory_mib AS memoryMiB, maintenance
       FROM host_samples WHERE at >= ? AND host = ? ORDER BY at`,
    ),
    insertImbalance: db.prepare<[number, string, number, number]>(
      "INSERT OR REPLACE INTO imbalance_samples (at, cell, cpu, memory) VALUES (?, ?, ?, ?)",
    ),
    pruneImbalance: db.prepare<[number]>("DELETE FROM imbalance_samples WHERE at < ?"),
    imbalance: db
      .prepare<[number], [number, CellId, number, number]>(
        "SELECT at, cell, cpu, memory FROM imbalance_samples WHERE at >= ? ORDER BY at",
      )
      .raw(),

    insertEvent: db.prepare<{ at: number; kind: string; host: string | null; message: string; data: string | null }>(
      "INSERT INTO events (at, kind, host, message, data) VALUES (@at, @kind, @host, @message, @data)",
    ),
    recentEvents: db.prepare<{ limit: number; kind: string | null }, RawEvent>(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE (@kind IS NULL OR kind = @kind) ORDER BY id DESC LIMIT @limit`,
    ),
  };
}

// --------------------------------------------------------------------------------------------- helpers

function migrationRow(r: RawMigration): MigrationRow {
  const flags = parseJson(r.flags);
  return {
    ...r,
    flags: Array.isArray(flags) ? flags.filter((f): f is string => typeof f === "string") : [],
    details: parseJson(r.details),
  };
}

function decisionRow(r: RawDecision): DecisionRow {
  return { ...r, details: parseJson(r.details) };
}

function json(value: unknown): string | null {
  if (value === undefined) return null;
  const s = JSON.stringify(value);
  return s === undefined ? null : s;
}

function parseJson(text: string | null): JsonValue | null {
  return text === null ? null : (JSON.parse(text) as JsonValue);
}

function time(ms: number, name: string): number {
  if (!Number.isFinite(ms)) throw new StoreError(`${name} must be a finite time in ms, got ${String(ms)}`, "invalid-argument");
  return Math.round(ms);
}

function count(limit: number): number {
  if (!Number.isFinite(limit) || limit < 0) throw new StoreError(`limit must be ≥ 0, got ${String(limit)}`, "invalid-argument");
  return Math.floor(limit);
}

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): asserts value is T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new StoreError(`invalid ${what} ${JSON.stringify(value)} (expected ${allowed.join(", ")})`, "invalid-argument");
  }
}

function sqliteCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined;
}
