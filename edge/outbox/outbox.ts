// The outbox port: what the gateway's durable store-and-forward queue promises (ARCHITECTURE.md invariant 8), its
// error codes, and the one serialisation rule every implementation shares so that a re-send is byte-identical.
//
// Lifecycle of a message: append (gets the next per-gateway seq, stored durably with the seq inside the payload) →
// peek (drain order) → publish at QoS 1 → ack(seq) only after the broker's PUBACK. A crash between publish and ack
// re-sends the same bytes; the cloud deduplicates on (gatewayId, seq).

/** Priority as the producer knows it. */
export const OUTBOX_PRIORITIES = ["alarm", "billing", "event", "telemetry"] as const;
export type OutboxPriority = (typeof OUTBOX_PRIORITIES)[number];

/**
 * Drain rank per priority: lower drains first. Billing readings and events share one rank and are ordered by seq
 * between them, so the cloud sees a meter's readings and the events around them (relay opened, meter swapped) in the
 * order the gateway saw them. Alarms overtake everything (invariant 6); plain telemetry waits behind everything.
 */
export const DRAIN_RANK = { alarm: 0, billing: 1, event: 1, telemetry: 2 } as const satisfies Record<OutboxPriority, number>;

export interface OutboxMessage {
  /** Name of the topic in protocols/mqtt/topics.ts, kept so the uplink can pick QoS and retain without parsing. */
  readonly topicName: string;
  /** The concrete topic to publish on. */
  readonly topic: string;
  /** The JSON payload without `seq`: the outbox assigns the seq and injects it. */
  readonly payload: object;
  readonly priority: OutboxPriority;
}

export interface AppendResult {
  /** The seq issued to this message. Issued even when the message was refused, so seqs are never reused. */
  readonly seq: number;
  /**
   * False only for telemetry refused because the outbox is full of alarm/billing/event rows (or the message alone
   * exceeds the byte bound). Alarms, billing readings and events are always stored.
   */
  readonly stored: boolean;
}

export interface OutboxEntry {
  readonly seq: number;
  readonly topicName: string;
  readonly topic: string;
  /** The exact bytes to publish (UTF-8 JSON with `seq` as its first key); identical on every peek and after reopen. */
  readonly payloadJson: string;
  readonly priority: OutboxPriority;
  /** What this entry counts against the byte bound: see entryBytes. */
  readonly bytes: number;
}

export interface OutboxLimits {
  /** Bound on the sum of entryBytes over stored entries. */
  readonly maxBytes: number;
  /** Bound on the number of stored entries. */
  readonly maxCount: number;
}

export interface OutboxClassStats {
  readonly count: number;
  readonly bytes: number;
}

export interface OutboxStats {
  readonly count: number;
  readonly bytes: number;
  /** Per priority; billing and event drain as one class but are counted apart. */
  readonly byClass: Readonly<Record<OutboxPriority, OutboxClassStats>>;
  /** Telemetry deleted (oldest first) or refused to respect the bound; persisted across restarts. */
  readonly droppedTelemetry: number;
  /** Telemetry deleted by thinning (every other row of the oldest half); persisted across restarts. */
  readonly thinnedTelemetry: number;
  /** Smallest seq still stored, or null when empty. */
  readonly oldestSeq: number | null;
  /** Last seq issued (0 before the first append), whether or not that message is still stored. */
  readonly lastSeq: number;
  readonly limits: OutboxLimits;
  /** True when count or bytes exceed the bound: only possible when no telemetry was left to delete. */
  readonly overBound: boolean;
}

/**
 * The outbox port. Synchronous on purpose: the only implementation is an embedded SQLite file, and a synchronous
 * append lets a Modbus-side acknowledgement follow the durable write with nothing in between.
 */
export interface Outbox {
  append(message: OutboxMessage): AppendResult;
  /** All messages in one transaction: either all are issued seqs (in input order) or none is. */
  appendMany(messages: readonly OutboxMessage[]): AppendResult[];
  /** Up to `limit` entries in drain order (rank, then seq). Does not remove anything. */
  peek(limit: number): OutboxEntry[];
  /** Delete an entry; call only after the broker's PUBACK. Returns false for an unknown or already-acked seq. */
  ack(seq: number): boolean;
  /** Delete several entries in one transaction (one disk sync); returns how many were removed. */
  ackMany(seqs: readonly number[]): number;
  stats(): OutboxStats;
  /** Idempotent; every other call afterwards throws EDGE_OUTBOX_CLOSED. */
  close(): void;
}

// ─── errors ─────────────────────────────────────────────────────────────────────────────────────────────────────────

/** Every failure of an outbox, with the cause and the fix an operator needs; the docs' error table reads this. */
export const OUTBOX_ERRORS = {
  CORRUPT: {
    code: "EDGE_OUTBOX_CORRUPT",
    retryable: false,
    cause: "The outbox file is not an SQLite database or SQLite found it damaged (e.g. an SD card that lost a write).",
    fix: "Move the file aside for inspection and start with a new one; unacknowledged messages in it are lost.",
  },
  FOREIGN_SCHEMA: {
    code: "EDGE_OUTBOX_FOREIGN_SCHEMA",
    retryable: false,
    cause: "The file is an SQLite database but not an outbox of a schema version this gateway knows.",
    fix: "Check the configured outbox path; a newer gateway's outbox needs that gateway version.",
  },
  DISK_FULL: {
    code: "EDGE_OUTBOX_DISK_FULL",
    retryable: true,
    cause: "The file system holding the outbox is full.",
    fix: "Free space or lower the outbox bound so that it fits the card with room to spare.",
  },
  IO: {
    code: "EDGE_OUTBOX_IO",
    retryable: true,
    cause: "The outbox file could not be opened, read or written (permissions, missing directory, card I/O error).",
    fix: "Check the path, its permissions and the kernel log for storage errors.",
  },
  BUSY: {
    code: "EDGE_OUTBOX_BUSY",
    retryable: true,
    cause: "Another process holds a write lock on the outbox file.",
    fix: "Run one gateway agent per outbox file.",
  },
  BAD_MESSAGE: {
    code: "EDGE_OUTBOX_BAD_MESSAGE",
    retryable: false,
    cause: "A message's payload is not a JSON object, carries its own seq, or has an unknown priority or empty topic.",
    fix: "A bug in the producer: the outbox assigns seq itself; payloads must be plain JSON objects.",
  },
  BAD_ARGUMENT: {
    code: "EDGE_OUTBOX_BAD_ARGUMENT",
    retryable: false,
    cause: "A limit, seq or option is not a positive safe integer or a known value.",
    fix: "A bug in the caller or the configuration.",
  },
  CLOSED: {
    code: "EDGE_OUTBOX_CLOSED",
    retryable: false,
    cause: "The outbox was used after close().",
    fix: "A shutdown-ordering bug in the caller.",
  },
} as const;

export type OutboxErrorKind = keyof typeof OUTBOX_ERRORS;
export type OutboxErrorCode = (typeof OUTBOX_ERRORS)[OutboxErrorKind]["code"];

export class OutboxError extends Error {
  readonly code: OutboxErrorCode;
  readonly retryable: boolean;
  constructor(kind: OutboxErrorKind, message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = "OutboxError";
    this.code = OUTBOX_ERRORS[kind].code;
    this.retryable = OUTBOX_ERRORS[kind].retryable;
  }
}

// ─── the shared serialisation rule ─────────────────────────────────────────────────────────────────────────────────

/** A message checked and serialised once, before any transaction, so a bad one cannot abort a batch half-way. */
export interface PreparedMessage {
  readonly topicName: string;
  readonly topic: string;
  readonly priority: OutboxPriority;
  readonly rank: number;
  /** JSON of the payload without seq; always starts with "{". */
  readonly bodyJson: string;
}

export function prepareMessage(message: OutboxMessage): PreparedMessage {
  const { topicName, topic, payload, priority } = message;
  if (!Object.hasOwn(DRAIN_RANK, priority)) throw new OutboxError("BAD_MESSAGE", `unknown priority ${JSON.stringify(priority)}`);
  if (typeof topic !== "string" || topic.length === 0) throw new OutboxError("BAD_MESSAGE", "topic must be a non-empty string");
  if (typeof topicName !== "string" || topicName.length === 0) throw new OutboxError("BAD_MESSAGE", "topicName must be a non-empty string");
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new OutboxError("BAD_MESSAGE", `payload on ${topic} must be a JSON object`);
  }
  // Injecting seq into a payload that has one would give JSON with a duplicate key, which parsers resolve differently.
  if (Object.hasOwn(payload, "seq")) throw new OutboxError("BAD_MESSAGE", `payload on ${topic} carries its own seq; the outbox assigns it`);
  let bodyJson: string | undefined;
  try {
    bodyJson = JSON.stringify(payload);
  } catch (err) {
    throw new OutboxError("BAD_MESSAGE", `payload on ${topic} is not serialisable: ${(err as Error).message}`, { cause: err });
  }
  // A toJSON() may turn an object into anything; only an object can carry the seq.
  if (typeof bodyJson !== "string" || !bodyJson.startsWith("{")) {
    throw new OutboxError("BAD_MESSAGE", `payload on ${topic} does not serialise to a JSON object`);
  }
  return { topicName, topic, priority, rank: DRAIN_RANK[priority], bodyJson };
}

/** The final payload: seq first, then the producer's keys, so the seq is visible at a glance in a capture. */
export function payloadWithSeq(bodyJson: string, seq: number): string {
  return bodyJson === "{}" ? `{"seq":${seq}}` : `{"seq":${seq},${bodyJson.slice(1)}`;
}

/**
 * What one entry counts against the byte bound: the UTF-8 bytes of topic and payload, i.e. what it costs on the
 * wire give or take MQTT's fixed header. The file on disk is larger by SQLite's row, index and page overhead.
 */
export function entryBytes(topic: string, payloadJson: string): number {
  return Buffer.byteLength(topic) + Buffer.byteLength(payloadJson);
}

export function assertLimits(limits: OutboxLimits): void {
  for (const key of ["maxBytes", "maxCount"] as const) {
    const value = limits[key];
    if (!Number.isSafeInteger(value) || value <= 0) throw new OutboxError("BAD_ARGUMENT", `${key} must be a positive safe integer, got ${String(value)}`);
  }
}
