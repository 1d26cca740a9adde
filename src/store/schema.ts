/**
 * The ordered list of schema migrations. The database's `PRAGMA user_version` is the number of the last one
 * applied. Append only: never edit or reorder a migration that has shipped — add a new one.
 */
export interface SchemaMigration {
  /** 1, 2, 3, … with no gaps. */
  readonly version: number;
  readonly name: string;
  /** SQL run inside the migration transaction. */
  readonly sql: string;
}

/** Marks the file as a ballast history database ("BLST"); anything else is refused. */
export const APPLICATION_ID = 0x424c5354;

export const MIGRATIONS: readonly SchemaMigration[] = [
  {
    version: 1,
    name: "initial",
    sql: `
      CREATE TABLE rounds (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at  INTEGER NOT NULL,
        trigger     TEXT    NOT NULL,
        finished_at INTEGER,
        outcome     TEXT CHECK (outcome IN ('ok', 'error', 'skipped')),
        planned     INTEGER,
        blocked     INTEGER,
        migrated    INTEGER,
        summary     TEXT,
        error       TEXT,
        CHECK ((finished_at IS NULL) = (outcome IS NULL))
      );
      CREATE INDEX rounds_started_at ON rounds (started_at);

      CREATE TABLE decisions (
        id        INTEGER PRIMARY KEY,
        round_id  INTEGER NOT NULL REFERENCES rounds (id) ON DELETE CASCADE,
        at        INTEGER NOT NULL,
        outcome   TEXT    NOT NULL CHECK (outcome IN ('moved', 'blocked', 'refused')),
        policy    TEXT    NOT NULL,
        vm        TEXT    NOT NULL,
        from_host TEXT,
        to_host   TEXT,
        kind      TEXT,
        code      TEXT,
        reason    TEXT    NOT NULL,
        details   TEXT CHECK (details IS NULL OR json_valid(details))
      );
      CREATE INDEX decisions_round ON decisions (round_id);
      CREATE INDEX decisions_vm ON decisions (vm, id);
      CREATE INDEX decisions_at ON decisions (at);

      CREATE TABLE migrations (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        round_id     INTEGER REFERENCES rounds (id) ON DELETE SET NULL,
        vm           TEXT    NOT NULL,
        from_host    TEXT    NOT NULL,
        to_host      TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        policy       TEXT    NOT NULL,
        reason       TEXT    NOT NULL,
        flags        TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(flags)),
        status       TEXT    NOT NULL
                     CHECK (status IN ('intent', 'running', 'succeeded', 'failed', 'aborted', 'interrupted')),
        started_at   INTEGER NOT NULL,
        running_at   INTEGER,
        finished_at  INTEGER,
        predicted_ms INTEGER,
        actual_ms    INTEGER,
        downtime_ms  REAL,
        data_mib     REAL,
        passes       INTEGER,
        error        TEXT,
        details      TEXT CHECK (details IS NULL OR json_valid(details)),
        CHECK ((status IN ('intent', 'running')) = (finished_at IS NULL)),
        CHECK (status <> 'running' OR running_at IS NOT NULL)
      );
      -- At most one unfinished migration per VM: a second one cannot start before the first is reconciled.
      CREATE UNIQUE INDEX migrations_open_vm ON migrations (vm) WHERE status IN ('intent', 'running');
      CREATE INDEX migrations_vm ON migrations (vm, id);
      CREATE INDEX migrations_started_at ON migrations (started_at);
      CREATE INDEX migrations_finished_at ON migrations (finished_at);
      CREATE INDEX migrations_from_host ON migrations (from_host, started_at);
      CREATE INDEX migrations_to_host ON migrations (to_host, started_at);

      CREATE TABLE migration_events (
        id           INTEGER PRIMARY KEY,
        migration_id INTEGER NOT NULL REFERENCES migrations (id) ON DELETE CASCADE,
        at           INTEGER NOT NULL,
        kind         TEXT    NOT NULL CHECK (kind IN ('stats', 'guard', 'note')),
        data         TEXT    NOT NULL CHECK (json_valid(data))
      );
      CREATE INDEX migration_events_migration ON migration_events (migration_id, id);

      CREATE TABLE host_samples (
        at              INTEGER NOT NULL,
        host            TEXT    NOT NULL,
        cell            TEXT    NOT NULL,
        cpu_load        REAL    NOT NULL,
        memory_used_mib REAL    NOT NULL,
        memory_mib      REAL    NOT NULL,
        maintenance     INTEGER NOT NULL CHECK (maintenance IN (0, 1)),
        PRIMARY KEY (at, host)
      ) WITHOUT ROWID;

      CREATE TABLE imbalance_samples (
        at     INTEGER NOT NULL,
        cell   TEXT    NOT NULL,
        cpu    REAL    NOT NULL,
        memory REAL    NOT NULL,
        PRIMARY KEY (at, cell)
      ) WITHOUT ROWID;

      CREATE TABLE events (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        kind    TEXT    NOT NULL,
        host    TEXT,
        message TEXT    NOT NULL,
        data    TEXT CHECK (data IS NULL OR json_valid(data))
      );
      CREATE INDEX events_at ON events (at);
    `,
  },
];

/** The schema version this code writes and expects. */
export const SCHEMA_VERSION: number = MIGRATIONS.at(-1)?.version ?? 0;
