// The pg pool the audit log and the auth store share on PostgreSQL, and the two things every query of theirs needs:
// BIGINT read back as an exact JS number (or refused), and BEGIN … COMMIT on one pooled connection. The type parsers
// are set on this pool only, not on pg's global registry, so other pools in the process keep their own parsing.

import pg from "pg";
import { AuditError, AUDIT_ERROR_CODES as C } from "./errors.js";

const PG_INT8_OID = 20;
const PG_NUMERIC_OID = 1700;

/** int8 / numeric text → a number when it is a safe integer; otherwise the exact text, which safeInteger refuses. */
function parseInteger(text: string): number | string {
  const n = Number(text);
  return /^-?\d+$/.test(text) && Number.isSafeInteger(n) ? n : text;
}

const integerTypes = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === PG_INT8_OID || oid === PG_NUMERIC_OID) return parseInteger;
    return pg.types.getTypeParser(oid, format as "text") as (text: string) => unknown;
  }) as pg.CustomTypesConfig["getTypeParser"],
};

/**
 * A value read from a BIGINT column: the number, or AUDIT_NON_INTEGER_VALUE — never rounded. Decimal text is
 * accepted too, for a caller's connection that lacks this pool's parsers (appendAuditEntry on any client).
 */
export function safeInteger(value: unknown, what: string): number {
  const parsed = typeof value === "string" ? parseInteger(value) : value;
  if (typeof parsed === "number" && Number.isSafeInteger(parsed)) return parsed;
  const shown = typeof value === "string" || typeof value === "number" || typeof value === "bigint" ? String(value) : typeof value;
  throw new AuditError(C.NON_INTEGER, `${what} ${shown} is not an integer within ±(2^53 − 1); refusing to round it`);
}

/** safeInteger for a nullable column. */
export const safeIntegerOrNull = (value: unknown, what: string): number | null => (value === null ? null : safeInteger(value, what));

export interface PoolOptions {
  readonly connectionString: string;
  /** Connections in the pool (default 4: user changes and logins are few; a session check is one query). */
  readonly poolSize?: number;
  /** Shown in pg_stat_activity. */
  readonly applicationName: string;
}

export function openIntegerPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({ connectionString: options.connectionString, max: options.poolSize ?? 4, types: integerTypes, application_name: options.applicationName });
  // An idle connection the server drops (restart, pg_terminate_backend) is reported here; the pool replaces it.
  pool.on("error", () => undefined);
  return pool;
}

/** One checked-out connection for `body`; a connection that broke meanwhile is discarded, not returned to the pool. */
export async function withClient<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A checked-out connection the server drops between two queries reports an 'error' event, which would crash the
  // process if nobody listened; the next query then fails, and the connection is discarded.
  const onError = (error: Error): void => {
    broken = error;
  };
  client.on("error", onError);
  try {
    return await body(client);
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}

/** BEGIN … COMMIT on one pooled connection; ROLLBACK on any error. */
export function inTransaction<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client) => {
    await client.query("BEGIN");
    try {
      const result = await body(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      // A failed ROLLBACK means the connection is gone; the original error is the one worth reporting.
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    }
  });
}

/** SQLSTATE 23505: a row whose primary key or UNIQUE column is already taken. */
export function isPgUniqueViolation(error: unknown): boolean {
  return error instanceof pg.DatabaseError && error.code === "23505";
}
