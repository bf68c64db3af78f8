// The embedded default TelemetryStore (ARCHITECTURE.md §3): one SQLite file in WAL mode, a table of samples keyed
// by (gateway, device, point, at) so a replayed batch overwrites instead of duplicating, downsampling in SQL
// (GROUP BY the epoch-aligned bucket), and a retention window enforced by a periodic DELETE.

import Database from "better-sqlite3";
import { createBufferedStore, type BufferedStoreOptions } from "./buffered-store.js";
import { TELEMETRY_ERROR_CODES as C, TelemetryStoreError } from "./errors.js";
import type { TelemetryBackend, TelemetryPoint, TelemetryQuery, TelemetryRow, TelemetryStore } from "./sink.js";

export interface SqliteTelemetryOptions extends BufferedStoreOptions {
  readonly path: string;
  /** Samples whose `at` is older than now − retentionMs are deleted; default 30 days. */
  readonly retentionMs?: number;
  /** How often the retention DELETE runs; default 10 minutes. */
  readonly pruneIntervalMs?: number;
  readonly now?: () => number;
}

export interface SqliteTelemetryStore extends TelemetryStore {
  /** Run the retention DELETE now; returns the rows removed. */
  prune(): number;
}

const DEFAULT_RETENTION_MS = 30 * 24 * 3600 * 1000;

// WITHOUT ROWID: the primary key is the only index and the table is clustered on it, so a (device, point, time)
// range scan is one B-tree walk. The key leads with device and point because that is what every query names.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS telemetry_samples (
  device_id  TEXT    NOT NULL,
  point_id   TEXT    NOT NULL,
  at_ms      INTEGER NOT NULL,
  gateway_id TEXT    NOT NULL,
  role       TEXT    NOT NULL,
  channel    TEXT,
  unit       TEXT    NOT NULL,
  value      REAL    NOT NULL,
  PRIMARY KEY (device_id, point_id, at_ms, gateway_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS telemetry_samples_at ON telemetry_samples (at_ms);
`;

interface BucketRow {
  bucket: number;
  mean: number;
  min: number;
  max: number;
  last: number;
  count: number;
}

class SqliteBackend implements TelemetryBackend {
  readonly name = "sqlite";
  private readonly db: Database.Database;
  private readonly upsert: Database.Statement;
  private readonly insertMany: (rows: readonly TelemetryRow[]) => void;
  private readonly pruneStmt: Database.Statement;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    // WAL + NORMAL: a power cut can lose the last transactions but never corrupts; telemetry is not the ledger.
    this.db.pragma("synchronous = NORMAL");
    this.db.exec(SCHEMA);
    this.upsert = this.db.prepare(
      `INSERT INTO telemetry_samples (device_id, point_id, at_ms, gateway_id, role, channel, unit, value)
       VALUES (@deviceId, @pointId, @atMs, @gatewayId, @role, @channel, @unit, @value)
       ON CONFLICT (device_id, point_id, at_ms, gateway_id) DO UPDATE SET
         role = excluded.role, channel = excluded.channel, unit = excluded.unit, value = excluded.value`,
    );
    this.insertMany = this.db.transaction((rows: readonly TelemetryRow[]) => {
      for (const r of rows) this.upsert.run({ ...r, channel: r.channel ?? null });
    });
    this.pruneStmt = this.db.prepare("DELETE FROM telemetry_samples WHERE at_ms < ?");
  }

  writeBatch(rows: readonly TelemetryRow[]): Promise<void> {
    this.insertMany(rows);
    return Promise.resolve();
  }

  query(q: TelemetryQuery): Promise<TelemetryPoint[]> {
    try {
      return Promise.resolve(this.runQuery(q));
    } catch (err) {
      return Promise.reject(new TelemetryStoreError(C.queryFailed, true, `SQLite telemetry query failed: ${String(err)}`, { cause: err }));
    }
  }

  private runQuery(q: TelemetryQuery): TelemetryPoint[] {
    const gatewayClause = q.gatewayId === undefined ? "" : "AND gateway_id = @gatewayId";
    const params = { deviceId: q.deviceId, pointId: q.pointId, fromMs: q.fromMs, toMs: q.toMs, gatewayId: q.gatewayId ?? null, everyMs: q.everyMs ?? 1 };
    // Without everyMs each millisecond is a bucket: the same SQL, and samples of several gateways at one time merge.
    const sql = `
      WITH f AS (
        SELECT at_ms - (at_ms % @everyMs) AS bucket, at_ms, gateway_id, value FROM telemetry_samples
        WHERE device_id = @deviceId AND point_id = @pointId AND at_ms >= @fromMs AND at_ms < @toMs ${gatewayClause}
      )
      SELECT bucket, avg(value) AS mean, min(value) AS min, max(value) AS max, count(*) AS count,
        (SELECT l.value FROM f AS l WHERE l.bucket = f.bucket ORDER BY l.at_ms DESC, l.gateway_id DESC LIMIT 1) AS last
      FROM f GROUP BY bucket ORDER BY bucket`;
    const rows = this.db.prepare(sql).all(params) as BucketRow[];
    return rows.map((r) => ({ atMs: r.bucket, mean: r.mean, min: r.min, max: r.max, last: r.last, count: r.count }));
  }

  prune(olderThanMs: number): number {
    return this.pruneStmt.run(olderThanMs).changes;
  }

  close(): Promise<void> {
    if (this.db.open) this.db.close();
    return Promise.resolve();
  }
}

export function openSqliteTelemetryStore(options: SqliteTelemetryOptions): SqliteTelemetryStore {
  const backend = new SqliteBackend(options.path);
  const store = createBufferedStore(backend, options);
  const now = options.now ?? Date.now;
  const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
  const prune = (): number => backend.prune(now() - retentionMs);
  const pruneTimer = setInterval(() => {
    try {
      prune();
    } catch (err) {
      options.log?.warn({ err }, "telemetry retention prune failed");
    }
  }, options.pruneIntervalMs ?? 600_000).unref();
  return {
    write: (gatewayId, samples) => store.write(gatewayId, samples),
    flush: (opts) => store.flush(opts),
    query: (q) => store.query(q),
    stats: () => store.stats(),
    close: async () => {
      clearInterval(pruneTimer);
      await store.close();
    },
    prune,
  };
}
