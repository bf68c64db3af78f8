// Talking to PostgreSQL the one way money needs, for every store that has an engine there (ledger, registry, auth,
// audit, payments, meter flags) — the counterpart of sqlite.ts. A pool whose int8 and numeric values come back as
// safe integers, never as rounded floats (parsers set on that pool only, not on pg's global registry, so each store
// refuses the rest with its own typed error), one connection checked out and discarded when it broke, BEGIN … COMMIT
// around it, and each store's migrations applied under an advisory lock of its own — on open, or by `agri-cloud
// migrate` on a dedicated connection.

import pg from "pg";
import { AgriError } from "../protocols/errors.js";
import { planMigrations } from "./schema-migrations.js";
import type { ApplyMigrationsOptions } from "./sqlite.js";

const PG_INT8_OID = 20;
const PG_NUMERIC_OID = 1700;

/**
 * int8 / numeric text → a number when it is a safe integer; otherwise the exact text, for the reader to refuse with
 * the value in its message. Never a float: pg's own default hands int8 back as a string, and a naive Number() would
 * round 2^53 + 1 silently.
 */
export function parsePgInteger(text: string): number | string {
  const n = Number(text);
  return /^-?\d+$/.test(text) && Number.isSafeInteger(n) ? n : text;
}

/** A type parser that refuses, with the store's typed error, the text parsePgInteger cannot make a safe integer. */
export function strictPgInteger(refuse: (text: string) => Error): (text: string) => number {
  return (text) => {
    const parsed = parsePgInteger(text);
    if (typeof parsed === "number") return parsed;
    throw refuse(text);
  };
}

/**
 * A value read from an integer column: the number, or `refuse(message)` naming it — never rounded. Decimal text is
 * accepted too, for a connection that lacks openPostgresPool's parsers (a caller's client).
 */
export function pgSafeInteger(value: unknown, what: string, refuse: (message: string) => Error): number {
  const parsed = typeof value === "string" ? parsePgInteger(value) : value;
  if (typeof parsed === "number" && Number.isSafeInteger(parsed)) return parsed;
  const shown = typeof value === "string" || typeof value === "number" || typeof value === "bigint" ? String(value) : typeof value;
  throw refuse(`${what} ${shown} is not an integer within ±(2^53 − 1); refusing to round it`);
}

export interface PostgresPoolOptions {
  readonly connectionString: string;
  readonly poolSize: number;
  /** Shown in pg_stat_activity, so an operator can tell the stores' connections apart. */
  readonly applicationName: string;
  /** int8 and numeric text → a value: parsePgInteger unless given (strictPgInteger refuses while parsing). */
  readonly parseInteger?: (text: string) => unknown;
}

export function openPostgresPool(options: PostgresPoolOptions): pg.Pool {
  const parseInteger = options.parseInteger ?? parsePgInteger;
  const types = {
    getTypeParser: ((oid: number, format?: string) => {
      if (oid === PG_INT8_OID || oid === PG_NUMERIC_OID) return parseInteger;
      return pg.types.getTypeParser(oid, format as "text") as (text: string) => unknown;
    }) as pg.CustomTypesConfig["getTypeParser"],
  };
  const pool = new pg.Pool({ connectionString: options.connectionString, max: options.poolSize, types, application_name: options.applicationName });
  // An idle connection the server drops (restart, pg_terminate_backend) is reported here; the pool replaces it.
  pool.on("error", () => undefined);
  // pg-pool hands a new connection out from inside the socket read that brought its ReadyForQuery, having removed its
  // own error listener; if the same read also brings the server's "terminating connection" (a restart, a failover),
  // the 'error' is emitted before the borrower could listen — an uncaught exception that would end the process. A
  // listener that stays on every connection closes that gap; the failure still reaches the borrower's next query.
  pool.on("connect", (client) => client.on("error", () => undefined));
  return pool;
}

/** A refusal (a store's typed error, or a database error that is not about the connection) leaves it usable. */
function connectionMayBeDead(error: unknown): boolean {
  if (error instanceof AgriError) return false;
  // SQLSTATE class 08: connection exception; 57: operator intervention (admin shutdown, pg_terminate_backend).
  return !(error instanceof pg.DatabaseError) || /^(08|57)/.test(error.code ?? "");
}

/**
 * `body` on one checked-out connection. It goes back to the pool only if nothing suggests it is dead: a connection
 * the server dropped reports an 'error' event (which would crash the process if nobody listened), a failed query
 * that is not a refusal (no SQLSTATE, or class 08 / 57) or a failed ROLLBACK (`markBroken`) — it is then discarded
 * and the pool opens another.
 */
export async function withClient<T>(pool: pg.Pool, body: (client: pg.PoolClient, markBroken: (error: unknown) => void) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const markBroken = (error: unknown): void => {
    broken ??= error instanceof Error ? error : new Error(String(error));
  };
  client.on("error", markBroken);
  try {
    return await body(client, markBroken);
  } catch (error) {
    if (connectionMayBeDead(error)) markBroken(error);
    throw error;
  } finally {
    client.off("error", markBroken);
    client.release(broken);
  }
}

/** BEGIN … COMMIT on one pooled connection (READ COMMITTED unless `begin` says otherwise); ROLLBACK on any error. */
export function inTransaction<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>, begin = "BEGIN"): Promise<T> {
  return withClient(pool, async (client, markBroken) => {
    await client.query(begin);
    try {
      const result = await body(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      // A failed ROLLBACK means the connection is gone; the original error is the one worth reporting.
      await client.query("ROLLBACK").catch(markBroken);
      throw error;
    }
  });
}

/** SQLSTATE 23505: a row whose primary key or UNIQUE column is already taken. */
export function isPgUniqueViolation(error: unknown): boolean {
  return error instanceof pg.DatabaseError && error.code === "23505";
}

export interface ApplyPostgresMigrationsOptions extends ApplyMigrationsOptions {
  /** The store's own key for pg_advisory_xact_lock (eight ASCII letters, recognisable in pg_locks). */
  readonly lockKey: bigint;
}

/**
 * Applies the migrations `table` lacks, each with its row, in ONE transaction on `client` (a connection of its own,
 * not in a transaction), refusing a database migrated by newer or other code before touching it. The transaction
 * first takes the store's advisory lock: two processes migrating at once would otherwise race on CREATE TABLE (DDL is
 * transactional, but two concurrent CREATEs of one name fail on pg_type); the second waits, then has nothing to do.
 */
export async function applyPostgresMigrations(client: pg.ClientBase, options: ApplyPostgresMigrationsOptions): Promise<{ fromVersion: number; toVersion: number }> {
  const { table, lockKey, migrations, nowMs, refuse } = options;
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1)", [lockKey.toString()]);
    await client.query(`CREATE TABLE IF NOT EXISTS ${table} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)`);
    const applied = (await client.query<{ version: number; name: string }>(`SELECT version, name FROM ${table} ORDER BY version`)).rows;
    const plan = planMigrations(applied, migrations);
    if (!plan.ok) throw refuse(plan.problem);
    for (const m of plan.pending) {
      await client.query(m.sql);
      await client.query(`INSERT INTO ${table} (version, name, applied_at_ms) VALUES ($1, $2, $3)`, [m.version, m.name, nowMs]);
    }
    await client.query("COMMIT");
    return { fromVersion: plan.fromVersion, toVersion: plan.toVersion };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}

/** A store's open: its pool, migrated on one of its connections first — and ended again if that fails. */
export async function openMigratedPool<M>(options: PostgresPoolOptions, migrate: (client: pg.PoolClient) => Promise<M>): Promise<{ pool: pg.Pool; migration: M }> {
  const pool = openPostgresPool(options);
  try {
    return { pool, migration: await withClient(pool, migrate) };
  } catch (error) {
    await pool.end();
    throw error;
  }
}

/** For `agri-cloud migrate`: `migrate` on one dedicated connection, closed again whatever happens. */
export async function migrateOnConnection<M>(connectionString: string, applicationName: string, migrate: (client: pg.ClientBase) => Promise<M>): Promise<M> {
  const client = new pg.Client({ connectionString, application_name: applicationName });
  // A connection the server drops mid-migration fails the pending query; without a listener it would also crash.
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await migrate(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
