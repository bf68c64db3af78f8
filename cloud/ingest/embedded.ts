// The ingest of the one-box cloud (embedded aedes): the broker hands every gateway uplink its ACL allowed straight
// to the store path (pipeline.ts) from aedes's authorizePublish hook, and the hook's callback — after which aedes
// PUBACKs a QoS 1 PUBLISH and forwards it — is called only once that message's batch has committed. So a gateway
// deletes a billing reading or an alarm from its durable outbox only when the cloud has it on disk (invariants 6
// and 8): a cloud that dies in between leaves it unacknowledged, and the gateway sends it again after reconnecting.
// aedes alone PUBACKs a QoS 1 PUBLISH before any subscriber has seen it (lib/handlers/publish.js), so an ingest
// that subscribes, as ingest.ts does against an external broker, cannot give that guarantee here.
//
// Verdicts (pipeline.ts): stored, duplicate and invalid messages are acknowledged (callback(null)); a message whose
// sink or dedupe record failed is refused (callback(error)): MQTT 3.1.1 has no negative PUBACK, so aedes closes
// that gateway's connection, and the gateway resends from its outbox after it reconnects (with its back-off). The
// messages queued behind a failure on the same connection are refused unprocessed, so that a gateway's backlog does
// not skip ahead of a message that failed.
//
// Back-pressure: at most maxPendingMessages are queued or being stored. Past that a handed-over message waits
// here unparsed (aedes holds its packet anyway), its callback pending: aedes reads nothing more from that
// gateway's socket until every PUBLISH of its last read is answered, so the gateways' QoS 1 windows fill and the
// backlog waits in their outboxes. A fire alarm skips that wait (not the batch being stored).

import { AgriError } from "../../protocols/errors.js";
import { matchTopic } from "../../protocols/mqtt/topics.js";
import { openDedupeStore, type DedupeStore } from "./dedupe.js";
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  createPipeline,
  isAcknowledged,
  zeroCounters,
  type IngestBatchOptions,
  type IngestCounters,
  type IngestLog,
  type IngestSinks,
  type Judged,
} from "./pipeline.js";

/** One gateway uplink, as the broker hands it over once its ACL allowed it. */
export interface HandedUplink {
  readonly topic: string;
  readonly payload: Buffer;
  /** One value per MQTT connection (the broker's client object): a failure refuses the rest of that connection. */
  readonly connection: object;
}

/** done(null): committed (or a duplicate, or invalid and dropped) — acknowledge; done(error): do not acknowledge. */
export type UplinkDone = (error: Error | null) => void;

export interface EmbeddedIngestOptions {
  readonly sinks: IngestSinks;
  readonly dedupePath: string;
  readonly dedupeWindow?: number;
  readonly log: IngestLog;
  /** Default 256 KiB; the broker's own payload limit should be at or below it. */
  readonly maxPayloadBytes?: number;
  readonly batch?: IngestBatchOptions;
}

export interface EmbeddedIngest {
  readonly counters: Readonly<IngestCounters>;
  /** Always true while running: there is no connection of its own to lose. */
  readonly connected: boolean;
  /** Messages queued plus being stored now, and the most seen: bounded by maxPendingMessages. */
  readonly pending: number;
  readonly maxPendingSeen: number;
  /** Handed-over messages waiting for room in the queue (their publishers' windows are filling). */
  readonly waiting: number;
  /** The broker's uplink port (broker.ts attachUplinks). */
  handle(uplink: HandedUplink, done: UplinkDone): void;
  /** Stops taking messages (they are refused), finishes the batch being stored, refuses what was queued. */
  stop(): Promise<void>;
}

/** Why a gateway's uplink was not acknowledged; the gateway sends it again after reconnecting. */
export class UplinkNotStoredError extends AgriError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("INGEST_UPLINK_NOT_STORED", true, message, options);
  }
}

interface Entry extends HandedUplink {
  readonly done: UplinkDone;
}

export function startEmbeddedIngest(options: EmbeddedIngestOptions): EmbeddedIngest {
  const { log } = options;
  const counters = zeroCounters();
  const dedupe: DedupeStore = openDedupeStore({ path: options.dedupePath, ...(options.dedupeWindow === undefined ? {} : { maxWindow: options.dedupeWindow }) });
  // Connections that had a message refused: the rest of what they sent is refused too (aedes is closing them).
  const failedConnections = new WeakSet<object>();
  let stopped = false;

  function judge(batch: readonly Judged<Entry>[]): void {
    for (const { item, verdict } of batch) {
      if (isAcknowledged(verdict)) {
        item.done(null);
        continue;
      }
      failedConnections.add(item.connection);
      item.done(
        verdict.kind === "failed"
          ? new UplinkNotStoredError("uplink not stored; send it again", { cause: verdict.error })
          : new UplinkNotStoredError(stopped ? "ingest stopping; send it again" : "an earlier uplink on this connection was not stored; send it again"),
      );
    }
  }

  const pipeline = createPipeline<Entry>({
    sinks: options.sinks,
    dedupe,
    log,
    maxPayloadBytes: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
    batch: options.batch,
    counters,
    stale: (entry) => stopped || failedConnections.has(entry.connection),
    judge,
  });

  // Messages waiting for room, in arrival order; `full` while the pipeline has not called the last add's resume.
  let waiting: Entry[] = [];
  let full = false;
  let pumping = false;
  function pump(): void {
    if (pumping) return;
    pumping = true;
    try {
      while (!full && waiting.length > 0) {
        const next = waiting;
        waiting = [];
        let i = 0;
        for (; i < next.length && !full; i++) {
          full = true;
          // resume runs synchronously while there is room, and later (from the pipeline) once there is again.
          pipeline.add(next[i] as Entry, () => {
            full = false;
            pump();
          });
        }
        if (i < next.length) waiting = next.slice(i).concat(waiting);
      }
    } finally {
      pumping = false;
    }
  }

  let stopping: Promise<void> | undefined;
  return {
    counters,
    get connected() {
      return !stopped;
    },
    get pending() {
      return pipeline.pending;
    },
    get maxPendingSeen() {
      return pipeline.maxPendingSeen;
    },
    get waiting() {
      return waiting.length;
    },
    handle(uplink, done) {
      if (stopped || failedConnections.has(uplink.connection)) {
        counters.held++;
        done(new UplinkNotStoredError(stopped ? "ingest stopping; send it again" : "an earlier uplink on this connection was not stored; send it again"));
        return;
      }
      const entry: Entry = { ...uplink, done };
      // A fire alarm does not wait for room behind other gateways' backlog (invariant 6); it may exceed the bound by
      // the few alarms in flight. Not past its own connection's earlier messages: PUBACKs keep their order.
      if (matchTopic(uplink.topic)?.name === "alarm" && !waiting.some((w) => w.connection === uplink.connection)) {
        pipeline.add(entry, () => undefined);
        return;
      }
      waiting.push(entry);
      pump();
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        // Refused unprocessed: stale from now on, so the queue drains at once after the batch being stored.
        for (const entry of waiting.splice(0)) {
          counters.held++;
          entry.done(new UplinkNotStoredError("ingest stopping; send it again"));
        }
        await pipeline.drained();
        pipeline.close();
        dedupe.close();
      })();
      return stopping;
    },
  };
}
