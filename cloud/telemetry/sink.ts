// The TelemetryStore port: where the ingest's `telemetry` sink puts samples, and where the console reads series back
// (ARCHITECTURE.md §3: an embedded store by default, InfluxDB when configured). Every implementation is the same
// buffered writer (buffered-store.ts) over a TelemetryBackend that only knows how to write one batch and run one
// query, so batching, retry, the bound and the counters behave identically whatever the database; the one contract
// suite (store.contract.ts) checks that against each of them.

import type { TelemetrySample } from "../../protocols/mqtt/messages.js";

/** One stored sample: a TelemetrySample with its gateway and the edge's timestamp in epoch milliseconds. */
export interface TelemetryRow {
  readonly gatewayId: string;
  readonly deviceId: string;
  readonly pointId: string;
  readonly role: TelemetrySample["role"];
  readonly channel?: string;
  readonly value: number;
  readonly unit: TelemetrySample["unit"];
  /** From the edge's `at`, never the cloud's clock: a replayed sample lands on the same key and overwrites. */
  readonly atMs: number;
}

export interface TelemetryQuery {
  readonly deviceId: string;
  readonly pointId: string;
  /** Only this gateway's samples; by default every gateway's (a device id is unique per gateway, not globally). */
  readonly gatewayId?: string;
  /** Inclusive. */
  readonly fromMs: number;
  /** Exclusive. */
  readonly toMs: number;
  /**
   * Downsample into buckets of this width, aligned to the Unix epoch (bucket start = atMs − atMs mod everyMs, as
   * InfluxQL's GROUP BY time() aligns them). Without it, every raw sample is a point of count 1.
   */
  readonly everyMs?: number;
}

export interface TelemetryPoint {
  /** The bucket's start (or the sample's time when not downsampled). */
  readonly atMs: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  /** The value of the latest sample in the bucket. */
  readonly last: number;
  readonly count: number;
}

export interface TelemetryStats {
  /** Samples accepted by write() and not yet stored (queued plus the batch in flight). */
  readonly buffered: number;
  /** Samples the backend confirmed as stored. */
  readonly written: number;
  /** Batch writes that failed (each retry of the same batch counts again). */
  readonly failedWrites: number;
  /** Oldest samples dropped because the buffer reached its bound. */
  readonly droppedForBound: number;
  /** Samples the backend refused as invalid (a non-retryable error): dropped, never retried. */
  readonly rejected: number;
  /** Samples still buffered when close() gave up flushing. */
  readonly droppedOnClose: number;
}

export interface TelemetryStore {
  /**
   * Accept samples from one gateway's batch. Resolves once they are in the bounded in-memory buffer — it never waits
   * for the database, so a database outage cannot stall the ingest; the durability across an outage is the buffer's
   * bound (and, behind it, the gateways' own outboxes). Throws only for samples that are not valid (a bad `at`).
   */
  write(gatewayId: string, samples: readonly TelemetrySample[]): Promise<void>;
  /** Resolves once every sample accepted so far is stored (retrying while the database is down), or rejects after timeoutMs. */
  flush(opts?: { readonly timeoutMs?: number }): Promise<void>;
  query(q: TelemetryQuery): Promise<TelemetryPoint[]>;
  stats(): TelemetryStats;
  /** Flush for up to closeFlushTimeoutMs, then stop retrying and release the connection or file. */
  close(): Promise<void>;
}

/**
 * What a database adapter implements. writeBatch gets at most `maxBatchLines` rows and either stores all of them or
 * throws (a TelemetryBackendError saying whether a retry can help; any other error counts as retryable).
 */
export interface TelemetryBackend {
  readonly name: string;
  writeBatch(rows: readonly TelemetryRow[]): Promise<void>;
  query(q: TelemetryQuery): Promise<TelemetryPoint[]>;
  close(): Promise<void>;
}

/** InfluxData's recommended batch size (performance-notes.md): 5,000 lines per write. */
export const MAX_BATCH_LINES = 5000;

/**
 * The default bound of the write buffer, in samples (about 30 MB of rows). At the design load of one box — a few
 * thousand samples per second — that is tens of seconds of database outage; beyond it the oldest plain samples go
 * (counted in droppedForBound) while gateways keep their own outboxes.
 */
export const DEFAULT_MAX_BUFFERED_SAMPLES = 100_000;
