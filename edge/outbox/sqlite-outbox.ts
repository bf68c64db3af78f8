// The gateway's durable outbox: one SQLite file (better-sqlite3, WAL) on the SD card, implementing the Outbox port.
//
// Durability: WAL with synchronous=FULL by default, so a committed append survives power loss, not only a process
// crash (SQLite docs, "PRAGMA synchronous": in WAL mode NORMAL may roll back the last transactions on power loss).
// The seq counter lives in the same file and is advanced in the same transaction as the insert, so a seq is issued
// exactly when its message is durable and can never be issued twice, whatever is deleted, restarted or killed.
//
// The bound (checked at every append, message by message):
//   - an append that would make count > maxCount or bytes > maxBytes first makes room from plain telemetry:
//     1. thin: among the oldest min(⌊T/2⌋, THIN_WINDOW_MAX) telemetry rows (T = telemetry rows stored), delete the
//        1st, 3rd, 5th, … (counted in thinnedTelemetry). Repeated thinning decimates old telemetry ever more
//        coarsely, so a long outage keeps a coarse picture of its whole length instead of only its end;
//     2. if still too full, delete the oldest telemetry row by row (counted in droppedTelemetry);
//   - alarms, billing readings and events are never deleted to make room. When no telemetry is left they are stored
//     anyway and the outbox runs over its bound (stats().overBound): losing money or an alarm is worse than a
//     fuller card. A telemetry message that would not fit even with all telemetry gone is refused (no telemetry is
//     deleted for it), counted in droppedTelemetry; it still consumes its seq, so the cloud sees every loss as a gap.
//   - so overBound implies no telemetry is stored, unless the limits were lowered between two opens.
//   - `bytes` counts topic + payload UTF-8 bytes (entryBytes). The file is larger: the bench reports the ratio of
//     file size to counted bytes; plan the card with it, plus the WAL (trimmed to WAL_SIZE_LIMIT_BYTES after a
//     checkpoint, but a large thinning transaction can grow it temporarily).
//
// Cost of thinning: deleting every other row of the whole oldest half would dirty half the file inside the append
// that found the outbox full — bench/outbox.ts measured unbounded passes of 79,500 and 131,625 rows at 0.8 s and
// 2.7 s on the 2-core dev box — and better-sqlite3 is synchronous, so an alarm arriving then would wait behind it
// (invariant 6). One pass therefore looks at no more than THIN_WINDOW_MAX rows (frees half of them); the next full
// append thins the next stretch. The decimation is the same over time, in bounded steps.

import Database from "better-sqlite3";

/** Most telemetry rows one thinning pass looks at (it deletes every other one): bounds the pause of a full append. */
export const THIN_WINDOW_MAX = 4096;
import {
  assertLimits,
  entryBytes,
  OutboxError,
  OUTBOX_PRIORITIES,
  payloadWithSeq,
  prepareMessage,
  type AppendResult,
  type Outbox,
  type OutboxEntry,
  type OutboxLimits,
  type OutboxMessage,
  type OutboxPriority,
  type OutboxStats,
  type PreparedMessage,
} from "./outbox.js";

export interface SqliteOutboxOptions extends OutboxLimits {
  readonly path: string;
  /** FULL (default) syncs the WAL at every commit: power-loss safe. NORMAL is for bulk setup and tests only. */
  readonly synchronous?: "FULL" | "NORMAL";
}

export interface SqliteOutbox extends Outbox {
  readonly path: string;
}

/** PRAGMA user_version of the schema below; any other non-zero version is someone else's file. */
const SCHEMA_VERSION = 1;
/** After a checkpoint SQLite truncates the WAL back to this size, so a burst does not keep card space forever. */
const WAL_SIZE_LIMIT_BYTES = 8 * 1024 * 1024;
const TELEMETRY_RANK = 2;

// drain_rank is stored (not derived) so that one index, (drain_rank, seq), serves peek's ORDER BY and the thinning
// and dropping scans of telemetry in seq order without a sort. seq is the rowid, so ack is a primary-key delete.
// tally and counters keep stats O(1) at a million rows; triggers keep tally right for every delete path (ack,
// thinning, dropping) inside the deleting transaction.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  seq        INTEGER PRIMARY KEY,
  drain_rank INTEGER NOT NULL,
  priority   TEXT    NOT NULL CHECK (priority IN ('alarm', 'billing', 'event', 'telemetry')),
  topic_name TEXT    NOT NULL,
  topic      TEXT    NOT NULL,
  payload    TEXT    NOT NULL,
  bytes      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_drain ON outbox (drain_rank, seq);
CREATE TABLE IF NOT EXISTS tally (
  priority TEXT PRIMARY KEY,
  count    INTEGER NOT NULL,
  bytes    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO tally (priority, count, bytes) VALUES ('alarm', 0, 0), ('billing', 0, 0), ('event', 0, 0), ('telemetry', 0, 0);
CREATE TABLE IF NOT EXISTS counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO counters (name, value) VALUES ('last_seq', 0), ('dropped_telemetry', 0), ('thinned_telemetry', 0);
CREATE TRIGGER IF NOT EXISTS outbox_tally_insert AFTER INSERT ON outbox BEGIN
  UPDATE tally SET count = count + 1, bytes = bytes + NEW.bytes WHERE priority = NEW.priority;
END;
CREATE TRIGGER IF NOT EXISTS outbox_tally_delete AFTER DELETE ON outbox BEGIN
  UPDATE tally SET count = count - 1, bytes = bytes - OLD.bytes WHERE priority = OLD.priority;
END;
PRAGMA user_version = ${SCHEMA_VERSION};
`;

interface Totals {
  count: number;
  bytes: number;
  telemetryCount: number;
  telemetryBytes: number;
}

type CounterName = "last_seq" | "dropped_telemetry" | "thinned_telemetry";

export function openSqliteOutbox(options: SqliteOutboxOptions): SqliteOutbox {
  const limits: OutboxLimits = { maxBytes: options.maxBytes, maxCount: options.maxCount };
  assertLimits(limits);
  const synchronous = options.synchronous ?? "FULL";
  if (synchronous !== "FULL" && synchronous !== "NORMAL") throw new OutboxError("BAD_ARGUMENT", `synchronous must be FULL or NORMAL, got ${String(synchronous)}`);
  const { path } = options;

  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (err) {
    throw toOutboxError(err, path);
  }
  try {
    initialise(db, path, synchronous);
    return createOutbox(db, path, limits);
  } catch (err) {
    db.close();
    throw toOutboxError(err, path);
  }
}

function initialise(db: Database.Database, path: string, synchronous: "FULL" | "NORMAL"): void {
  // Read before writing anything: a wrong path must not turn someone else's database into WAL mode or grow tables.
  // On a file that is not SQLite this first read is where SQLITE_NOTADB surfaces.
  const version = db.pragma("user_version", { simple: true }) as number;
  const objects = db.prepare("SELECT count(*) FROM sqlite_schema").pluck().get() as number;
  const fresh = version === 0 && objects === 0;
  if (!fresh && version !== SCHEMA_VERSION) {
    throw new OutboxError("FOREIGN_SCHEMA", `${path} is an SQLite database but not an outbox of schema ${SCHEMA_VERSION} (user_version ${version}, ${objects} objects)`);
  }
  const mode = db.pragma("journal_mode = WAL", { simple: true }) as string;
  if (mode !== "wal") throw new OutboxError("IO", `${path}: the file system refused WAL mode (journal_mode is ${mode})`);
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
  if (fresh) db.transaction(() => db.exec(SCHEMA)).immediate();
}

function createOutbox(db: Database.Database, path: string, limits: OutboxLimits): SqliteOutbox {
  const allocateSeqs = db.prepare<[number], number>("UPDATE counters SET value = value + ? WHERE name = 'last_seq' RETURNING value").pluck();
  const insert = db.prepare<[number, number, string, string, string, string, number]>(
    "INSERT INTO outbox (seq, drain_rank, priority, topic_name, topic, payload, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const readTally = db.prepare<[], { priority: OutboxPriority; count: number; bytes: number }>("SELECT priority, count, bytes FROM tally");
  const readCounters = db.prepare<[], { name: CounterName; value: number }>("SELECT name, value FROM counters");
  const bumpCounter = db.prepare<[number, CounterName]>("UPDATE counters SET value = value + ? WHERE name = ?");
  // The inner LIMIT picks the oldest half through the drain index before numbering, so the window never scans the
  // younger half; odd row numbers are the 1st, 3rd, 5th … oldest.
  const thin = db.prepare<[number]>(`
    DELETE FROM outbox WHERE seq IN (
      SELECT seq FROM (
        SELECT seq, row_number() OVER (ORDER BY seq) AS n
        FROM (SELECT seq FROM outbox WHERE drain_rank = ${TELEMETRY_RANK} ORDER BY seq LIMIT ?)
      ) WHERE n % 2 = 1
    )`);
  const dropOldestTelemetry = db.prepare<[], number>(
    `DELETE FROM outbox WHERE seq = (SELECT seq FROM outbox WHERE drain_rank = ${TELEMETRY_RANK} ORDER BY seq LIMIT 1) RETURNING bytes`,
  ).pluck();
  const peekStmt = db.prepare<[number], OutboxEntry>(
    "SELECT seq, topic_name AS topicName, topic, payload AS payloadJson, priority, bytes FROM outbox ORDER BY drain_rank, seq LIMIT ?",
  );
  const deleteOne = db.prepare<[number]>("DELETE FROM outbox WHERE seq = ?");
  const oldestSeq = db.prepare<[], number | null>("SELECT min(seq) FROM outbox").pluck();
  const newestSeq = db.prepare<[], number | null>("SELECT max(seq) FROM outbox").pluck();

  const totals = (): Totals => {
    const t: Totals = { count: 0, bytes: 0, telemetryCount: 0, telemetryBytes: 0 };
    for (const row of readTally.all()) {
      t.count += row.count;
      t.bytes += row.bytes;
      if (row.priority === "telemetry") {
        t.telemetryCount = row.count;
        t.telemetryBytes = row.bytes;
      }
    }
    return t;
  };
  const fits = (t: Totals, bytes: number): boolean => t.count + 1 <= limits.maxCount && t.bytes + bytes <= limits.maxBytes;

  const appendTx = db.transaction((batch: readonly PreparedMessage[]): AppendResult[] => {
    const lastSeq = allocateSeqs.get(batch.length);
    if (lastSeq === undefined) throw new OutboxError("CORRUPT", `${path}: the seq counter row is missing`);
    let seq = lastSeq - batch.length;
    let t = totals();
    let dropped = 0;
    let thinned = 0;
    const results: AppendResult[] = [];
    for (const m of batch) {
      seq += 1;
      const payloadJson = payloadWithSeq(m.bodyJson, seq);
      const bytes = entryBytes(m.topic, payloadJson);
      const isTelemetry = m.rank === TELEMETRY_RANK;
      if (!fits(t, bytes)) {
        // Deleting telemetry for a telemetry message that cannot get in even with all telemetry gone would only lose data.
        const fitsWithoutTelemetry =
          t.count - t.telemetryCount + 1 <= limits.maxCount && t.bytes - t.telemetryBytes + bytes <= limits.maxBytes;
        if (isTelemetry && !fitsWithoutTelemetry) {
          dropped += 1;
          results.push({ seq, stored: false });
          continue;
        }
        if (t.telemetryCount >= 2) {
          thinned += thin.run(Math.min(THIN_WINDOW_MAX, Math.floor(t.telemetryCount / 2))).changes;
          t = totals();
        }
        while (!fits(t, bytes) && t.telemetryCount > 0) {
          const freed = dropOldestTelemetry.get();
          if (freed === undefined) break;
          dropped += 1;
          t.count -= 1;
          t.bytes -= freed;
          t.telemetryCount -= 1;
          t.telemetryBytes -= freed;
        }
        // Past this point a message that still does not fit is an alarm, a billing reading or an event: stored
        // over the bound, because losing it is worse than a fuller card.
      }
      insert.run(seq, m.rank, m.priority, m.topicName, m.topic, payloadJson, bytes);
      t.count += 1;
      t.bytes += bytes;
      if (isTelemetry) {
        t.telemetryCount += 1;
        t.telemetryBytes += bytes;
      }
      results.push({ seq, stored: true });
    }
    if (dropped > 0) bumpCounter.run(dropped, "dropped_telemetry");
    if (thinned > 0) bumpCounter.run(thinned, "thinned_telemetry");
    return results;
  });

  const ackTx = db.transaction((seqs: readonly number[]): number => {
    let removed = 0;
    for (const seq of seqs) removed += deleteOne.run(seq).changes;
    return removed;
  });

  const statsTx = db.transaction((): OutboxStats => {
    const byClass = Object.fromEntries(OUTBOX_PRIORITIES.map((p) => [p, { count: 0, bytes: 0 }])) as Record<OutboxPriority, { count: number; bytes: number }>;
    for (const row of readTally.all()) byClass[row.priority] = { count: row.count, bytes: row.bytes };
    const counters = Object.fromEntries(readCounters.all().map((r) => [r.name, r.value])) as Partial<Record<CounterName, number>>;
    const t = totals();
    return {
      count: t.count,
      bytes: t.bytes,
      byClass,
      droppedTelemetry: counters.dropped_telemetry ?? 0,
      thinnedTelemetry: counters.thinned_telemetry ?? 0,
      oldestSeq: oldestSeq.get() ?? null,
      lastSeq: counters.last_seq ?? 0,
      limits,
      overBound: t.count > limits.maxCount || t.bytes > limits.maxBytes,
    };
  });

  // The counter and the rows are written in one transaction, so this never fires on a healthy file. If a damaged or
  // hand-edited file has rows above the counter, raising the counter is the repair that keeps seqs unique.
  db.transaction(() => {
    const newest = newestSeq.get() ?? 0;
    const counters = Object.fromEntries(readCounters.all().map((r) => [r.name, r.value])) as Partial<Record<CounterName, number>>;
    const last = counters.last_seq;
    if (last === undefined) throw new OutboxError("CORRUPT", `${path}: the seq counter row is missing`);
    if (newest > last) bumpCounter.run(newest - last, "last_seq");
  }).immediate();

  let closed = false;
  const use = <T>(op: () => T): T => {
    if (closed) throw new OutboxError("CLOSED", `outbox ${path} is closed`);
    try {
      return op();
    } catch (err) {
      throw toOutboxError(err, path);
    }
  };

  return {
    path,
    append(message: OutboxMessage): AppendResult {
      const prepared = prepareMessage(message);
      const [result] = use(() => appendTx.immediate([prepared]));
      if (!result) throw new OutboxError("IO", `${path}: append returned no result`);
      return result;
    },
    appendMany(messages: readonly OutboxMessage[]): AppendResult[] {
      // Everything is checked before the transaction opens, so a bad message cannot leave half a batch behind.
      const prepared = messages.map(prepareMessage);
      if (prepared.length === 0) return use(() => []);
      return use(() => appendTx.immediate(prepared));
    },
    peek(limit: number): OutboxEntry[] {
      if (!Number.isSafeInteger(limit) || limit < 0) throw new OutboxError("BAD_ARGUMENT", `peek limit must be a non-negative safe integer, got ${String(limit)}`);
      return use(() => (limit === 0 ? [] : peekStmt.all(limit)));
    },
    ack(seq: number): boolean {
      assertSeq(seq);
      return use(() => deleteOne.run(seq).changes > 0);
    },
    ackMany(seqs: readonly number[]): number {
      for (const seq of seqs) assertSeq(seq);
      return use(() => (seqs.length === 0 ? 0 : ackTx.immediate(seqs)));
    },
    stats(): OutboxStats {
      return use(() => statsTx.deferred());
    },
    close(): void {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}

function assertSeq(seq: number): void {
  if (!Number.isSafeInteger(seq)) throw new OutboxError("BAD_ARGUMENT", `a seq is a safe integer, got ${String(seq)}`);
}

/** Map SQLite's result codes (https://sqlite.org/rescode.html) onto the outbox's typed errors. */
function toOutboxError(err: unknown, path: string): OutboxError {
  if (err instanceof OutboxError) return err;
  const code = err instanceof Database.SqliteError ? err.code : undefined;
  const message = `${path}: ${err instanceof Error ? err.message : String(err)}`;
  if (code === undefined) return new OutboxError("IO", message, { cause: err });
  if (code === "SQLITE_NOTADB" || code.startsWith("SQLITE_CORRUPT")) return new OutboxError("CORRUPT", message, { cause: err });
  if (code === "SQLITE_FULL") return new OutboxError("DISK_FULL", message, { cause: err });
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) return new OutboxError("BUSY", message, { cause: err });
  return new OutboxError("IO", message, { cause: err });
}
