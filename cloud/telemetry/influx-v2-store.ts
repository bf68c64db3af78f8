// TelemetryStore on the InfluxDB 2.x write API (/api/v2/write) through @influxdata/influxdb-client, tested against
// VictoriaMetrics (Debian `victoria-metrics`), which accepts that API: Debian's influxd 1.6.7 does not have it.
// The same line layout as the 1.x store — measurement `telemetry`, tags gatewayId, deviceId, pointId, role, channel
// (when present), unit, float field value, millisecond timestamps from the edge.
//
// Writes: one WriteApi per batch with the client's own retries OFF (maxRetries 0): its retry buffer is memory-only
// and bounded separately (performance-notes.md), so the shared buffered-store does the retrying, bounding and
// counting, as for every other backend. writeFailed returns the rejection so the client neither retries nor logs.
//
// Queries, as far as VictoriaMetrics allows: the client's QueryApi speaks Flux, which VictoriaMetrics does not, and
// its Prometheus query_range evaluates lookbehind windows (t − step, t] rather than epoch-aligned [start, start +
// step) buckets. So query() reads the raw samples through VictoriaMetrics' /api/v1/export (metric `telemetry_value`:
// VictoriaMetrics names an Influx field `{measurement}_{field}`) and buckets them here with downsample() — exact, the
// same answer as SQL and InfluxQL, at the cost of moving every raw sample in the range to the cloud process. Against
// a genuine InfluxDB 2.x server writes work but query() fails with CLOUD_TELEMETRY_QUERY_FAILED (no Flux query yet).
// Replays overwrite only when VictoriaMetrics runs with -dedup.minScrapeInterval=1ms (one sample per series and ms);
// query() also keeps one sample per series and timestamp, so a replay never double-counts even before dedup runs.

import { InfluxDB, Point, type WriteApi } from "@influxdata/influxdb-client";
import { createBufferedStore, type BufferedStoreOptions } from "./buffered-store.js";
import { dedupeByTime, downsample, type RawSample } from "./downsample.js";
import { retryableStatus, TELEMETRY_ERROR_CODES as C, TelemetryStoreError } from "./errors.js";
import { INFLUX_MEASUREMENT } from "./influx-v1-store.js";
import type { TelemetryBackend, TelemetryPoint, TelemetryQuery, TelemetryRow, TelemetryStore } from "./sink.js";

/** VictoriaMetrics' name for field `value` of measurement `telemetry` written through the Influx line protocol. */
export const VICTORIA_METRIC_NAME = `${INFLUX_MEASUREMENT}_value`;

export interface InfluxV2TelemetryOptions extends BufferedStoreOptions {
  /** Base URL of a server speaking /api/v2/write (VictoriaMetrics for query support). */
  readonly url: string;
  /** Ignored by VictoriaMetrics; required by InfluxDB 2.x. */
  readonly token?: string;
  readonly org?: string;
  readonly bucket?: string;
  /** Per HTTP request; default 10,000 ms. */
  readonly requestTimeoutMs?: number;
}

interface ExportLine {
  metric: Record<string, string>;
  values: number[];
  timestamps: number[];
}

function classify(err: unknown, code: typeof C.writeFailed | typeof C.queryFailed): TelemetryStoreError {
  const status = (err as { statusCode?: number } | null)?.statusCode;
  const retryable = status === undefined || retryableStatus(status);
  const finalCode = code === C.writeFailed && !retryable ? C.writeRejected : code;
  return new TelemetryStoreError(finalCode, retryable, `InfluxDB 2.x API ${code === C.writeFailed ? "write" : "query"} failed${status === undefined ? "" : ` (HTTP ${status})`}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

function toPoint(r: TelemetryRow): Point {
  const p = new Point(INFLUX_MEASUREMENT).tag("gatewayId", r.gatewayId).tag("deviceId", r.deviceId).tag("pointId", r.pointId).tag("role", r.role).tag("unit", r.unit);
  if (r.channel !== undefined && r.channel !== "") p.tag("channel", r.channel);
  return p.floatField("value", r.value).timestamp(new Date(r.atMs));
}

/** A PromQL/MetricsQL string literal: double quotes with backslash escapes, which JSON's are a subset of. */
function labelValue(v: string): string {
  return JSON.stringify(v);
}

class InfluxV2Backend implements TelemetryBackend {
  readonly name = "influx-v2";
  private readonly client: InfluxDB;
  private readonly base: string;

  constructor(private readonly options: InfluxV2TelemetryOptions) {
    this.base = options.url.replace(/\/+$/, "");
    this.client = new InfluxDB({ url: this.base, token: options.token ?? "", timeout: options.requestTimeoutMs ?? 10_000 });
  }

  private writeApi(): WriteApi {
    return this.client.getWriteApi(this.options.org ?? "agri-edge", this.options.bucket ?? "telemetry", "ms", {
      maxRetries: 0,
      flushInterval: 0,
      // Larger than any batch we hand it, so it sends exactly one request per close().
      batchSize: 1_000_000,
      maxBufferLines: 1_000_000,
      writeFailed: (error: Error) => Promise.reject(error),
    });
  }

  async writeBatch(rows: readonly TelemetryRow[]): Promise<void> {
    const api = this.writeApi();
    api.writePoints(rows.map(toPoint));
    try {
      await api.close();
    } catch (err) {
      throw classify(err, C.writeFailed);
    }
  }

  async query(q: TelemetryQuery): Promise<TelemetryPoint[]> {
    const selector = [`deviceId=${labelValue(q.deviceId)}`, `pointId=${labelValue(q.pointId)}`, ...(q.gatewayId === undefined ? [] : [`gatewayId=${labelValue(q.gatewayId)}`])].join(",");
    const params = new URLSearchParams({ "match[]": `${VICTORIA_METRIC_NAME}{${selector}}`, start: (q.fromMs / 1000).toFixed(3), end: (q.toMs / 1000).toFixed(3) });
    let text: string;
    try {
      const res = await fetch(`${this.base}/api/v1/export?${params.toString()}`, { signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? 10_000) });
      text = await res.text();
      if (!res.ok) throw Object.assign(new Error(`VictoriaMetrics export answered ${res.status}: ${text.slice(0, 300)}`), { statusCode: res.status });
    } catch (err) {
      throw classify(err, C.queryFailed);
    }
    const samples: RawSample[] = [];
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      const series = JSON.parse(line) as ExportLine;
      const raw = series.timestamps.map((atMs, i) => ({ atMs, value: series.values[i] ?? NaN }));
      // Export's end is inclusive; the port's toMs is not.
      for (const s of dedupeByTime(raw)) if (s.atMs >= q.fromMs && s.atMs < q.toMs && Number.isFinite(s.value)) samples.push(s);
    }
    return downsample(samples, q.everyMs);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export function openInfluxV2TelemetryStore(options: InfluxV2TelemetryOptions): TelemetryStore {
  return createBufferedStore(new InfluxV2Backend(options), options);
}
