// The ingest's durable memory of which uplinks it has already handed to the sinks, keyed on (gatewayId, seq)
// (ARCHITECTURE.md invariant 8). Per gateway it keeps a high-water mark H — every seq ≤ H has been seen — and a
// bounded window of the seqs above H seen so far. Out-of-order delivery is normal (a redelivered message after a
// reconnect, a backlog drained alarms-and-billing-first after an outage), so a seq above H is not "new" just
// because H has not reached it, and a seq below the newest one is not a duplicate just because it is lower.
//
// The window is bounded: when a gateway has more than maxWindow seqs outstanding above H, the lowest gap is given
// up — H jumps to the lowest windowed seq — and a message from that gap arriving later is taken for a duplicate.
// That only happens when a seq never arrives (lost from a gateway's outbox, or an outbox that started above 1 before
// this store knew the gateway), and recordSeen reports how many seqs it gave up so the shell can count and log it.

import Database from "better-sqlite3";

export interface DedupeStore {
  /** Whether (gatewayId, seq) was recorded before, or lies in a gap that was given up. */
  seen(gatewayId: string, seq: number): boolean;
  /** Record (gatewayId, seq) as handled; one transaction. Returns how many unseen seqs were given up to keep the window bounded. */
  record(gatewayId: string, seq: number): RecordOutcome;
  /**
   * Record many (gatewayId, seq) in ONE transaction (one fsync: the ingest's group commit). Returns the seqs given
   * up in total, and how many of the keys had been recorded before.
   */
  recordMany(keys: readonly DedupeKey[]): { readonly gaveUpSeqs: number; readonly alreadySeen: number };
  /** seen then record in one transaction: true when it was new (and is now recorded). */
  checkAndRecord(gatewayId: string, seq: number): boolean;
  /** The high-water mark and window size for a gateway (status page, tests). */
  stateOf(gatewayId: string): { readonly highWater: number; readonly windowSize: number };
  close(): void;
}

export interface DedupeKey {
  readonly gatewayId: string;
  readonly seq: number;
}

export interface RecordOutcome {
  readonly alreadySeen: boolean;
  /** Seqs between the old high-water mark and the lowest windowed seq that will now count as seen without arriving. */
  readonly gaveUpSeqs: number;
}

export interface DedupeOptions {
  readonly path: string;
  /** Seqs a gateway may have outstanding above its high-water mark; 4096 covers a long outage's reordering. */
  readonly maxWindow?: number;
}

export const DEFAULT_DEDUPE_WINDOW = 4096;

interface GatewayRow {
  high_water: number;
  window_size: number;
}

export function openDedupeStore(options: DedupeOptions): DedupeStore {
  const maxWindow = options.maxWindow ?? DEFAULT_DEDUPE_WINDOW;
  if (!Number.isSafeInteger(maxWindow) || maxWindow < 1) throw new RangeError(`maxWindow must be a positive integer, got ${maxWindow}`);
  const db = new Database(options.path);
  db.pragma("journal_mode = WAL");
  // FULL: a recorded seq must survive a power cut, or a redelivery after it would reach the sinks twice.
  db.pragma("synchronous = FULL");
  db.exec(`
    CREATE TABLE IF NOT EXISTS dedupe_gateway (
      gateway_id  TEXT PRIMARY KEY,
      high_water  INTEGER NOT NULL,
      window_size INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS dedupe_window (
      gateway_id TEXT NOT NULL,
      seq        INTEGER NOT NULL,
      PRIMARY KEY (gateway_id, seq)
    ) WITHOUT ROWID;
  `);
  const getGateway = db.prepare<[string], GatewayRow>("SELECT high_water, window_size FROM dedupe_gateway WHERE gateway_id = ?");
  const putGateway = db.prepare<[string, number, number]>(
    "INSERT INTO dedupe_gateway (gateway_id, high_water, window_size) VALUES (?, ?, ?) ON CONFLICT(gateway_id) DO UPDATE SET high_water = excluded.high_water, window_size = excluded.window_size",
  );
  const inWindow = db.prepare<[string, number], { one: number }>("SELECT 1 AS one FROM dedupe_window WHERE gateway_id = ? AND seq = ?");
  const addToWindow = db.prepare<[string, number]>("INSERT OR IGNORE INTO dedupe_window (gateway_id, seq) VALUES (?, ?)");
  const removeFromWindow = db.prepare<[string, number]>("DELETE FROM dedupe_window WHERE gateway_id = ? AND seq = ?");
  const lowestInWindow = db.prepare<[string], { seq: number }>("SELECT seq FROM dedupe_window WHERE gateway_id = ? ORDER BY seq LIMIT 1");

  function checkSeq(gatewayId: string, seq: number): void {
    if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError(`seq must be a positive safe integer, got ${seq}`);
    if (gatewayId === "") throw new RangeError("gatewayId must not be empty");
  }

  function seenNow(gatewayId: string, seq: number): boolean {
    const row = getGateway.get(gatewayId);
    if (row !== undefined && seq <= row.high_water) return true;
    return inWindow.get(gatewayId, seq) !== undefined;
  }

  function recordOne(gatewayId: string, seq: number): RecordOutcome {
    const row = getGateway.get(gatewayId) ?? { high_water: 0, window_size: 0 };
    let highWater = row.high_water;
    let windowSize = row.window_size;
    if (seq <= highWater) return { alreadySeen: true, gaveUpSeqs: 0 };
    if (seq === highWater + 1) {
      highWater = seq;
    } else {
      if (addToWindow.run(gatewayId, seq).changes === 0) return { alreadySeen: true, gaveUpSeqs: 0 };
      windowSize++;
    }
    let gaveUpSeqs = 0;
    for (;;) {
      // Pull H up through the contiguous seqs that arrived early.
      while (windowSize > 0 && removeFromWindow.run(gatewayId, highWater + 1).changes === 1) {
        highWater++;
        windowSize--;
      }
      if (windowSize <= maxWindow) break;
      // Over the bound: give up the lowest gap.
      const lowest = lowestInWindow.get(gatewayId);
      if (lowest === undefined) {
        windowSize = 0;
        break;
      }
      gaveUpSeqs += lowest.seq - highWater - 1;
      highWater = lowest.seq - 1;
    }
    putGateway.run(gatewayId, highWater, windowSize);
    return { alreadySeen: false, gaveUpSeqs };
  }
  const recordTx = db.transaction(recordOne);
  const recordManyTx = db.transaction((keys: readonly DedupeKey[]) => {
    let gaveUpSeqs = 0;
    let alreadySeen = 0;
    for (const { gatewayId, seq } of keys) {
      const outcome = recordOne(gatewayId, seq);
      gaveUpSeqs += outcome.gaveUpSeqs;
      if (outcome.alreadySeen) alreadySeen++;
    }
    return { gaveUpSeqs, alreadySeen };
  });

  return {
    seen(gatewayId, seq) {
      checkSeq(gatewayId, seq);
      return seenNow(gatewayId, seq);
    },
    record(gatewayId, seq) {
      checkSeq(gatewayId, seq);
      return recordTx.immediate(gatewayId, seq);
    },
    recordMany(keys) {
      for (const { gatewayId, seq } of keys) checkSeq(gatewayId, seq);
      return keys.length === 0 ? { gaveUpSeqs: 0, alreadySeen: 0 } : recordManyTx.immediate(keys);
    },
    checkAndRecord(gatewayId, seq) {
      checkSeq(gatewayId, seq);
      return !recordTx.immediate(gatewayId, seq).alreadySeen;
    },
    stateOf(gatewayId) {
      const row = getGateway.get(gatewayId);
      return { highWater: row?.high_water ?? 0, windowSize: row?.window_size ?? 0 };
    },
    close() {
      db.close();
    },
  };
}
