// The behaviour every TelemetryStore shares, wrapped around a TelemetryBackend (undici-style: a narrow port, the
// behaviour in a wrapper): a bounded FIFO of rows, written in batches of at most 5,000 lines, one batch in flight at
// a time, retried with capped exponential back-off and jitter while the database is down.
//
// Why our own buffer and not the 2.x client's: @influxdata/influxdb-client retries from a memory-only buffer with its
// own bound and drops silently (performance-notes.md), and the 1.x `influx` pool retries not at all for writes;
// one buffer here gives every backend the same bound, the same counters and the same outage behaviour.
//
// The bound is on queued rows (maxBufferedSamples) plus the one batch in flight. When a write would exceed it the
// OLDEST queued rows are dropped and counted (droppedForBound): the newest state of a sensor is worth more than its
// history, and write() never waits for the database, so ingest is never blocked by an outage.

import type { TelemetrySample } from "../../protocols/mqtt/messages.js";
import { isRetryable, TELEMETRY_ERROR_CODES as C, TelemetryStoreError } from "./errors.js";
import { DEFAULT_MAX_BUFFERED_SAMPLES, MAX_BATCH_LINES, type TelemetryBackend, type TelemetryPoint, type TelemetryQuery, type TelemetryRow, type TelemetryStats, type TelemetryStore } from "./sink.js";

export interface TelemetryLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface BufferedStoreOptions {
  /** Queued samples beyond which the oldest are dropped; default DEFAULT_MAX_BUFFERED_SAMPLES (100,000). */
  readonly maxBufferedSamples?: number;
  /** Lines per write, at most MAX_BATCH_LINES (5,000, the default). */
  readonly batchLines?: number;
  /** A partial batch waits at most this long for company before it is written; default 1000 ms. */
  readonly flushIntervalMs?: number;
  /** First retry delay; doubled per failed attempt up to retryMaxMs, then ×[0.5, 1) jitter. Default 100 ms. */
  readonly retryInitialMs?: number;
  /** Default 30,000 ms. */
  readonly retryMaxMs?: number;
  /** How long close() keeps trying to flush; default 5000 ms. */
  readonly closeFlushTimeoutMs?: number;
  readonly log?: TelemetryLog;
  /** Jitter source; default Math.random. */
  readonly random?: () => number;
}

/** The rows a gateway's samples become; throws TelemetryStoreError(badSample) for an `at` that is not a date. */
export function toRows(gatewayId: string, samples: readonly TelemetrySample[]): TelemetryRow[] {
  return samples.map((s) => {
    const atMs = Date.parse(s.at);
    if (!Number.isFinite(atMs)) throw new TelemetryStoreError(C.badSample, false, `sample ${s.deviceId}/${s.pointId} has an unreadable time ${JSON.stringify(s.at)}`);
    if (!Number.isFinite(s.value)) throw new TelemetryStoreError(C.badSample, false, `sample ${s.deviceId}/${s.pointId} has a non-finite value`);
    return { gatewayId, deviceId: s.deviceId, pointId: s.pointId, role: s.role, ...(s.channel === undefined ? {} : { channel: String(s.channel) }), value: s.value, unit: s.unit, atMs };
  });
}

/** Delay before retry number `attempt` (1-based): initial × 2^(attempt−1), capped, with multiplicative jitter. */
export function retryDelayMs(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(base * (0.5 + random() * 0.5));
}

export function createBufferedStore(backend: TelemetryBackend, options: BufferedStoreOptions = {}): TelemetryStore {
  return new BufferedTelemetryStore(backend, options);
}

class BufferedTelemetryStore implements TelemetryStore {
  private readonly maxBuffered: number;
  private readonly batchLines: number;
  private readonly flushIntervalMs: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly closeFlushTimeoutMs: number;
  private readonly random: () => number;

  private queue: TelemetryRow[] = [];
  private inFlight = 0;
  private draining: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private backoff: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private attempt = 0;
  private closed = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private counters = { written: 0, failedWrites: 0, droppedForBound: 0, rejected: 0, droppedOnClose: 0 };

  constructor(
    private readonly backend: TelemetryBackend,
    private readonly options: BufferedStoreOptions,
  ) {
    this.maxBuffered = options.maxBufferedSamples ?? DEFAULT_MAX_BUFFERED_SAMPLES;
    this.batchLines = Math.min(options.batchLines ?? MAX_BATCH_LINES, MAX_BATCH_LINES);
    this.flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.retryInitialMs = options.retryInitialMs ?? 100;
    this.retryMaxMs = options.retryMaxMs ?? 30_000;
    this.closeFlushTimeoutMs = options.closeFlushTimeoutMs ?? 5000;
    this.random = options.random ?? Math.random;
    if (!(this.maxBuffered >= 1) || !(this.batchLines >= 1)) throw new RangeError("maxBufferedSamples and batchLines must be at least 1");
  }

  write(gatewayId: string, samples: readonly TelemetrySample[]): Promise<void> {
    if (this.closed) return Promise.reject(new TelemetryStoreError(C.closed, false, `telemetry store (${this.backend.name}) is closed`));
    let rows: TelemetryRow[];
    try {
      rows = toRows(gatewayId, samples);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    // push(...rows) would overflow the call stack for very large arrays; a loop does not.
    for (const row of rows) this.queue.push(row);
    this.enforceBound();
    if (this.queue.length >= this.batchLines) this.kick();
    else this.flushTimer ??= setTimeout(() => this.kick(), this.flushIntervalMs).unref();
    return Promise.resolve();
  }

  flush(opts: { readonly timeoutMs?: number } = {}): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter = (): void => {
        clearTimeout(timer);
        resolve();
      };
      if (opts.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.idleWaiters = this.idleWaiters.filter((w) => w !== waiter);
          reject(new TelemetryStoreError(C.flushTimeout, true, `telemetry store (${this.backend.name}) still holds ${this.stats().buffered} samples after ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
      }
      this.idleWaiters.push(waiter);
      this.kick();
    });
  }

  query(q: TelemetryQuery): Promise<TelemetryPoint[]> {
    if (q.everyMs !== undefined && !(Number.isSafeInteger(q.everyMs) && q.everyMs >= 1)) return Promise.reject(new RangeError(`everyMs must be a positive integer, not ${q.everyMs}`));
    return this.backend.query(q);
  }

  stats(): TelemetryStats {
    return { buffered: this.queue.length + this.inFlight, ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.flush({ timeoutMs: this.closeFlushTimeoutMs });
    } catch {
      // The database stayed down: what is left is counted, not waited for.
    }
    this.stopped = true;
    clearTimeout(this.flushTimer);
    this.backoff?.wake();
    // A write in flight may take its own timeout to fail; do not hold close() hostage to it.
    if (this.draining) await Promise.race([this.draining, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    this.counters.droppedOnClose = this.queue.length;
    if (this.queue.length > 0) this.options.log?.warn({ backend: this.backend.name, samples: this.queue.length }, "telemetry store closed with unwritten samples");
    this.queue = [];
    await this.backend.close();
  }

  private idle(): boolean {
    return this.queue.length === 0 && this.inFlight === 0;
  }

  private enforceBound(): void {
    const excess = this.queue.length - this.maxBuffered;
    if (excess <= 0) return;
    this.queue.splice(0, excess);
    this.counters.droppedForBound += excess;
  }

  private kick(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.draining || this.stopped) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      // Rows that arrived during the last write and did not fill a batch wait for the timer like any others.
      if (this.queue.length > 0 && !this.stopped) this.flushTimer ??= setTimeout(() => this.kick(), this.flushIntervalMs).unref();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.stopped) {
      const batch = this.queue.splice(0, this.batchLines);
      this.inFlight = batch.length;
      let failure: unknown;
      try {
        await this.backend.writeBatch(batch);
      } catch (err) {
        failure = err ?? new Error("write failed");
      }
      this.inFlight = 0;
      if (failure === undefined) {
        this.counters.written += batch.length;
        if (this.attempt > 0) this.options.log?.info({ backend: this.backend.name, attempts: this.attempt }, "telemetry writes recovered");
        this.attempt = 0;
      } else {
        this.counters.failedWrites += 1;
        if (!isRetryable(failure)) {
          this.counters.rejected += batch.length;
          this.options.log?.warn({ backend: this.backend.name, err: failure, samples: batch.length }, "telemetry batch rejected; dropped");
        } else {
          // Back at the head of the queue, in order; the bound then drops from the oldest end if new rows came in.
          this.queue = batch.concat(this.queue);
          this.enforceBound();
          this.attempt += 1;
          const delayMs = retryDelayMs(this.attempt, this.retryInitialMs, this.retryMaxMs, this.random);
          this.options.log?.warn({ backend: this.backend.name, err: failure, attempt: this.attempt, delayMs, buffered: this.queue.length }, "telemetry write failed; retrying");
          await this.sleep(delayMs);
        }
      }
      if (this.idle()) for (const w of this.idleWaiters.splice(0)) w();
    }
    if (this.idle()) for (const w of this.idleWaiters.splice(0)) w();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.backoff = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms).unref();
      this.backoff = { timer, wake };
    });
  }
}
