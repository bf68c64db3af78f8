// The SQLite ledger's schema as versioned migrations, and migrate(db): applies the missing ones in order, each with
// its schema_migrations row, all in one BEGIN IMMEDIATE transaction (two processes opening a fresh file at once
// cannot both migrate). It is idempotent, and it refuses a file migrated by newer code (LEDGER_SCHEMA_TOO_NEW) or by
// other code (LEDGER_SCHEMA_MISMATCH) before touching it. Never edit a released migration: add the next one.
//
// Append-only (invariant 3) is enforced by the database itself, not only by the code: triggers RAISE on any UPDATE
// or DELETE of an account, posting, line or audit row, whoever issues it. STRICT tables refuse a REAL where an
// INTEGER belongs, so a float cannot reach amount_fen even through raw SQL (invariant 1).

import type Database from "better-sqlite3";
import type { VersionedMigration } from "../../schema-migrations.js";
import { applyMigrations } from "../../sqlite.js";
import { ACCOUNT_KINDS, POSTING_KINDS } from "./ledger.js";
import { refuseLedgerSchema } from "./store-errors.js";

export type Migration = VersionedMigration;

const list = (values: readonly string[]): string => values.map((v) => `'${v}'`).join(", ");

function appendOnly(table: string): string {
  return ["UPDATE", "DELETE"]
    .map(
      (op) => `CREATE TRIGGER ${table}_no_${op.toLowerCase()} BEFORE ${op} ON ${table}
BEGIN SELECT RAISE(ABORT, 'LEDGER_APPEND_ONLY: ${table} is append-only; post a correction instead'); END;`,
    )
    .join("\n");
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "accounts-postings-lines-audit",
    sql: `
CREATE TABLE ledger_accounts (
  account_id    TEXT    PRIMARY KEY,
  kind          TEXT    NOT NULL CHECK (kind IN (${list(ACCOUNT_KINDS)})),
  village_id    TEXT    NOT NULL,
  household_id  TEXT,
  created_at_ms INTEGER NOT NULL
) STRICT;

-- AUTOINCREMENT: a posting id is never reused, even for the highest row.
CREATE TABLE ledger_postings (
  posting_id      INTEGER PRIMARY KEY AUTOINCREMENT,
  idempotency_key TEXT    NOT NULL UNIQUE,
  kind            TEXT    NOT NULL CHECK (kind IN (${list(POSTING_KINDS)})),
  memo            TEXT    NOT NULL,
  actor           TEXT    NOT NULL,
  at_ms           INTEGER NOT NULL CHECK (at_ms >= 0)
) STRICT;

-- at_ms is the posting's, copied so that a statement is one range scan of (account_id, at_ms, posting_id).
CREATE TABLE ledger_lines (
  posting_id INTEGER NOT NULL REFERENCES ledger_postings (posting_id),
  line_no    INTEGER NOT NULL,
  account_id TEXT    NOT NULL REFERENCES ledger_accounts (account_id),
  amount_fen INTEGER NOT NULL CHECK (amount_fen <> 0),
  at_ms      INTEGER NOT NULL,
  PRIMARY KEY (posting_id, line_no)
) STRICT;
CREATE INDEX ledger_lines_by_account ON ledger_lines (account_id, at_ms, posting_id);

-- Who, what, why and when, for every posting, written in the posting's transaction.
CREATE TABLE ledger_audit (
  posting_id     INTEGER PRIMARY KEY REFERENCES ledger_postings (posting_id),
  actor          TEXT    NOT NULL,
  kind           TEXT    NOT NULL,
  memo           TEXT    NOT NULL,
  at_ms          INTEGER NOT NULL,
  recorded_at_ms INTEGER NOT NULL
) STRICT;

${appendOnly("ledger_accounts")}
${appendOnly("ledger_postings")}
${appendOnly("ledger_lines")}
${appendOnly("ledger_audit")}
`,
  },
  {
    version: 2,
    name: "meter-charge-state",
    sql: `
-- The charge core's per-meter state (charges.ts MeterChargeState as JSON). It is state, not money: it is replaced at
-- every applyCharges, in the same transaction as that step's charge postings. revision is the optimistic lock.
CREATE TABLE ledger_meter_charge_state (
  meter_id      TEXT    PRIMARY KEY,
  revision      INTEGER NOT NULL CHECK (revision >= 1),
  state_json    TEXT    NOT NULL,
  updated_at_ms INTEGER NOT NULL
) STRICT;
`,
  },
  {
    version: 3,
    name: "meter-days",
    // subsidy/meter-days.ts METER_DAYS_SCHEMA_SQL as it stood when this migration was released, copied rather than
    // imported so that a later edit there cannot change a released migration (sqlite-ledger.test.ts compares the two).
    sql: `
-- Each meter's daily usage (subsidy/meter-days.ts), added to in the transaction of the charges it counts. Not money:
-- a row is a running sum, updated in place, and always equals what the applied steps of that day charged.
CREATE TABLE ledger_meter_days (
  meter_id          TEXT    NOT NULL,
  day               TEXT    NOT NULL CHECK (length(day) = 10),
  energy_wh         INTEGER NOT NULL CHECK (energy_wh >= 0),
  charged_fen       INTEGER NOT NULL CHECK (charged_fen >= 0),
  night_wh          INTEGER NOT NULL CHECK (night_wh >= 0 AND night_wh <= energy_wh),
  readings          INTEGER NOT NULL CHECK (readings >= 0),
  first_at_ms       INTEGER NOT NULL,
  last_at_ms        INTEGER NOT NULL,
  first_register_wh INTEGER NOT NULL,
  last_register_wh  INTEGER NOT NULL,
  PRIMARY KEY (meter_id, day)
) STRICT, WITHOUT ROWID;
`,
  },
];

export const LATEST_SCHEMA_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

export interface MigrateResult {
  readonly fromVersion: number;
  readonly toVersion: number;
}

/** Brings the file to LATEST_SCHEMA_VERSION; a no-op when it is there already. */
export function migrate(db: Database.Database, nowMs: number, migrations: readonly Migration[] = MIGRATIONS): MigrateResult {
  return applyMigrations(db, { table: "schema_migrations", migrations, nowMs, refuse: refuseLedgerSchema });
}
