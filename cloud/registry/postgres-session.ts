// The PostgreSQL registry's plumbing, shared by postgres-registry.ts and postgres-land.ts: one pg Pool whose int8
// and numeric values come back as safe integers only (set on this pool, not on pg's global parsers, so the ledger and
// anything else in the process keep their own), BEGIN … COMMIT on one pooled connection, and the translation of the
// SQLSTATEs a registry write can meet into the RegistryError codes the SQLite engine throws.

import pg from "pg";
import { RegistryError, REGISTRY_ERROR_CODES as C } from "./errors.js";

const PG_INT8_OID = 20;
const PG_NUMERIC_OID = 1700;

/** int8 / numeric text → a number; anything beyond ±(2^53 − 1) or fractional is refused, never silently rounded. */
function parseSafeInteger(text: string): number {
  const n = Number(text);
  if (/^-?\d+$/.test(text) && Number.isSafeInteger(n)) return n;
  throw new RegistryError(C.NON_INTEGER, `stored value ${text} is not an integer within ±(2^53 − 1); refusing to round it`);
}

const integerTypes = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === PG_INT8_OID || oid === PG_NUMERIC_OID) return parseSafeInteger;
    return pg.types.getTypeParser(oid, format as "text") as (text: string) => unknown;
  }) as pg.CustomTypesConfig["getTypeParser"],
};

export function createRegistryPool(connectionString: string, poolSize: number, applicationName: string): pg.Pool {
  const pool = new pg.Pool({ connectionString, max: poolSize, types: integerTypes, application_name: applicationName });
  // An idle connection the server drops (restart, pg_terminate_backend) is reported here; the pool replaces it.
  pool.on("error", () => undefined);
  return pool;
}

/**
 * `body` on one checked-out connection. The connection goes back to the pool only if nothing suggests it is dead: a
 * connection the server dropped reports an 'error' event (which would crash the process if nobody listened), a
 * failed query that is not a refusal (SQLSTATE class 08 connection exception, 57 operator intervention, or no
 * SQLSTATE at all) or a failed ROLLBACK (`markBroken`) — it is then discarded and the pool opens another.
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
    if (!(error instanceof RegistryError) && !(error instanceof pg.DatabaseError && !/^(08|57)/.test(error.code ?? ""))) markBroken(error);
    throw error;
  } finally {
    client.off("error", markBroken);
    client.release(broken);
  }
}

/** BEGIN … COMMIT (READ COMMITTED unless `begin` says otherwise); ROLLBACK on any error. */
export async function transaction<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>, begin = "BEGIN"): Promise<T> {
  return withClient(pool, async (client, markBroken) => {
    await client.query(begin);
    try {
      const result = await body(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(markBroken);
      throw error;
    }
  });
}

const UNIQUE_VIOLATION = "23505";
const FOREIGN_KEY_VIOLATION = "23503";

/**
 * A unique violation as REGISTRY_ALREADY_EXISTS and a foreign-key violation (a parent deleted or never committed
 * between our check and our insert) as REGISTRY_UNKNOWN_ENTITY; anything else is not a refusal and is rethrown.
 */
export function translateWriteError(error: unknown, what: string): unknown {
  if (!(error instanceof pg.DatabaseError)) return error;
  if (error.code === UNIQUE_VIOLATION) return new RegistryError(C.EXISTS, `${what} already exists`);
  if (error.code === FOREIGN_KEY_VIOLATION) return new RegistryError(C.UNKNOWN, `${what} refers to something that does not exist (${error.detail ?? error.message})`);
  return error;
}

/** Runs one write, translating its refusals (translateWriteError). */
export async function write<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw translateWriteError(error, what);
  }
}

export type Queryable = pg.Pool | pg.PoolClient;

export async function rows<R extends pg.QueryResultRow>(db: Queryable, sql: string, params: readonly unknown[] = []): Promise<R[]> {
  return (await db.query<R>(sql, [...params])).rows;
}

export async function firstRow<R extends pg.QueryResultRow>(db: Queryable, sql: string, params: readonly unknown[] = []): Promise<R | undefined> {
  return (await db.query<R>(sql, [...params])).rows[0];
}
