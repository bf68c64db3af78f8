// The cloud's uplink ingest: one mqtt.js client (an "ingest" cloud user) subscribed at QoS 1 to the uplink subtree —
// or, against an external broker (mosquitto, EMQX), to the MQTT 5 shared subscription $share/<group>/… so several
// workers split the load — and for every message route → dedupe → sink → record → PUBACK, in that order, with the
// messages that arrive together stored together (group commit).
//
// The store path itself — route, dedupe, sinks, dedupe record, group commit, and which messages may be acknowledged —
// is pipeline.ts, shared with the embedded mode (embedded.ts), where the embedded aedes hands uplinks over directly.
// This module is its MQTT subscriber shell, used against an external broker (and by tests of that mode).
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
import { SUBSCRIBE_GRANTS } from "../broker/policy.js";
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

export type { BillingItem, IngestBatchOptions, IngestCounters, IngestLog, IngestSinks } from "./pipeline.js";

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

export interface RunningIngest {
  readonly counters: Readonly<IngestCounters>;
  readonly connected: boolean;
  /** Messages queued plus in flight now, and the most seen: bounded by maxPendingMessages. */
  readonly pending: number;
  readonly maxPendingSeen: number;
  stop(): Promise<void>;
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
  readonly topic: string;
  readonly payload: Buffer | string;
  readonly packet: IPublishPacket;
  /** The connection it came on: a PUBACK belongs to that connection only. */
  readonly connection: number;
}

export async function startIngest(options: IngestOptions): Promise<RunningIngest> {
  const { log, sinks } = options;
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const retryDelayMs = options.retryDelayMs ?? 1000;
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

  // Everything acknowledgeable in a batch is acknowledged in one write; a failure anywhere holds the rest of the
  // session (what is queued behind it comes back on the resumed session, in order) and reconnects.
  function judge(batch: readonly Judged<Queued>[]): void {
    acknowledge(batch.filter((j) => isAcknowledged(j.verdict)).map((j) => j.item));
    if (batch.some((j) => j.verdict.kind === "failed")) {
      log.warn({ retryDelayMs }, "ingest: reconnecting to resume the session and have the unacknowledged messages redelivered");
      holdAndReconnect();
    }
  }

  const pipeline = createPipeline<Queued>({
    sinks,
    dedupe,
    log,
    maxPayloadBytes,
    batch: options.batch,
    counters,
    stale: (q) => q.connection !== connection || holding || stopped,
    judge,
  });

  // mqtt.js README: "Handle messages with backpressure support, one at a time. Override at will, but always call
  // callback". callback() would send the PUBACK now; callback(error) skips it and moves on to the next packet.
  client.handleMessage = (packet, callback) => {
    if (holding || stopped) {
      counters.held++;
      callback(new Error("ingest holding messages until the session resumes"));
      return;
    }
    pipeline.add({ topic: packet.topic, payload: packet.payload, packet, connection }, () => callback(DEFERRED));
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
    pipeline.close();
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
      return pipeline.pending;
    },
    get maxPendingSeen() {
      return pipeline.maxPendingSeen;
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        // Forced: a PUBACK still pending belongs to a message that will be redelivered to the next ingest. A batch
        // being stored finishes first, so its writes are complete before the dedupe store closes.
        await client.endAsync(true);
        await pipeline.drained();
        pipeline.close();
        dedupe.close();
      })();
      return stopping;
    },
  };
}
