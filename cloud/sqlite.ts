// Opening the cloud's SQLite files the one way money needs: WAL (readers never block the writer), synchronous FULL
// (a committed posting survives power loss), foreign keys on, a busy timeout for concurrent processes, and the
// file's migrations applied before anything else touches it — closed again if any of that fails. Several stores share
// one file, each with its own migrations table; applyMigrations is how every one of them brings its tables up to date.

import Database from "better-sqlite3";
import { planMigrations, type AppliedMigration, type MigrationProblem, type VersionedMigration } from "./schema-migrations.js";

export function openDurableDatabase(path: string, busyTimeoutMs: number, migrate: (db: Database.Database) => void): Database.Database {
  const db = new Database(path, { timeout: busyTimeoutMs });
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    migrate(db);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/** True when `error` is SQLite refusing a row whose primary key or UNIQUE column is already taken — the one failure
 * the stores turn into their typed "already exists" error; every other failure stays a bug and is rethrown. */
export function isUniqueViolation(error: unknown): boolean {
  return error instanceof Error && "code" in error && (error.code === "SQLITE_CONSTRAINT_PRIMARYKEY" || error.code === "SQLITE_CONSTRAINT_UNIQUE");
}

export interface ApplyMigrationsOptions {
  /** The store's own migrations table (version, name, applied_at_ms), created here when missing. */
  readonly table: string;
  readonly migrations: readonly VersionedMigration[];
  readonly nowMs: number;
  /** The store's typed error for a database it must not touch. */
  readonly refuse: (problem: MigrationProblem) => Error;
}

/** Applies the migrations `table` lacks, each with its row, in one BEGIN IMMEDIATE transaction: two processes opening
 * a fresh file at once cannot both migrate, and a refused file is left as it was. A no-op when it is up to date. */
export function applyMigrations(db: Database.Database, options: ApplyMigrationsOptions): { fromVersion: number; toVersion: number } {
  const { table, migrations, nowMs, refuse } = options;
  const run = db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS ${table} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL) STRICT`);
    const applied = db.prepare(`SELECT version, name FROM ${table} ORDER BY version`).all() as AppliedMigration[];
    const plan = planMigrations(applied, migrations);
    if (!plan.ok) throw refuse(plan.problem);
    const insert = db.prepare(`INSERT INTO ${table} (version, name, applied_at_ms) VALUES (?, ?, ?)`);
    for (const m of plan.pending) {
      db.exec(m.sql);
      insert.run(m.version, m.name, nowMs);
    }
    return { fromVersion: plan.fromVersion, toVersion: plan.toVersion };
  });
  return run.immediate();
}
