export { openHistory, HistoryStore } from "./history.js";
export { openDatabase, applyMigrations, IN_MEMORY, type OpenOptions, type OpenedDatabase } from "./db.js";
export { MIGRATIONS, SCHEMA_VERSION, APPLICATION_ID, type SchemaMigration } from "./schema.js";
export * from "./types.js";
