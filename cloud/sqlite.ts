// Opening the cloud's SQLite files the one way money needs: WAL (readers never block the writer), synchronous FULL
// (a committed posting survives power loss), foreign keys on, a busy timeout for concurrent processes, and the
// file's migrations applied before anything else touches it — closed again if any of that fails.

import Database from "better-sqlite3";

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
