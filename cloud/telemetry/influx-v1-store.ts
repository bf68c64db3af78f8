// TelemetryStore on InfluxDB's 1.x HTTP API through the `influx` package (ARCHITECTURE.md §3, tested against
// Debian's influxd 1.6.7). One measurement, `telemetry`: tags gatewayId, deviceId, pointId, role, channel (only when
// the sample has one: InfluxDB has no empty tag values), unit; one float field, value; millisecond precision with
// the edge's timestamp, so a replay is the same series and time and overwrites (InfluxDB 1.x "duplicate points").
// The database is created on first write if missing (CREATE DATABASE is a no-op when it exists).

import { escape, InfluxDB, type IPoint } from "influx";
import { createBufferedStore, type BufferedStoreOptions } from "./buffered-store.js";
import { downsample } from "./downsample.js";
import { retryableStatus, TELEMETRY_ERROR_CODES as C, TelemetryStoreError } from "./errors.js";
import type { TelemetryBackend, TelemetryPoint, TelemetryQuery, TelemetryRow, TelemetryStore } from "./sink.js";

export const INFLUX_MEASUREMENT = "telemetry";

export interface InfluxV1TelemetryOptions extends BufferedStoreOptions {
  /** http(s)://host:port of the InfluxDB 1.x server. */
  readonly url: string;
  readonly database: string;
  readonly username?: string;
  readonly password?: string;
  /** Per HTTP request; default 10,000 ms. */
  readonly requestTimeoutMs?: number;
}

// The pool of `influx` takes a host out of rotation for a back-off after a failure and then answers "No host
// available" without trying; our buffer does the back-off, so the pool's is switched off (delay 0 = never disabled).
const NO_POOL_BACKOFF = { getDelay: () => 0, next: () => NO_POOL_BACKOFF, reset: () => NO_POOL_BACKOFF };

interface AggregateRow {
  time: Date;
  mean: number;
  min: number;
  max: number;
  last: number;
  count: number;
}

interface RawRow {
  time: Date;
  value: number;
}

/** `influx` throws RequestError (with res.statusCode) for 3xx/4xx and other errors for network trouble and 5xx. */
function classify(err: unknown, what: string): TelemetryStoreError {
  const status = (err as { res?: { statusCode?: number } } | null)?.res?.statusCode;
  const retryable = status === undefined || retryableStatus(status);
  const code = what === "write" ? (retryable ? C.writeFailed : C.writeRejected) : C.queryFailed;
  return new TelemetryStoreError(code, retryable, `InfluxDB 1.x ${what} failed${status === undefined ? "" : ` (HTTP ${status})`}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

function toPoint(r: TelemetryRow): IPoint {
  const tags: Record<string, string> = { gatewayId: r.gatewayId, deviceId: r.deviceId, pointId: r.pointId, role: r.role, unit: r.unit };
  if (r.channel !== undefined && r.channel !== "") tags.channel = r.channel;
  return { measurement: INFLUX_MEASUREMENT, tags, fields: { value: r.value }, timestamp: r.atMs };
}

class InfluxV1Backend implements TelemetryBackend {
  readonly name = "influx-v1";
  private readonly influx: InfluxDB;
  private databaseReady = false;

  constructor(private readonly options: InfluxV1TelemetryOptions) {
    const url = new URL(options.url);
    this.influx = new InfluxDB({
      host: url.hostname,
      port: Number(url.port || (url.protocol === "https:" ? 443 : 80)),
      protocol: url.protocol === "https:" ? "https" : "http",
      ...(url.pathname === "/" ? {} : { path: url.pathname }),
      database: options.database,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
      pool: { maxRetries: 0, requestTimeout: options.requestTimeoutMs ?? 10_000, backoff: NO_POOL_BACKOFF },
    });
  }

  async writeBatch(rows: readonly TelemetryRow[]): Promise<void> {
    try {
      if (!this.databaseReady) {
        await this.influx.createDatabase(this.options.database);
        this.databaseReady = true;
      }
      await this.influx.writePoints(rows.map(toPoint), { precision: "ms", database: this.options.database });
    } catch (err) {
      throw classify(err, "write");
    }
  }

  async query(q: TelemetryQuery): Promise<TelemetryPoint[]> {
    const where = [
      `deviceId = ${escape.stringLit(q.deviceId)}`,
      `pointId = ${escape.stringLit(q.pointId)}`,
      ...(q.gatewayId === undefined ? [] : [`gatewayId = ${escape.stringLit(q.gatewayId)}`]),
      `time >= ${Math.trunc(q.fromMs)}ms`,
      `time < ${Math.trunc(q.toMs)}ms`,
    ].join(" AND ");
    const from = `${escape.quoted(INFLUX_MEASUREMENT)}`;
    try {
      if (q.everyMs === undefined) {
        // Raw rows of every matching series; samples of several gateways at one instant merge into one point, as in SQL.
        const rows = await this.influx.query<RawRow>(`SELECT value FROM ${from} WHERE ${where}`, { precision: "ms", database: this.options.database });
        return downsample(rows.map((r) => ({ atMs: r.time.getTime(), value: r.value })));
      }
      // InfluxQL aligns GROUP BY time() buckets to the epoch and labels each by its start; fill(none) omits empty ones.
      const sql = `SELECT mean(value) AS mean, min(value) AS min, max(value) AS max, last(value) AS last, count(value) AS count FROM ${from} WHERE ${where} GROUP BY time(${q.everyMs}ms) fill(none)`;
      const rows = await this.influx.query<AggregateRow>(sql, { precision: "ms", database: this.options.database });
      return rows.map((r) => ({ atMs: r.time.getTime(), mean: r.mean, min: r.min, max: r.max, last: r.last, count: r.count }));
    } catch (err) {
      if (/database not found/i.test(String(err))) return [];
      throw classify(err, "query");
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export function openInfluxV1TelemetryStore(options: InfluxV1TelemetryOptions): TelemetryStore {
  return createBufferedStore(new InfluxV1Backend(options), options);
}
