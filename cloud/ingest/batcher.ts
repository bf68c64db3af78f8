// The ingest's group commit and its back-pressure, in one small queue with no MQTT in it: messages are collected
// while the previous batch is being stored (or for lingerMs when the ingest was idle), handed to `flush` as one batch
// of at most maxBatch, one batch at a time, and the queue holds at most maxPending messages (queued plus the batch in
// flight). add() calls `resume` at once while there is room; past the bound it keeps `resume` until a batch is done.
//
// Why this shape: every batch costs a fixed price (one fsync per durable SQLite file, ≈ 3 ms on this disk), so the
// batch must grow with the load instead of closing on a fixed timer — while one batch commits, the next fills up.
// And the ingest's `resume` is what lets mqtt.js parse the next packet off the socket: withholding it stops reading,
// TCP fills up, and the broker stops delivering to us (aedes waits for the socket to drain) — a flood slows its
// publishers instead of growing our heap. In the embedded mode (embedded.ts) `resume` admits the next publish the
// broker handed over, and the publishes not admitted keep their gateways' PUBACKs waiting.

export interface BatcherOptions<T> {
  /** Largest batch handed to flush. */
  readonly maxBatch: number;
  /** Queued plus in-flight items beyond which add() withholds resume; at least maxBatch. */
  readonly maxPending: number;
  /** How long an idle batcher waits for company after the first item; 0 flushes on the next turn. */
  readonly lingerMs: number;
  /** Items that must not linger (a fire alarm): their batch goes as soon as the one being stored is done. */
  readonly urgent?: (item: T) => boolean;
  /** Store one batch. A rejection is the caller's to handle: the batcher carries on with the next batch. */
  readonly flush: (items: T[]) => Promise<void>;
}

export interface Batcher<T> {
  /** Queue an item; `resume` is called once there is room for the next one (at once, usually). */
  add(item: T, resume: () => void): void;
  /** Queued plus in-flight items. */
  readonly pending: number;
  /** Largest `pending` seen (the status page and the back-pressure test). */
  readonly maxPendingSeen: number;
  /** Resolves once everything queued so far has been flushed. */
  drained(): Promise<void>;
  /** Stop flushing; queued items are dropped (their messages were never acknowledged, so they come back). */
  close(): void;
}

export function createBatcher<T>(options: BatcherOptions<T>): Batcher<T> {
  const { maxBatch, lingerMs, flush } = options;
  if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
  if (!Number.isSafeInteger(options.maxPending) || options.maxPending < maxBatch) throw new RangeError(`maxPending must be an integer ≥ maxBatch (${maxBatch}), got ${options.maxPending}`);
  if (!Number.isFinite(lingerMs) || lingerMs < 0) throw new RangeError(`lingerMs must be ≥ 0, got ${lingerMs}`);
  const maxPending = options.maxPending;
  let queue: T[] = [];
  let inFlight = 0;
  let flushing = false;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let maxPendingSeen = 0;
  let urgentQueued = 0;
  const isUrgent = options.urgent ?? ((): boolean => false);
  const parked: (() => void)[] = [];
  let drainWaiters: (() => void)[] = [];

  const pending = (): number => queue.length + inFlight;

  function releaseParked(): void {
    // Re-checked after each resume: a resumed reader may add its next items synchronously.
    while (parked.length > 0 && pending() < maxPending) parked.shift()?.();
  }

  function schedule(): void {
    if (flushing || closed || queue.length === 0) return;
    if (queue.length >= maxBatch || urgentQueued > 0) {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      void runBatch();
      return;
    }
    timer ??= setTimeout(() => {
      timer = undefined;
      void runBatch();
    }, lingerMs);
  }

  async function runBatch(): Promise<void> {
    if (flushing || closed || queue.length === 0) return;
    flushing = true;
    const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch);
    queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch);
    inFlight = batch.length;
    for (const item of batch) if (isUrgent(item)) urgentQueued--;
    try {
      await flush(batch);
    } catch {
      // flush owns its errors (it logs, counts and withholds the acknowledgements); the queue goes on.
    } finally {
      inFlight = 0;
      flushing = false;
    }
    releaseParked();
    if (queue.length === 0) {
      for (const w of drainWaiters.splice(0)) w();
      return;
    }
    // A full batch goes at once. Otherwise the next one lingers like the first: the broker hands messages over a few
    // per event-loop turn, and a batch of one turn's worth would pay the fixed cost (the fsyncs) far too often.
    schedule();
  }

  return {
    add(item, resume) {
      if (closed) return;
      queue.push(item);
      if (isUrgent(item)) urgentQueued++;
      maxPendingSeen = Math.max(maxPendingSeen, pending());
      if (pending() < maxPending) resume();
      else parked.push(resume);
      schedule();
    },
    get pending() {
      return pending();
    },
    get maxPendingSeen() {
      return maxPendingSeen;
    },
    drained() {
      if (pending() === 0) return Promise.resolve();
      return new Promise((resolve) => drainWaiters.push(resolve));
    },
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      queue = [];
      urgentQueued = 0;
      parked.length = 0;
      for (const w of drainWaiters.splice(0)) w();
      drainWaiters = [];
    },
  };
}
