// Running independent store work a few at a time. On PostgreSQL every registry or ledger read is a network round
// trip, and a billing batch needs a handful per meter and per household: one after another they leave the pool's
// other connections idle and the batch waits on latency, not on work. At most `limit` run at once, so one batch
// cannot take every connection from the HTTP side. On SQLite the work is synchronous underneath and this changes
// nothing but the order of microtasks.

/** Calls `work` for every item, at most `limit` at a time; resolves when all have settled, rejecting with the first
 * failure only after the rest finished (so no work is left running behind the caller's back). */
export async function forEachBounded<T>(items: Iterable<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`forEachBounded: limit must be a positive integer, got ${limit}`);
  const iterator = items[Symbol.iterator]();
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    for (let next = iterator.next(); next.done !== true; next = iterator.next()) {
      try {
        await work(next.value);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, lane));
  if (failure !== undefined) throw failure.error;
}
