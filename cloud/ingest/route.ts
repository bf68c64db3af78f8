// The ingest's decision for one received uplink, as a pure function over the topic and the payload bytes: which
// topic of the table it is, whether the payload is a bounded, well-formed JSON message of that topic's schema, and
// whether it speaks for the gateway whose topic it came on (invariant 10: a gateway may not speak for another; the
// broker ACL already keeps a gateway to its own topics, this check keeps the payload to the topic). No I/O here:
// the shell (ingest.ts) counts, logs and acknowledges.

import { parseMessage, type AlarmMessage, type BillingReadings, type Birth, type CommandAck, type EventBatch, type MessageIssue, type Status, type TelemetryBatch } from "../../protocols/mqtt/messages.js";
import { TOPICS, matchTopic } from "../../protocols/mqtt/topics.js";

export const INGEST_REJECT = {
  UNKNOWN_TOPIC: "INGEST_UNKNOWN_TOPIC",
  /** A topic of the table, but a downlink: the ingest subscribes to uplinks only, so this is a subscription bug. */
  NOT_UPLINK: "INGEST_NOT_UPLINK",
  PAYLOAD_TOO_LARGE: "INGEST_PAYLOAD_TOO_LARGE",
  /** Not UTF-8 (RFC 8259 §8.1: JSON exchanged between systems is UTF-8) or not JSON at all. */
  NOT_JSON: "INGEST_NOT_JSON",
  INVALID_PAYLOAD: "INGEST_INVALID_PAYLOAD",
  GATEWAY_MISMATCH: "INGEST_GATEWAY_MISMATCH",
} as const;
export type IngestRejectReason = (typeof INGEST_REJECT)[keyof typeof INGEST_REJECT];

/** What each uplink topic carries once it passed its schema. */
export interface UplinkPayloads {
  readonly telemetry: TelemetryBatch;
  readonly billing: BillingReadings;
  readonly events: EventBatch;
  readonly alarm: AlarmMessage;
  readonly birth: Birth;
  readonly status: Status;
  readonly commandAck: CommandAck;
}
export type UplinkName = keyof UplinkPayloads;

export type AcceptedUplink = {
  [N in UplinkName]: {
    readonly kind: "accepted";
    readonly name: N;
    readonly gatewayId: string;
    /** The outbox sequence, the dedupe key; absent only on status (a retained last value and the last will). */
    readonly seq?: number;
    readonly message: UplinkPayloads[N];
  };
}[UplinkName];

export interface RejectedUplink {
  readonly kind: "rejected";
  readonly reason: IngestRejectReason;
  readonly detail: string;
  /** The topic's gateway, when the topic named one: for the log line and per-gateway counters. */
  readonly gatewayId?: string;
  /** Schema issues with their paths, for INGEST_INVALID_PAYLOAD. */
  readonly issues?: readonly MessageIssue[];
}

export type RouteResult = AcceptedUplink | RejectedUplink;

export interface RouteDeps {
  /** Largest payload the ingest will decode; the broker's own limit should be at or below it. */
  readonly maxPayloadBytes: number;
}

const MAX_ISSUES_IN_DETAIL = 5;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

function reject(reason: IngestRejectReason, detail: string, extra: { gatewayId?: string; issues?: readonly MessageIssue[] } = {}): RejectedUplink {
  return { kind: "rejected", reason, detail, ...extra };
}

/** Decide what one received uplink is. Never throws. */
export function routeMessage(topic: string, payload: Uint8Array, deps: RouteDeps): RouteResult {
  const match = matchTopic(topic);
  if (match === undefined) return reject(INGEST_REJECT.UNKNOWN_TOPIC, `not a topic of the agri/v1 table: ${topic.slice(0, 200)}`);
  const spec = TOPICS[match.name];
  const topicGatewayId = match.params.gatewayId;
  if (spec.direction !== "uplink") {
    return reject(INGEST_REJECT.NOT_UPLINK, `${match.name} is a downlink topic`, { gatewayId: topicGatewayId });
  }
  // Checked before decoding, so an oversized payload costs no parse.
  if (payload.byteLength > deps.maxPayloadBytes) {
    return reject(INGEST_REJECT.PAYLOAD_TOO_LARGE, `payload ${payload.byteLength} bytes > ${deps.maxPayloadBytes}`, { gatewayId: topicGatewayId });
  }
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(payload));
  } catch (error) {
    return reject(INGEST_REJECT.NOT_JSON, `payload is not UTF-8 JSON: ${error instanceof Error ? error.message : String(error)}`, { gatewayId: topicGatewayId });
  }
  const parsed = parseMessage(spec.payload, json);
  if (!parsed.ok) {
    const shown = parsed.issues.slice(0, MAX_ISSUES_IN_DETAIL).map((i) => `${i.path === "" ? "(payload)" : i.path}: ${i.message}`);
    const more = parsed.issues.length > MAX_ISSUES_IN_DETAIL ? `; and ${parsed.issues.length - MAX_ISSUES_IN_DETAIL} more` : "";
    return reject(INGEST_REJECT.INVALID_PAYLOAD, `${spec.payload}: ${shown.join("; ")}${more}`, { gatewayId: topicGatewayId, issues: parsed.issues });
  }
  const message = parsed.value;
  if (message.gatewayId !== topicGatewayId) {
    return reject(INGEST_REJECT.GATEWAY_MISMATCH, `payload gatewayId ${message.gatewayId} on ${topicGatewayId}'s topic`, { gatewayId: topicGatewayId });
  }
  // Every uplink schema but status carries seq (messages.ts uplinkEnvelope); the topic name picks the payload type.
  const seq = "seq" in message ? message.seq : undefined;
  const accepted = { kind: "accepted", name: match.name, gatewayId: topicGatewayId, message, ...(seq === undefined ? {} : { seq }) };
  return accepted as AcceptedUplink;
}
