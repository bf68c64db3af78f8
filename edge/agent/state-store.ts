// The gateway's durable state apart from the outbox: each meter's prepaid-guard state (grants, relay, warnings),
// its billing-chain counter and energy baseline. A small SQLite file in WAL mode with synchronous=FULL, so a grant
// acknowledged to the cloud or a relay decision survives a power cut on the SD card.

import Database from "better-sqlite3";
import { AgriError } from "../../protocols/errors.js";

export class StateStoreError extends AgriError {
  constructor(message: string) {
    super("EDGE_STATE_CORRUPT", false, message);
  }
}

export class StateStore {
  private readonly db: Database.Database;
  private readonly getStmt: Database.Statement<[string], { json: string }>;
  private readonly putStmt: Database.Statement<[string, string]>;
  private readonly bumpStmt: Database.Statement<[string], { value: number }>;

  constructor(path: string) {
    try {
      this.db = new Database(path);
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = FULL");
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, json TEXT NOT NULL) STRICT;
        CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
      `);
    } catch (err) {
      throw new StateStoreError(`cannot open state store ${path}: ${(err as Error).message}`);
    }
    this.getStmt = this.db.prepare("SELECT json FROM kv WHERE key = ?");
    this.putStmt = this.db.prepare("INSERT INTO kv (key, json) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET json = excluded.json");
    this.bumpStmt = this.db.prepare("INSERT INTO counters (key, value) VALUES (?, 1) ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value");
  }

  get<T>(key: string): T | undefined {
    const row = this.getStmt.get(key);
    return row ? (JSON.parse(row.json) as T) : undefined;
  }

  put(key: string, value: unknown): void {
    this.putStmt.run(key, JSON.stringify(value));
  }

  /** Next value of a counter that never repeats, even across crashes (committed before it is returned). */
  next(key: string): number {
    const row = this.bumpStmt.get(key);
    if (!row) throw new StateStoreError(`counter ${key} did not advance`);
    return row.value;
  }

  close(): void {
    this.db.close();
  }
}
