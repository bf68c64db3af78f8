// The cloud's uplink ingest: one mqtt.js client (an "ingest" cloud user) subscribed at QoS 1 to the uplink subtree,
// and for every message route → dedupe → sink → record → PUBACK, in that order and one message at a time.
//
// Acknowledgement is the durability guarantee and the back-pressure. mqtt.js 5 sends a QoS 1 PUBACK only after
// `client.handleMessage(packet, callback)` calls back (and processes the next packet only then), so this module
// overrides handleMessage and calls back once the sink has stored the message and the dedupe store has recorded it.
// (`customHandleAcks` looks like the obvious hook but mqtt.js honours it only with protocolVersion 5, and npm's aedes
// 1.2 speaks MQTT 3.1.1 only: with v4 the option is replaced by an always-ack default — client.js, constructor.)
// While a message is in a sink, mqtt.js reads nothing more from the socket; the broker holds the rest. In memory
// there is one message in a sink and the packets already parsed from one socket chunk, whatever the flood.
//
// A sink that throws (or a dedupe store that fails) is counted and logged and the message is NOT recorded as seen
// and NOT acknowledged. MQTT 3.1.1 §4.4 redelivers an unacknowledged QoS 1 message only when the session resumes,
// so the ingest then drops its connection and reconnects after retryDelayMs with the same client id and
// clean: false; the broker resends every unacknowledged message (DUP set) and the sink gets it again. Messages that
// were parsed behind the failed one are not processed until then (they are left unacknowledged too), so a sink that
// is down stalls the ingest instead of skipping ahead. Sinks must still be idempotent on (gatewayId, seq): a crash
// between a sink's write and the dedupe record redelivers a message the sink already has (at-least-once).

import net from "node:net";
import tls from "node:tls";
import mqtt, { type IClientOptions, type IPublishPacket } from "mqtt";
import type { Logger } from "pino";
import type { AlarmMessage, BillingReadings, Birth, CommandAck, EventBatch, Status, TelemetryBatch } from "../../protocols/mqtt/messages.js";
import { SUBSCRIBE_GRANTS } from "../broker/policy.js";
import { openDedupeStore, type DedupeStore } from "./dedupe.js";
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
}

export interface RunningIngest {
  readonly counters: Readonly<IngestCounters>;
  readonly connected: boolean;
  stop(): Promise<void>;
}

const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

function zeroCounters(): IngestCounters {
  const rejected = Object.fromEntries(Object.values(INGEST_REJECT).map((r) => [r, 0])) as Record<IngestRejectReason, number>;
  return { received: 0, accepted: 0, duplicates: 0, rejected, sinkErrors: 0, held: 0, dedupeGaveUpSeqs: 0, connects: 0 };
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

export async function startIngest(options: IngestOptions): Promise<RunningIngest> {
  const { log, sinks } = options;
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  const counters = zeroCounters();
  const dedupe: DedupeStore = openDedupeStore({ path: options.dedupePath, ...(options.dedupeWindow === undefined ? {} : { maxWindow: options.dedupeWindow }) });
  // The uplink subtree as policy.ts derives it from the topic table (agri/v1/gw/+/up/#): one filter, so a topic the
  // broker let through that is not in the table is still seen and counted rather than silently missing.
  const filter = SUBSCRIBE_GRANTS.uplinks.join("/");

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
    protocolVersion: 4,
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

  // Set after a failure until the session is resumed: everything parsed behind the failed message stays unacknowledged.
  let holding = false;
  let stopped = false;

  function holdAndReconnect(): void {
    if (holding) return;
    holding = true;
    // Destroying the socket makes mqtt.js reconnect after reconnectPeriod (= retryDelayMs), resuming the session.
    setImmediate(() => {
      if (!stopped) client.stream.destroy();
    });
  }

  async function handle(packet: IPublishPacket): Promise<"ack" | "hold"> {
    counters.received++;
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload, "utf8") : packet.payload;
    const routed = routeMessage(packet.topic, payload, { maxPayloadBytes });
    if (routed.kind === "rejected") {
      counters.rejected[routed.reason]++;
      log.warn({ reason: routed.reason, detail: routed.detail, gatewayId: routed.gatewayId ?? null, topic: packet.topic.slice(0, 200) }, "ingest: message rejected");
      // Acknowledged: a payload that is wrong now will be wrong on every redelivery.
      return "ack";
    }
    const { gatewayId, seq } = routed;
    if (seq !== undefined && dedupe.seen(gatewayId, seq)) {
      counters.duplicates++;
      return "ack";
    }
    await deliver(sinks, routed);
    if (seq !== undefined) {
      const outcome = dedupe.record(gatewayId, seq);
      if (outcome.gaveUpSeqs > 0) {
        counters.dedupeGaveUpSeqs += outcome.gaveUpSeqs;
        log.warn({ gatewayId, seq, gaveUpSeqs: outcome.gaveUpSeqs }, "ingest: dedupe window full, gave up waiting for the oldest missing seqs");
      }
    }
    counters.accepted++;
    return "ack";
  }

  // mqtt.js README: "Handle messages with backpressure support, one at a time. Override at will, but always call
  // callback". callback() sends the PUBACK; callback(error) skips it and moves on to the next parsed packet.
  client.handleMessage = (packet, callback) => {
    if (holding || stopped) {
      counters.held++;
      callback(new Error("ingest holding messages until the session resumes"));
      return;
    }
    handle(packet).then(
      () => callback(),
      (error: unknown) => {
        counters.sinkErrors++;
        log.error({ err: error, topic: packet.topic.slice(0, 200), messageId: packet.messageId ?? null, retryDelayMs }, "ingest: sink failed; message left unacknowledged for redelivery");
        holdAndReconnect();
        callback(error instanceof Error ? error : new Error(String(error)));
      },
    );
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
    holding = false;
    log.info({ sessionPresent: connack.sessionPresent, filter }, "ingest: connected");
    // Subscribing on every connect is harmless with a resumed session and needed after a lost one.
    client.subscribe(filter, { qos: 1 }, (error, granted) => {
      if (error !== undefined && error !== null) return log.error({ err: error, filter }, "ingest: subscribe failed");
      // SUBACK 0x80 (MQTT 3.1.1 §3.9.3): the broker refused the filter — a registry role other than "ingest".
      if (granted?.some((g) => g.qos === 128) === true) log.error({ filter }, "ingest: subscription refused by the broker");
    });
  });

  client.connect();
  try {
    await firstConnect;
  } catch (error) {
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
    stop() {
      stopping ??= (async () => {
        stopped = true;
        // Forced: a PUBACK still pending belongs to a message that will be redelivered to the next ingest.
        await client.endAsync(true);
        dedupe.close();
      })();
      return stopping;
    },
  };
}
