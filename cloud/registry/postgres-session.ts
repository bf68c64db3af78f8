// What the PostgreSQL registry (postgres-registry.ts, postgres-land.ts) adds to cloud/postgres.ts: its pool's int8 and
// numeric parser, refusing while parsing what is not a safe integer (REGISTRY_NON_INTEGER_VALUE), the
// translation of the SQLSTATEs a registry write can meet into the RegistryError codes the SQLite engine throws, and
// the two query shapes every method uses.

import pg from "pg";
import { isPgUniqueViolation, strictPgInteger } from "../postgres.js";
import { RegistryError, REGISTRY_ERROR_CODES as C } from "./errors.js";

export const parseRegistryInteger = strictPgInteger(
  (text) => new RegistryError(C.NON_INTEGER, `stored value ${text} is not an integer within ±(2^53 − 1); refusing to round it`),
);

const FOREIGN_KEY_VIOLATION = "23503";

/**
 * A unique violation as REGISTRY_ALREADY_EXISTS and a foreign-key violation (a parent deleted or never committed
 * between our check and our insert) as REGISTRY_UNKNOWN_ENTITY; anything else is not a refusal and is rethrown.
 */
export function translateWriteError(error: unknown, what: string): unknown {
  if (!(error instanceof pg.DatabaseError)) return error;
  if (isPgUniqueViolation(error)) return new RegistryError(C.EXISTS, `${what} already exists`);
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
