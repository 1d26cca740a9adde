import { closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { APPLICATION_ID, MIGRATIONS, type SchemaMigration } from "./schema.js";
import { StoreError } from "./types.js";

export type SqliteDatabase = Database.Database;

/** Pass as the path for a throw-away in-memory store (tests, `ballast plan`). */
export const IN_MEMORY = ":memory:";

export interface OpenOptions {
  /**
   * Read-only connection (CLI `history` while the daemon runs): never creates, migrates or checkpoints,
   * and refuses a schema older or newer than this code's.
   */
  readonly readonly?: boolean;
  /** How long a statement waits for another connection's lock. Default 5000. */
  readonly busyTimeoutMs?: number;
  /** Schema migrations to apply; defaults to the shipped list (tests substitute their own). */
  readonly migrations?: readonly SchemaMigration[];
}

export interface OpenedDatabase {
  readonly db: SqliteDatabase;
  /** Schema version found on open (0 for a new file). */
  readonly fromVersion: number;
  /** Schema version after migrating. */
  readonly version: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating if needed) a history database: directory 0700 and file 0600 when created, WAL journal,
 * synchronous=NORMAL, foreign keys on, busy timeout; then brings the schema up to date in one transaction.
 */
export function openDatabase(path: string, opts: OpenOptions = {}): OpenedDatabase {
  const migrations = opts.migrations ?? MIGRATIONS;
  const busyTimeoutMs = opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  const memory = path === IN_MEMORY;
  if (opts.readonly && memory) throw new StoreError("an in-memory history store cannot be opened read-only", "invalid-argument");

  if (!memory && opts.readonly && !existsSync(path)) {
    throw new StoreError(`history database ${path} does not exist (the daemon creates it when it first starts)`, "open-failed");
  }
  if (!memory && !opts.readonly) prepareFile(path);

  let db: SqliteDatabase;
  try {
    db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: !memory, timeout: busyTimeoutMs });
  } catch (e) {
    throw new StoreError(`cannot open history database ${path}: ${message(e)}`, "open-failed", { cause: e });
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    if (opts.readonly) {
      const version = checkVersion(db, path, migrations, true);
      return { db, fromVersion: version, version };
    }
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (!memory && mode !== "wal") {
      throw new StoreError(`history database ${path}: could not switch to WAL journal (got ${String(mode)})`, "open-failed");
    }
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    const { from, to } = applyMigrations(db, path, migrations);
    return { db, fromVersion: from, version: to };
  } catch (e) {
    db.close();
    if (e instanceof StoreError) throw e;
    throw new StoreError(`cannot open history database ${path}: ${message(e)}`, "open-failed", { cause: e });
  }
}

/** Creates the directory (0700) and an empty file (0600) when missing, so SQLite never creates it with the umask. */
function prepareFile(path: string): void {
  const dir = dirname(resolve(path));
  try {
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      closeSync(openSync(path, "wx", 0o600));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  } catch (e) {
    throw new StoreError(`cannot create history database ${path}: ${message(e)}`, "open-failed", { cause: e });
  }
}

/**
 * Applies every migration newer than the database's `user_version`, all in one IMMEDIATE transaction (a
 * second process opening at the same moment waits, then finds nothing left to do). A failure rolls back all.
 */
export function applyMigrations(
  db: SqliteDatabase,
  path: string,
  migrations: readonly SchemaMigration[] = MIGRATIONS,
): { from: number; to: number } {
  validateMigrations(migrations);
  const run = db.transaction(() => {
    const from = checkVersion(db, path, migrations, false);
    let to = from;
    for (const m of migrations) {
      if (m.version <= from) continue;
      try {
        db.exec(m.sql);
      } catch (e) {
        throw new StoreError(
          `history database ${path}: schema migration ${m.version} (${m.name}) failed: ${message(e)}`,
          "open-failed",
          { cause: e },
        );
      }
      to = m.version;
    }
    if (to !== from) {
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${to}`);
    }
    return { from, to };
  });
  return run.immediate();
}

function validateMigrations(migrations: readonly SchemaMigration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new StoreError(`schema migrations must be numbered 1, 2, 3, … (entry ${i} is ${m.version})`, "invalid-argument");
    }
  });
}

/** The database's schema version, after refusing a foreign, newer (or, for a reader, different) schema. */
function checkVersion(db: SqliteDatabase, path: string, migrations: readonly SchemaMigration[], reader: boolean): number {
  const known = migrations.at(-1)?.version ?? 0;
  const appId = Number(db.pragma("application_id", { simple: true }));
  const version = Number(db.pragma("user_version", { simple: true }));
  if (appId !== APPLICATION_ID) {
    const tables = Number(db.prepare("SELECT count(*) FROM sqlite_schema").pluck().get());
    if (appId !== 0 || version !== 0 || tables !== 0) {
      throw new StoreError(`${path} is not a ballast history database`, "not-ballast");
    }
  }
  if (version > known) {
    throw new StoreError(
      `history database ${path} has schema version ${version}, newer than this ballast knows (${known}); ` +
        `it was written by a newer ballast — upgrade ballast, or move the file aside`,
      "schema-too-new",
    );
  }
  if (reader && version < known) {
    throw new StoreError(
      `history database ${path} has schema version ${version}, older than this ballast expects (${known}); ` +
        `start the daemon once to upgrade it`,
      "schema-too-old",
    );
  }
  return version;
}

/** Size of a file in bytes, 0 when absent. */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
