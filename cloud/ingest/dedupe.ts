// The ingest's durable memory of which uplinks it has already handed to the sinks, keyed on (gatewayId, seq)
// (ARCHITECTURE.md invariant 8). Per gateway it keeps the seqs recorded so far as disjoint, non-adjacent ranges
// [lo, hi]. Out-of-order delivery is normal (a redelivered message after a reconnect, a backlog drained alarms and
// billing first after an outage, telemetry the edge thinned and will never send), so a gap between two ranges is
// simply "not recorded": it stays unseen however long it lasts and however far later seqs run ahead.
//
// The one rule that must never bend: seen() is true ONLY for a seq that really was recorded. A false "seen" drops an
// acknowledged message (telemetry, events and alarms rely on this store; only billing sinks are idempotent); a false
// "not seen" costs at worst one duplicate write. So when memory has to be bounded, the store forgets, it never guesses.
//
// The bound: at most maxWindow ranges per gateway (rows of dedupe_range; 64 bytes each on disk with its index,
// measured with a 17-character gateway id, so the default 16384 is ~1 MB for a gateway at its worst, and a gateway
// that delivers in order holds one row). The file is therefore bounded by gateways × maxWindow rows.
// Going over it forgets the least recently extended range — its seqs become "not seen" again, counted in gaveUpSeqs.
// Least recently extended because a redelivery only ever repeats what the edge has not yet seen acknowledged, i.e.
// the most recently recorded seqs; a range untouched for longest holds seqs acknowledged longest ago. The default
// keeps an outage of ~11 days of billing drained before its telemetry (one range per billing seq) without forgetting.
//
// Files written by the old high-water-mark schema (dedupe_gateway.high_water + dedupe_window) are converted on open:
// [1, H] and the windowed seqs become ranges. Gaps the old schema had already given up cannot be recovered.

import Database from "better-sqlite3";

export interface DedupeStore {
  /** Whether (gatewayId, seq) was recorded and not since forgotten to keep the store bounded. Never true otherwise. */
  seen(gatewayId: string, seq: number): boolean;
  /** Record (gatewayId, seq) as handled; one transaction. */
  record(gatewayId: string, seq: number): RecordOutcome;
  /**
   * Record many (gatewayId, seq) in ONE transaction (one fsync: the ingest's group commit). Returns the recorded seqs
   * forgotten in total to stay bounded, and how many of the keys had been recorded before.
   */
  recordMany(keys: readonly DedupeKey[]): { readonly gaveUpSeqs: number; readonly alreadySeen: number };
  /** seen then record in one transaction: true when it was new (and is now recorded). */
  checkAndRecord(gatewayId: string, seq: number): boolean;
  /** How many ranges a gateway holds and its highest recorded seq (status page, tests). */
  stateOf(gatewayId: string): { readonly ranges: number; readonly highestSeq: number };
  close(): void;
}

export interface DedupeKey {
  readonly gatewayId: string;
  readonly seq: number;
}

export interface RecordOutcome {
  readonly alreadySeen: boolean;
  /**
   * Recorded seqs forgotten to keep the gateway within maxWindow ranges: a later redelivery of one of them reaches
   * the sinks again (a duplicate write, never a loss). Zero unless the gateway holds more than maxWindow gaps.
   */
  readonly gaveUpSeqs: number;
}

export interface DedupeOptions {
  readonly path: string;
  /** Most disjoint ranges of recorded seqs kept per gateway (the bound on memory and disk); see the header. */
  readonly maxWindow?: number;
}

export const DEFAULT_DEDUPE_WINDOW = 16_384;

interface GatewayRow {
  clock: number;
  ranges: number;
}

interface RangeRow {
  lo: number;
  hi: number;
}

// touched is the gateway's clock (a counter of records, not time) when the range last grew: the LRU order for
// forgetting, persisted so that a restart forgets in the same order it would have without one.
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS dedupe_gateway_v2 (
    gateway_id TEXT PRIMARY KEY,
    clock      INTEGER NOT NULL,
    ranges     INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS dedupe_range (
    gateway_id TEXT NOT NULL,
    lo         INTEGER NOT NULL,
    hi         INTEGER NOT NULL,
    touched    INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, lo)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS dedupe_range_lru ON dedupe_range (gateway_id, touched);
`;

export function openDedupeStore(options: DedupeOptions): DedupeStore {
  const maxWindow = options.maxWindow ?? DEFAULT_DEDUPE_WINDOW;
  if (!Number.isSafeInteger(maxWindow) || maxWindow < 1) throw new RangeError(`maxWindow must be a positive integer, got ${maxWindow}`);
  const db = new Database(options.path);
  db.pragma("journal_mode = WAL");
  // FULL: a recorded seq must survive a power cut, or a redelivery after it would reach the sinks twice.
  db.pragma("synchronous = FULL");
  db.transaction(() => {
    db.exec(SCHEMA);
    migrateHighWaterSchema(db);
  }).immediate();

  const getGateway = db.prepare<[string], GatewayRow>("SELECT clock, ranges FROM dedupe_gateway_v2 WHERE gateway_id = ?");
  const putGateway = db.prepare<[string, number, number]>(
    "INSERT INTO dedupe_gateway_v2 (gateway_id, clock, ranges) VALUES (?, ?, ?) ON CONFLICT(gateway_id) DO UPDATE SET clock = excluded.clock, ranges = excluded.ranges",
  );
  const rangeAtOrBelow = db.prepare<[string, number], RangeRow>("SELECT lo, hi FROM dedupe_range WHERE gateway_id = ? AND lo <= ? ORDER BY lo DESC LIMIT 1");
  const rangeStartingAt = db.prepare<[string, number], RangeRow>("SELECT lo, hi FROM dedupe_range WHERE gateway_id = ? AND lo = ?");
  const highestRange = db.prepare<[string], RangeRow>("SELECT lo, hi FROM dedupe_range WHERE gateway_id = ? ORDER BY lo DESC LIMIT 1");
  const leastRecentRange = db.prepare<[string], RangeRow>("SELECT lo, hi FROM dedupe_range WHERE gateway_id = ? ORDER BY touched LIMIT 1");
  const insertRange = db.prepare<[string, number, number, number]>("INSERT INTO dedupe_range (gateway_id, lo, hi, touched) VALUES (?, ?, ?, ?)");
  const setHi = db.prepare<[number, number, string, number]>("UPDATE dedupe_range SET hi = ?, touched = ? WHERE gateway_id = ? AND lo = ?");
  const setLo = db.prepare<[number, number, string, number]>("UPDATE dedupe_range SET lo = ?, touched = ? WHERE gateway_id = ? AND lo = ?");
  const deleteRange = db.prepare<[string, number]>("DELETE FROM dedupe_range WHERE gateway_id = ? AND lo = ?");

  function checkSeq(gatewayId: string, seq: number): void {
    if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError(`seq must be a positive safe integer, got ${seq}`);
    if (gatewayId === "") throw new RangeError("gatewayId must not be empty");
  }

  function seenNow(gatewayId: string, seq: number): boolean {
    const below = rangeAtOrBelow.get(gatewayId, seq);
    return below !== undefined && below.hi >= seq;
  }

  function recordOne(gatewayId: string, seq: number): RecordOutcome {
    const below = rangeAtOrBelow.get(gatewayId, seq);
    if (below !== undefined && below.hi >= seq) return { alreadySeen: true, gaveUpSeqs: 0 };
    const gateway = getGateway.get(gatewayId) ?? { clock: 0, ranges: 0 };
    const clock = gateway.clock + 1;
    let ranges = gateway.ranges;
    const above = seq === Number.MAX_SAFE_INTEGER ? undefined : rangeStartingAt.get(gatewayId, seq + 1);
    const joinsBelow = below !== undefined && below.hi === seq - 1;
    if (joinsBelow && above !== undefined) {
      deleteRange.run(gatewayId, above.lo);
      setHi.run(above.hi, clock, gatewayId, below.lo);
      ranges--;
    } else if (joinsBelow) {
      setHi.run(seq, clock, gatewayId, below.lo);
    } else if (above !== undefined) {
      setLo.run(seq, clock, gatewayId, above.lo);
    } else {
      insertRange.run(gatewayId, seq, seq, clock);
      ranges++;
    }
    let gaveUpSeqs = 0;
    // The range just written carries the newest clock, so with ranges > maxWindow ≥ 1 it is never the one forgotten.
    while (ranges > maxWindow) {
      const oldest = leastRecentRange.get(gatewayId);
      if (oldest === undefined) break;
      deleteRange.run(gatewayId, oldest.lo);
      gaveUpSeqs += oldest.hi - oldest.lo + 1;
      ranges--;
    }
    putGateway.run(gatewayId, clock, ranges);
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
      const gateway = getGateway.get(gatewayId);
      return { ranges: gateway?.ranges ?? 0, highestSeq: highestRange.get(gatewayId)?.hi ?? 0 };
    },
    close() {
      db.close();
    },
  };
}

/** Converts a file of the old schema (high-water mark + window) into ranges, inside the opening transaction. */
function migrateHighWaterSchema(db: Database.Database): void {
  const legacy = db.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('dedupe_gateway', 'dedupe_window')").pluck().get() as number;
  if (legacy !== 2) return;
  const gateways = db.prepare<[], { gateway_id: string; high_water: number }>("SELECT gateway_id, high_water FROM dedupe_gateway").all();
  const windowOf = db.prepare<[string], { seq: number }>("SELECT seq FROM dedupe_window WHERE gateway_id = ? ORDER BY seq");
  const insertRange = db.prepare<[string, number, number, number]>("INSERT INTO dedupe_range (gateway_id, lo, hi, touched) VALUES (?, ?, ?, ?)");
  const putGateway = db.prepare<[string, number, number]>("INSERT INTO dedupe_gateway_v2 (gateway_id, clock, ranges) VALUES (?, ?, ?)");
  for (const { gateway_id: gatewayId, high_water: highWater } of gateways) {
    const ranges: RangeRow[] = highWater > 0 ? [{ lo: 1, hi: highWater }] : [];
    for (const { seq } of windowOf.iterate(gatewayId)) {
      const last = ranges.at(-1);
      if (last !== undefined && seq <= last.hi + 1) last.hi = Math.max(last.hi, seq);
      else ranges.push({ lo: seq, hi: seq });
    }
    ranges.forEach((range, index) => insertRange.run(gatewayId, range.lo, range.hi, index + 1));
    putGateway.run(gatewayId, ranges.length, ranges.length);
  }
  db.exec("DROP TABLE dedupe_window; DROP TABLE dedupe_gateway;");
}
