// One household's money decisions one at a time: sizing its meters' credit grants (prepaid/service.ts) and checking a
// cash refund or top-up against its balance and those grants (api/routes/household-money.ts). Each reads the balance
// and the grants in force and then writes; run side by side, a refund could pass its check while a grant sized from
// the balance before it was still being stored, or two workers could each grant a household's whole balance to a
// different meter — credit the farmer could draw twice.
//
// In one process a promise chain per household orders the holders. With PostgreSQL (several workers) the holder also
// takes a session advisory lock on (HOUSEHOLD_LOCK_CLASS, hashtext(householdId)) on a connection of a small pool of
// its own, so holders never wait for a connection the locked work needs. A connection that dies while held releases
// the database lock; it is then discarded, never returned to the pool. Not reentrant: a holder must not ask for its
// own household again (neither caller does: the refund re-grants after releasing it).

import type pg from "pg";
import { withClient } from "../postgres.js";

/** First key of pg_advisory_lock(int4, int4) for households: "regh". */
export const HOUSEHOLD_LOCK_CLASS = 0x72656768;

export type HouseholdLock = <T>(householdId: string, work: () => Promise<T>) => Promise<T>;

/** Holders of one household in this process run one after another, in the order they asked. */
export function inProcessHouseholdLock(): HouseholdLock {
  const tails = new Map<string, Promise<unknown>>();
  return async <T>(householdId: string, work: () => Promise<T>): Promise<T> => {
    const before = tails.get(householdId) ?? Promise.resolve();
    const run = before.then(work, work);
    const tail = run.catch(() => undefined);
    tails.set(householdId, tail);
    try {
      return await run;
    } finally {
      if (tails.get(householdId) === tail) tails.delete(householdId);
    }
  };
}

/** The in-process order, then the database's lock across workers. */
export function postgresHouseholdLock(lockPool: pg.Pool): HouseholdLock {
  const local = inProcessHouseholdLock();
  return <T>(householdId: string, work: () => Promise<T>): Promise<T> =>
    local(householdId, () =>
      withClient(lockPool, async (client, markBroken) => {
        await client.query("SELECT pg_advisory_lock($1, hashtext($2))", [HOUSEHOLD_LOCK_CLASS, householdId]);
        try {
          return await work();
        } finally {
          await client.query("SELECT pg_advisory_unlock($1, hashtext($2))", [HOUSEHOLD_LOCK_CLASS, householdId]).catch(markBroken);
        }
      }),
    );
}
