// The cloud's uplink ingest: one mqtt.js client (an "ingest" cloud user) subscribed at QoS 1 to the uplink subtree —
// or, against an external broker (mosquitto, EMQX), to the MQTT 5 shared subscription $share/<group>/… so several
// workers split the load — and for every message route → dedupe → sink → record → PUBACK, in that order, with the
// messages that arrive together stored together (group commit, batcher.ts).
//
// Group commit. The messages of one batch are routed and checked against the dedupe store, handed to the sinks
// together (billing as ONE call, `billingBatch`, which the prepaid service turns into one ledger transaction), then
// recorded in the dedupe store in ONE transaction, and only then acknowledged. So a batch of a thousand messages
// costs two fsyncs (ledger, dedupe) instead of two thousand, and "a message is acknowledged only after its sink
// resolved" still holds for each one.
//
// Why the ledger is written before the dedupe record (they are different SQLite files, so there is no transaction
// across them): a crash between the two leaves a message charged but not recorded as seen and not acknowledged;
// the broker redelivers it, it reaches the prepaid service again, and the charge is a no-op (charges are keyed
// charge/<meterId>/<registerSeq> and computed from the cumulative register). The other order would, on a crash
// between them, record as seen a message the ledger never got: its redelivery would be dropped as a duplicate and
// the reading lost. So: sinks first, dedupe record second, PUBACK last; sinks must be idempotent on (gatewayId, seq).
//
// Acknowledgement is also the back-pressure. mqtt.js 5 parses the next packet only when `handleMessage`'s callback
// is called, and sends the PUBACK itself only when it is called without an error. This module calls it WITH a
// sentinel error as soon as the message is queued (so mqtt.js moves on without acknowledging), and writes the
// PUBACKs of a batch itself once the batch is stored. (`customHandleAcks` looks like the obvious hook but mqtt.js
// honours it only with protocolVersion 5, and npm's aedes 1.2 speaks MQTT 3.1.1 only.) The queue is bounded
// (maxPendingMessages): past it the callback is withheld, mqtt.js stops reading, TCP fills up and the broker stops
// delivering to us — a flood waits in the publishers' QoS 1 windows, not in this heap.
//
// A sink that throws (or a dedupe store that fails) is counted and logged and its message is NOT recorded as seen
// and NOT acknowledged. MQTT 3.1.1 §4.4 redelivers an unacknowledged QoS 1 message only when the session resumes,
// so the ingest then drops its connection and reconnects after retryDelayMs with the same client id and
// clean: false; the broker resends every unacknowledged message (DUP set) and the sink gets it again. Messages
// queued behind the failure are dropped unacknowledged (counted as held) and come back on the resumed session, so a
// sink that is down stalls the ingest instead of skipping ahead.

import net from "node:net";
import tls from "node:tls";
import mqtt, { type IClientOptions, type IPublishPacket } from "mqtt";
import type { Logger } from "pino";
import type { AlarmMessage, BillingReadings, Birth, CommandAck, EventBatch, Status, TelemetryBatch } from "../../protocols/mqtt/messages.js";
import { matchTopic } from "../../protocols/mqtt/topics.js";
import { SUBSCRIBE_GRANTS } from "../broker/policy.js";
import { createBatcher } from "./batcher.js";
import { openDedupeStore, type DedupeKey, type DedupeStore } from "./dedupe.js";
import { INGEST_REJECT, routeMessage, type AcceptedUplink, type IngestRejectReason } from "./route.js";

export type IngestLog = Pick<Logger, "info" | "warn" | "error">;

type SinkResult = Promise<void> | void;

/** Where accepted uplinks go. Each call must have stored the message when it resolves; throw to have it redelivered. */
export interface IngestSinks {
  telemetry(batch: TelemetryBatch, gatewayId: string): SinkResult;
  billing(readings: BillingReadings, gatewayId: string): SinkResult;
  /** The whole batch, so the sink can store it in one transaction and in order. */
  events(batch: EventBatch, gatewayId: string): SinkResult;
  alarm(message: AlarmMessage, gatewayId: string): SinkResult;
  birth(birth: Birth, gatewayId: string): SinkResult;
  /** Not deduplicated: a retained last value (and the broker-published last will), the newest is the truth. */
  status(status: Status, gatewayId: string): SinkResult;
  commandAck(ack: CommandAck, gatewayId: string): SinkResult;
  /**
   * Optional: the billing messages of one group-commit batch in one call, in arrival order. Resolves with one
   * outcome per item (null when stored, the error when that item must come back); rejects when none was stored.
   * Without it, `billing` is called once per message, one at a time.
   */
  billingBatch?(items: readonly BillingItem[]): Promise<readonly (Error | null)[]>;
}

export interface BillingItem {
  readonly readings: BillingReadings;
  readonly gatewayId: string;
}

/** Group commit and back-pressure (batcher.ts). */
export interface IngestBatchOptions {
  /** Largest batch stored in one go; default 1000 messages (≈ 10,000 readings, a fraction of a second of work). */
  readonly maxMessages?: number;
  /** Messages queued plus in flight before the ingest stops reading its socket; default 2 × maxMessages. */
  readonly maxPendingMessages?: number;
  /**
   * How long a batch waits for more messages after its first one; default 8 ms. The broker hands messages over a
   * few per event-loop turn, so without it batches stay small and pay their fsyncs often (measured by the
   * cloud-ingest bench: 2 ms → ≈ 450 commits and ≈ 21,000 readings/s; 8 ms → ≈ 130 commits and ≈ 24,000–26,000).
   * Alarms do not wait for it.
   */
  readonly lingerMs?: number;
}

export interface IngestOptions {
  /** mqtt://host:port or mqtts://host:port of the cloud broker. */
  readonly url: string;
  /** An "ingest" cloud client of the broker registry. */
  readonly username: string;
  readonly password: string;
  /** Must be the username or username-suffix (policy.ts); stable across restarts so the session resumes. */
  readonly clientId?: string;
  readonly caFile?: Buffer;
  readonly sinks: IngestSinks;
  readonly dedupePath: string;
  readonly dedupeWindow?: number;
  readonly log: IngestLog;
  /** Default 256 KiB; keep the broker's maxPayloadBytes at or below it. */
  readonly maxPayloadBytes?: number;
  /** Wait after a sink failure before reconnecting for the redelivery; default 1000 ms. */
  readonly retryDelayMs?: number;
  readonly keepaliveS?: number;
  readonly batch?: IngestBatchOptions;
  /**
   * Subscribe as a member of this MQTT 5 shared-subscription group ($share/<group>/agri/v1/gw/+/up/#), so that
   * several ingest workers on an external broker split the messages between them. Speaks MQTT 5 then (npm's aedes
   * has no shared subscriptions; mosquitto ≥ 2.0 and EMQX do).
   */
  readonly sharedGroup?: string;
  /** MQTT 5 only: how long the broker keeps this worker's session (and its unacknowledged messages); default 1 day. */
  readonly sessionExpiryS?: number;
}

export interface IngestCounters {
  received: number;
  accepted: number;
  duplicates: number;
  rejected: Record<IngestRejectReason, number>;
  sinkErrors: number;
  /** Messages left unacknowledged behind a sink failure, to come back on the resumed session. */
  held: number;
  /** Seqs the dedupe window gave up (see dedupe.ts): later arrivals from those gaps count as duplicates. */
  dedupeGaveUpSeqs: number;
  connects: number;
  /** Batches stored (group commits). */
  batches: number;
}

export interface RunningIngest {
  readonly counters: Readonly<IngestCounters>;
  readonly connected: boolean;
  /** Messages queued plus in flight now, and the most seen: bounded by maxPendingMessages. */
  readonly pending: number;
  readonly maxPendingSeen: number;
  stop(): Promise<void>;
}

const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

function zeroCounters(): IngestCounters {
  const rejected = Object.fromEntries(Object.values(INGEST_REJECT).map((r) => [r, 0])) as Record<IngestRejectReason, number>;
  return { received: 0, accepted: 0, duplicates: 0, rejected, sinkErrors: 0, held: 0, dedupeGaveUpSeqs: 0, connects: 0, batches: 0 };
}

function deliver(sinks: IngestSinks, uplink: AcceptedUplink): SinkResult {
  switch (uplink.name) {
    case "telemetry":
      return sinks.telemetry(uplink.message, uplink.gatewayId);
    case "billing":
      return sinks.billing(uplink.message, uplink.gatewayId);
    case "events":
      return sinks.events(uplink.message, uplink.gatewayId);
    case "alarm":
      return sinks.alarm(uplink.message, uplink.gatewayId);
    case "birth":
      return sinks.birth(uplink.message, uplink.gatewayId);
    case "status":
      return sinks.status(uplink.message, uplink.gatewayId);
    case "commandAck":
      return sinks.commandAck(uplink.message, uplink.gatewayId);
  }
}

/** Passed to mqtt.js's handleMessage callback: "go on parsing, but do not acknowledge this one yet". */
const DEFERRED = new Error("acknowledged by the ingest after the batch is stored");

/**
 * A PUBACK with a success code, 4 bytes: MQTT 3.1.1 §3.4 (fixed header 0x40, remaining length 2, packet id), which
 * MQTT 5 §3.4.2.1 also accepts ("the Reason Code and Property Length can be omitted if the Reason Code is 0x00").
 */
function pubacks(messageIds: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(messageIds.length * 4);
  messageIds.forEach((id, i) => {
    out[i * 4] = 0x40;
    out[i * 4 + 1] = 0x02;
    out.writeUInt16BE(id, i * 4 + 2);
  });
  return out;
}

const SHARED_GROUP = /^[A-Za-z0-9_-]{1,64}$/;

interface Queued {
  readonly packet: IPublishPacket;
  /** The connection it came on: a PUBACK belongs to that connection only. */
  readonly connection: number;
}

interface Accepted {
  readonly item: Queued;
  readonly uplink: AcceptedUplink;
}

export async function startIngest(options: IngestOptions): Promise<RunningIngest> {
  const { log, sinks } = options;
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  const maxBatch = options.batch?.maxMessages ?? 1000;
  const maxPending = options.batch?.maxPendingMessages ?? 2 * maxBatch;
  const lingerMs = options.batch?.lingerMs ?? 8;
  if (options.sharedGroup !== undefined && !SHARED_GROUP.test(options.sharedGroup)) {
    throw new RangeError(`sharedGroup must be 1..64 of [A-Za-z0-9_-] (MQTT 5 §4.8.2 forbids / + # in a share name), got ${JSON.stringify(options.sharedGroup)}`);
  }
  const counters = zeroCounters();
  const dedupe: DedupeStore = openDedupeStore({ path: options.dedupePath, ...(options.dedupeWindow === undefined ? {} : { maxWindow: options.dedupeWindow }) });
  // The uplink subtree as policy.ts derives it from the topic table (agri/v1/gw/+/up/#): one filter, so a topic the
  // broker let through that is not in the table is still seen and counted rather than silently missing.
  const uplinks = SUBSCRIBE_GRANTS.uplinks.join("/");
  const filter = options.sharedGroup === undefined ? uplinks : `$share/${options.sharedGroup}/${uplinks}`;
  const v5 = options.sharedGroup !== undefined;

  const url = new URL(options.url);
  const secure = url.protocol === "mqtts:";
  const host = url.hostname;
  const port = Number(url.port || (secure ? 8883 : 1883));
  const clientOptions: IClientOptions = {
    clientId: options.clientId ?? options.username,
    username: options.username,
    password: options.password,
    // A persistent session: what arrives while the ingest is away, or is left unacknowledged, waits in the broker.
    clean: false,
    protocolVersion: v5 ? 5 : 4,
    // MQTT 5 §3.1.2.11.2: without a Session Expiry Interval the session ends with the connection, unacknowledged
    // messages included.
    ...(v5 ? { properties: { sessionExpiryInterval: options.sessionExpiryS ?? 86_400 } } : {}),
    keepalive: options.keepaliveS ?? 30,
    reconnectPeriod: retryDelayMs,
    connectTimeout: 10_000,
    manualConnect: true,
  };
  // mqtt.js leaves Nagle on; every QoS 1 PUBACK would wait on a delayed ACK (performance-notes.md, MQTT).
  const streamBuilder = (): net.Socket => {
    const socket = secure ? tls.connect({ host, port, servername: host, ...(options.caFile ? { ca: options.caFile } : {}) }) : net.connect({ host, port });
    socket.setNoDelay(true);
    return socket;
  };
  const client = new mqtt.MqttClient(streamBuilder, clientOptions);

  // Set after a failure until the session is resumed: everything queued behind the failed message stays unacknowledged.
  let holding = false;
  let stopped = false;
  let connection = 0;

  function holdAndReconnect(): void {
    if (holding) return;
    holding = true;
    // Destroying the socket makes mqtt.js reconnect after reconnectPeriod (= retryDelayMs), resuming the session.
    setImmediate(() => {
      if (!stopped) client.stream.destroy();
    });
  }

  function acknowledge(items: readonly Queued[]): void {
    const ids: number[] = [];
    for (const { packet, connection: on } of items) {
      // A message from an earlier connection is redelivered on this one (with another packet id) and acknowledged then.
      if (packet.qos === 1 && packet.messageId !== undefined && on === connection) ids.push(packet.messageId);
    }
    if (ids.length > 0 && client.connected && !stopped) client.stream.write(pubacks(ids));
  }

  /** Deliver the accepted messages; returns, per message, the error that kept it from being stored (undefined: stored). */
  async function deliverAll(accepted: readonly Accepted[]): Promise<unknown[]> {
    const outcome: unknown[] = accepted.map(() => undefined);
    const notTried = new Error("not delivered: an earlier message of its batch failed");
    const billing: number[] = [];
    let failed = false;
    for (let i = 0; i < accepted.length; i++) {
      const { uplink } = accepted[i] as Accepted;
      if (uplink.name === "billing" && sinks.billingBatch !== undefined) {
        billing.push(i);
        continue;
      }
      if (failed) {
        outcome[i] = notTried;
        continue;
      }
      try {
        await deliver(sinks, uplink);
      } catch (error) {
        outcome[i] = error;
        failed = true;
      }
    }
    if (billing.length > 0 && sinks.billingBatch !== undefined) {
      const items = billing.map((i): BillingItem => {
        const { uplink } = accepted[i] as Accepted;
        return { readings: uplink.message as BillingReadings, gatewayId: uplink.gatewayId };
      });
      try {
        const results = await sinks.billingBatch(items);
        billing.forEach((i, k) => {
          const r = results[k];
          if (r === undefined) outcome[i] = new Error("billingBatch returned no outcome for this item");
          else if (r !== null) outcome[i] = r;
        });
      } catch (error) {
        for (const i of billing) outcome[i] = error;
      }
    }
    return outcome;
  }

  async function storeBatch(queued: Queued[]): Promise<void> {
    const current = queued.filter((q) => q.connection === connection && !holding && !stopped);
    counters.held += queued.length - current.length;
    if (current.length === 0) return;
    const ackNow: Queued[] = [];
    const accepted: Accepted[] = [];
    const inBatch = new Set<string>();
    for (const item of current) {
      const { packet } = item;
      counters.received++;
      const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload, "utf8") : packet.payload;
      const routed = routeMessage(packet.topic, payload, { maxPayloadBytes });
      if (routed.kind === "rejected") {
        counters.rejected[routed.reason]++;
        log.warn({ reason: routed.reason, detail: routed.detail, gatewayId: routed.gatewayId ?? null, topic: packet.topic.slice(0, 200) }, "ingest: message rejected");
        // Acknowledged: a payload that is wrong now will be wrong on every redelivery.
        ackNow.push(item);
        continue;
      }
      const { gatewayId, seq } = routed;
      if (seq !== undefined) {
        const key = `${gatewayId}\u0000${seq}`;
        if (inBatch.has(key) || dedupe.seen(gatewayId, seq)) {
          counters.duplicates++;
          ackNow.push(item);
          continue;
        }
        inBatch.add(key);
      }
      accepted.push({ item, uplink: routed });
    }

    const outcome = await deliverAll(accepted);
    const stored: Accepted[] = [];
    let firstError: unknown;
    let failures = 0;
    accepted.forEach((a, i) => {
      if (outcome[i] === undefined) stored.push(a);
      else {
        failures++;
        firstError ??= outcome[i];
      }
    });
    const keys: DedupeKey[] = [];
    for (const { uplink } of stored) if (uplink.seq !== undefined) keys.push({ gatewayId: uplink.gatewayId, seq: uplink.seq });
    try {
      const recorded = dedupe.recordMany(keys);
      if (recorded.gaveUpSeqs > 0) {
        counters.dedupeGaveUpSeqs += recorded.gaveUpSeqs;
        log.warn({ gaveUpSeqs: recorded.gaveUpSeqs }, "ingest: dedupe window full, gave up waiting for the oldest missing seqs");
      }
    } catch (error) {
      // Stored by the sinks but not recorded: none of it is acknowledged, and its redelivery is a no-op for the sinks.
      counters.sinkErrors += stored.length;
      log.error({ err: error, messages: stored.length, retryDelayMs }, "ingest: dedupe store failed; batch left unacknowledged for redelivery");
      acknowledge(ackNow);
      holdAndReconnect();
      return;
    }
    counters.accepted += stored.length;
    counters.batches++;
    acknowledge([...ackNow, ...stored.map((s) => s.item)]);
    if (failures > 0) {
      counters.sinkErrors += failures;
      log.error({ err: firstError, failed: failures, of: accepted.length, retryDelayMs }, "ingest: sink failed; message(s) left unacknowledged for redelivery");
      holdAndReconnect();
    }
  }

  // A fire alarm does not wait for company (invariant 6: it reaches the command room in well under a second).
  const urgent = (q: Queued): boolean => matchTopic(q.packet.topic)?.name === "alarm";
  const batcher = createBatcher<Queued>({ maxBatch, maxPending, lingerMs, flush: storeBatch, urgent });

  // mqtt.js README: "Handle messages with backpressure support, one at a time. Override at will, but always call
  // callback". callback() would send the PUBACK now; callback(error) skips it and moves on to the next packet.
  client.handleMessage = (packet, callback) => {
    if (holding || stopped) {
      counters.held++;
      callback(new Error("ingest holding messages until the session resumes"));
      return;
    }
    batcher.add({ packet, connection }, () => callback(DEFERRED));
  };

  client.on("error", (error) => log.warn({ err: error }, "ingest: mqtt client error"));
  client.on("close", () => {
    if (!stopped) log.warn({}, "ingest: broker connection closed; reconnecting");
  });

  const firstConnect = new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      client.off("connect", onConnect);
      reject(error);
    };
    const onConnect = (): void => {
      client.off("error", onError);
      resolve();
    };
    client.once("connect", onConnect);
    client.once("error", onError);
  });
  client.on("connect", (connack) => {
    counters.connects++;
    connection++;
    holding = false;
    log.info({ sessionPresent: connack.sessionPresent, filter }, "ingest: connected");
    // Subscribing on every connect is harmless with a resumed session and needed after a lost one.
    client.subscribe(filter, { qos: 1 }, (error, granted) => {
      if (error !== undefined && error !== null) return log.error({ err: error, filter }, "ingest: subscribe failed");
      // SUBACK 0x80 (MQTT 3.1.1 §3.9.3; any code ≥ 0x80 in MQTT 5 §3.9.3): the broker refused the filter.
      if (granted?.some((g) => g.qos >= 128) === true) log.error({ filter }, "ingest: subscription refused by the broker");
    });
  });

  client.connect();
  try {
    await firstConnect;
  } catch (error) {
    batcher.close();
    await client.endAsync(true);
    dedupe.close();
    throw error;
  }

  let stopping: Promise<void> | undefined;
  return {
    counters,
    get connected() {
      return client.connected;
    },
    get pending() {
      return batcher.pending;
    },
    get maxPendingSeen() {
      return batcher.maxPendingSeen;
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        // Forced: a PUBACK still pending belongs to a message that will be redelivered to the next ingest. A batch
        // being stored finishes first, so its writes are complete before the dedupe store closes.
        await client.endAsync(true);
        await batcher.drained();
        batcher.close();
        dedupe.close();
      })();
      return stopping;
    },
  };
}
