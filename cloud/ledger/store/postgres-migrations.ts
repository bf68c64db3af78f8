// The PostgreSQL ledger's schema as versioned migrations, and migratePostgres(client): the same rules as the SQLite
// migrations (migrations.ts) — applied in order, each with its row in ledger_schema_migrations, all in ONE transaction,
// idempotent, refusing a database migrated by newer code (LEDGER_SCHEMA_TOO_NEW) or by other code
// (LEDGER_SCHEMA_MISMATCH) before touching it. Never edit a released migration: add the next one.
//
// Two processes migrating at once: the runner (cloud/postgres.ts applyPostgresMigrations) first takes this store's
// transaction-scoped advisory lock, so the second waits, then sees the first's rows and has nothing to do.
//
// Invariants held by the database itself: amounts are BIGINT (no float column can hold fen), CHECKs on kinds and
// non-zero amounts, foreign keys from lines and audit rows to postings, and statement-level triggers that RAISE on any
// UPDATE, DELETE or TRUNCATE of accounts, postings, lines and audit rows (append-only, invariant 3).

import type pg from "pg";
import { applyPostgresMigrations } from "../../postgres.js";
import { ACCOUNT_KINDS, POSTING_KINDS } from "./ledger.js";
import type { Migration, MigrateResult } from "./migrations.js";
import { refuseLedgerSchema } from "./store-errors.js";

const list = (values: readonly string[]): string => values.map((v) => `'${v}'`).join(", ");

/** Any constant works; this one spells "agri" "ledg" in ASCII so it is recognisable in pg_locks. */
export const MIGRATION_LOCK_KEY = 0x61677269_6c656467n;

function appendOnly(table: string): string {
  return `CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ${table}
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_edit();`;
}

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "accounts-postings-lines-audit",
    sql: `
CREATE FUNCTION ledger_refuse_edit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'LEDGER_APPEND_ONLY: % is append-only; post a correction instead', TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation';
END $$;

CREATE TABLE ledger_accounts (
  account_id    TEXT   PRIMARY KEY,
  kind          TEXT   NOT NULL CHECK (kind IN (${list(ACCOUNT_KINDS)})),
  village_id    TEXT   NOT NULL,
  household_id  TEXT,
  created_at_ms BIGINT NOT NULL
);

-- An identity never hands out the same value twice, even after a rollback.
CREATE TABLE ledger_postings (
  posting_id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  idempotency_key TEXT   NOT NULL UNIQUE,
  kind            TEXT   NOT NULL CHECK (kind IN (${list(POSTING_KINDS)})),
  memo            TEXT   NOT NULL,
  actor           TEXT   NOT NULL,
  at_ms           BIGINT NOT NULL CHECK (at_ms >= 0)
);

-- No foreign key from account_id to ledger_accounts, on purpose. A foreign-key check takes FOR KEY SHARE on the
-- referenced row, and every charge in the county names the same few revenue accounts: each transaction (and, in a
-- batch, each item's savepoint) adds itself to a MultiXact on that one row, which grows with every locker — measured
-- ≈40 % of a 500-reading batch's time. Accounts cannot be deleted (the trigger below), and ledger_post_entry refuses
-- a line to an account that does not exist before inserting it, so the key only guarded raw-SQL inserts (which could
-- as well write unbalanced lines: raw SQL is outside the port's guarantees either way).
CREATE TABLE ledger_lines (
  posting_id BIGINT  NOT NULL REFERENCES ledger_postings (posting_id),
  line_no    INTEGER NOT NULL,
  account_id TEXT    NOT NULL,
  amount_fen BIGINT  NOT NULL CHECK (amount_fen <> 0),
  at_ms      BIGINT  NOT NULL,
  PRIMARY KEY (posting_id, line_no)
);
-- INCLUDE: a balance or a statement is an index-only range scan of (account_id, at_ms, posting_id).
CREATE INDEX ledger_lines_by_account ON ledger_lines (account_id, at_ms, posting_id) INCLUDE (amount_fen);

CREATE TABLE ledger_audit (
  posting_id     BIGINT PRIMARY KEY REFERENCES ledger_postings (posting_id),
  actor          TEXT   NOT NULL,
  kind           TEXT   NOT NULL,
  memo           TEXT   NOT NULL,
  at_ms          BIGINT NOT NULL,
  recorded_at_ms BIGINT NOT NULL
);

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
-- charges.ts MeterChargeState as JSON text (kept verbatim, not jsonb, so it reads back exactly as written).
-- revision is the optimistic lock; the row is replaced at every applyCharges, in that step's transaction.
CREATE TABLE ledger_meter_charge_state (
  meter_id      TEXT   PRIMARY KEY,
  revision      BIGINT NOT NULL CHECK (revision >= 1),
  state_json    TEXT   NOT NULL,
  updated_at_ms BIGINT NOT NULL
);
`,
  },
  {
    version: 3,
    name: "post-and-apply-functions",
    sql: `
-- One posting, idempotently, as postgres-ledger.ts's post() and applyCharges need it: insert it with its lines and
-- audit row, or, when the key exists, return it as a duplicate if the content is the same (kind, memo, actor, at_ms
-- and the lines as a multiset, ledger.ts sameContent) and refuse it otherwise. Server-side so that a posting is one
-- round trip, and so that a batch of hundreds is one round trip too (below). Errors carry the port's codes as
-- SQLSTATEs of a class of our own: LG001 stale revision, LG002 idempotency conflict, LG003 unknown account.
CREATE FUNCTION ledger_post_entry(e jsonb, now_ms bigint) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  pid bigint;
  ex ledger_postings%ROWTYPE;
  missing text;
BEGIN
  INSERT INTO ledger_postings (idempotency_key, kind, memo, actor, at_ms)
  VALUES (e->>'idempotencyKey', e->>'kind', e->>'memo', e->>'actor', (e->>'atMs')::bigint)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING posting_id INTO pid;
  IF pid IS NULL THEN
    SELECT * INTO ex FROM ledger_postings WHERE idempotency_key = e->>'idempotencyKey';
    IF ex.kind = e->>'kind' AND ex.memo = e->>'memo' AND ex.actor = e->>'actor' AND ex.at_ms = (e->>'atMs')::bigint
       AND (SELECT array_agg(ROW(account_id, amount_fen)::text ORDER BY account_id, amount_fen) FROM ledger_lines WHERE posting_id = ex.posting_id)
         = (SELECT array_agg(ROW(l->>'accountId', (l->>'amountFen')::bigint)::text ORDER BY l->>'accountId', (l->>'amountFen')::bigint)
              FROM jsonb_array_elements(e->'lines') AS l)
    THEN
      RETURN jsonb_build_object('postingId', ex.posting_id, 'duplicate', true);
    END IF;
    RAISE EXCEPTION '% was posted as posting % with different content', e->>'idempotencyKey', ex.posting_id USING ERRCODE = 'LG002';
  END IF;
  SELECT l->>'accountId' INTO missing FROM jsonb_array_elements(e->'lines') AS l
   WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.account_id = l->>'accountId') LIMIT 1;
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'no account %', missing USING ERRCODE = 'LG003';
  END IF;
  INSERT INTO ledger_lines (posting_id, line_no, account_id, amount_fen, at_ms)
  SELECT pid, x.ord - 1, x.l->>'accountId', (x.l->>'amountFen')::bigint, (e->>'atMs')::bigint
    FROM jsonb_array_elements(e->'lines') WITH ORDINALITY AS x (l, ord);
  INSERT INTO ledger_audit (posting_id, actor, kind, memo, at_ms, recorded_at_ms)
  VALUES (pid, e->>'actor', e->>'kind', e->>'memo', (e->>'atMs')::bigint, now_ms);
  RETURN jsonb_build_object('postingId', pid, 'duplicate', false);
END $$;

-- applyChargesBatch in one round trip: items in order, each in its own subtransaction (a BEGIN … EXCEPTION block is
-- a savepoint), so a refused item (LG001..LG003) is rolled back alone and reported; any other error aborts the batch.
-- The state write comes first and is a compare-and-set on the meter's row (see postgres-ledger.ts on concurrency).
-- One result row per item, in item order (RETURN NEXT; accumulating one jsonb array would copy it at every item).
CREATE FUNCTION ledger_apply_charges_batch(items jsonb, now_ms bigint) RETURNS SETOF jsonb LANGUAGE plpgsql AS $$
DECLARE
  item jsonb;
  e jsonb;
  expected bigint;
  current_revision bigint;
  changed integer;
  posted jsonb;
  result jsonb;
BEGIN
  FOR item IN SELECT x.value FROM jsonb_array_elements(items) WITH ORDINALITY AS x (value, ord) ORDER BY x.ord LOOP
    BEGIN
      expected := (item->>'expectedRevision')::bigint;
      IF expected = 0 THEN
        INSERT INTO ledger_meter_charge_state (meter_id, revision, state_json, updated_at_ms)
        VALUES (item->>'meterId', 1, item->>'stateJson', now_ms)
        ON CONFLICT (meter_id) DO NOTHING;
      ELSE
        UPDATE ledger_meter_charge_state SET revision = expected + 1, state_json = item->>'stateJson', updated_at_ms = now_ms
         WHERE meter_id = item->>'meterId' AND revision = expected;
      END IF;
      GET DIAGNOSTICS changed = ROW_COUNT;
      IF changed <> 1 THEN
        SELECT revision INTO current_revision FROM ledger_meter_charge_state WHERE meter_id = item->>'meterId';
        RAISE EXCEPTION 'meter % is at revision %, not %', item->>'meterId', COALESCE(current_revision, 0), expected USING ERRCODE = 'LG001';
      END IF;
      posted := '[]'::jsonb;
      FOR e IN SELECT x.value FROM jsonb_array_elements(item->'entries') WITH ORDINALITY AS x (value, ord) ORDER BY x.ord LOOP
        posted := posted || jsonb_build_array(ledger_post_entry(e, now_ms));
      END LOOP;
      result := jsonb_build_object('ok', true, 'revision', expected + 1, 'results', posted);
    EXCEPTION WHEN SQLSTATE 'LG001' OR SQLSTATE 'LG002' OR SQLSTATE 'LG003' THEN
      result := jsonb_build_object('ok', false, 'sqlstate', SQLSTATE, 'message', SQLERRM);
    END;
    RETURN NEXT result;
  END LOOP;
END $$;
`,
  },
  {
    version: 4,
    name: "meter-days",
    // The one definition of the table on PostgreSQL (subsidy/postgres-usage-source.ts reads and upserts it).
    sql: `
-- Each meter's daily usage (subsidy/meter-days.ts), added to in the transaction of the charges it counts. Not money:
-- a row is a running sum, updated in place, and always equals what the applied steps of that day charged.
CREATE TABLE ledger_meter_days (
  meter_id          TEXT    NOT NULL,
  day               TEXT    NOT NULL CHECK (length(day) = 10),
  energy_wh         BIGINT  NOT NULL CHECK (energy_wh >= 0),
  charged_fen       BIGINT  NOT NULL CHECK (charged_fen >= 0),
  night_wh          BIGINT  NOT NULL CHECK (night_wh >= 0 AND night_wh <= energy_wh),
  readings          INTEGER NOT NULL CHECK (readings >= 0),
  first_at_ms       BIGINT  NOT NULL,
  last_at_ms        BIGINT  NOT NULL,
  first_register_wh BIGINT  NOT NULL,
  last_register_wh  BIGINT  NOT NULL,
  PRIMARY KEY (meter_id, day)
);

-- Version 3's function, plus the item's day deltas ('meterDays', already folded to one per day by the caller, since
-- ON CONFLICT DO UPDATE may touch a row once per statement) upserted after the postings, inside the item's
-- subtransaction: a refused item adds no day. The meter's charge-state row is locked first, so the day rows of one
-- meter are only ever written by the transaction holding that lock, and no new lock order (deadlock) appears.
CREATE OR REPLACE FUNCTION ledger_apply_charges_batch(items jsonb, now_ms bigint) RETURNS SETOF jsonb LANGUAGE plpgsql AS $$
DECLARE
  item jsonb;
  e jsonb;
  expected bigint;
  current_revision bigint;
  changed integer;
  posted jsonb;
  result jsonb;
BEGIN
  FOR item IN SELECT x.value FROM jsonb_array_elements(items) WITH ORDINALITY AS x (value, ord) ORDER BY x.ord LOOP
    BEGIN
      expected := (item->>'expectedRevision')::bigint;
      IF expected = 0 THEN
        INSERT INTO ledger_meter_charge_state (meter_id, revision, state_json, updated_at_ms)
        VALUES (item->>'meterId', 1, item->>'stateJson', now_ms)
        ON CONFLICT (meter_id) DO NOTHING;
      ELSE
        UPDATE ledger_meter_charge_state SET revision = expected + 1, state_json = item->>'stateJson', updated_at_ms = now_ms
         WHERE meter_id = item->>'meterId' AND revision = expected;
      END IF;
      GET DIAGNOSTICS changed = ROW_COUNT;
      IF changed <> 1 THEN
        SELECT revision INTO current_revision FROM ledger_meter_charge_state WHERE meter_id = item->>'meterId';
        RAISE EXCEPTION 'meter % is at revision %, not %', item->>'meterId', COALESCE(current_revision, 0), expected USING ERRCODE = 'LG001';
      END IF;
      posted := '[]'::jsonb;
      FOR e IN SELECT x.value FROM jsonb_array_elements(item->'entries') WITH ORDINALITY AS x (value, ord) ORDER BY x.ord LOOP
        posted := posted || jsonb_build_array(ledger_post_entry(e, now_ms));
      END LOOP;
      IF jsonb_array_length(COALESCE(item->'meterDays', '[]'::jsonb)) > 0 THEN
        INSERT INTO ledger_meter_days AS t
          (meter_id, day, energy_wh, charged_fen, night_wh, readings, first_at_ms, last_at_ms, first_register_wh, last_register_wh)
        SELECT item->>'meterId', d->>'day', (d->>'energyWh')::bigint, (d->>'chargedFen')::bigint, (d->>'nightWh')::bigint,
               (d->>'readings')::integer, (d->>'firstAtMs')::bigint, (d->>'lastAtMs')::bigint,
               (d->>'firstRegisterWh')::bigint, (d->>'lastRegisterWh')::bigint
          FROM jsonb_array_elements(item->'meterDays') AS d
        ON CONFLICT (meter_id, day) DO UPDATE SET
          energy_wh = t.energy_wh + excluded.energy_wh,
          charged_fen = t.charged_fen + excluded.charged_fen,
          night_wh = t.night_wh + excluded.night_wh,
          readings = t.readings + excluded.readings,
          first_register_wh = CASE WHEN excluded.first_at_ms < t.first_at_ms THEN excluded.first_register_wh ELSE t.first_register_wh END,
          first_at_ms = least(t.first_at_ms, excluded.first_at_ms),
          last_register_wh = CASE WHEN excluded.last_at_ms >= t.last_at_ms THEN excluded.last_register_wh ELSE t.last_register_wh END,
          last_at_ms = greatest(t.last_at_ms, excluded.last_at_ms);
      END IF;
      result := jsonb_build_object('ok', true, 'revision', expected + 1, 'results', posted);
    EXCEPTION WHEN SQLSTATE 'LG001' OR SQLSTATE 'LG002' OR SQLSTATE 'LG003' THEN
      result := jsonb_build_object('ok', false, 'sqlstate', SQLSTATE, 'message', SQLERRM);
    END;
    RETURN NEXT result;
  END LOOP;
END $$;
`,
  },
];

export const LATEST_POSTGRES_SCHEMA_VERSION = POSTGRES_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/** Brings the database to the latest version on `client` (a dedicated connection, not in a transaction). */
export function migratePostgres(client: pg.ClientBase, nowMs: number, migrations: readonly Migration[] = POSTGRES_MIGRATIONS): Promise<MigrateResult> {
  return applyPostgresMigrations(client, { table: "ledger_schema_migrations", lockKey: MIGRATION_LOCK_KEY, migrations, nowMs, refuse: refuseLedgerSchema });
}
