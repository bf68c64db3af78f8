// The MQTT topic namespace: one table of every topic the gateways and the cloud use, and the only code that turns a
// topic name into a topic string or back (ARCHITECTURE.md §5: no other file concatenates a topic string). The broker
// ACL, the edge uplink and the cloud ingest all derive their topics, filters and QoS from TOPICS.

import { AgriError } from "../errors.js";
import { GATEWAY_ID_PATTERN, type MessageName } from "./messages.js";

export const TOPIC_NAMESPACE = "agri/v1" as const;

export type TopicDirection = "uplink" | "downlink";

export interface TopicSpec {
  /** Levels separated by "/"; a level "{name}" is a parameter, checked against TOPIC_PARAM_PATTERNS. */
  readonly pattern: string;
  /** uplink: gateway → cloud; downlink: cloud → gateway. */
  readonly direction: TopicDirection;
  readonly qos: 0 | 1;
  readonly retain: boolean;
  /** Key of MESSAGE_SCHEMAS in messages.ts: the schema every payload on this topic must pass. */
  readonly payload: MessageName;
  readonly description: string;
}

/**
 * Every topic. QoS 1 everywhere: each uplink already carries (gatewayId, seq) so the cloud deduplicates the
 * redeliveries QoS 1 allows, and QoS 2's extra round trip would only slow down the backlog drain after an outage.
 * Only status is retained: it is a last-value state. Nothing else may be, least of all the command topic.
 */
export const TOPICS = {
  telemetry: {
    pattern: "agri/v1/gw/{gatewayId}/up/telemetry",
    direction: "uplink",
    qos: 1,
    retain: false,
    payload: "telemetryBatch",
    description: "Batches of plain point samples (power, voltage, temperature…). Drained last after an outage.",
  },
  billing: {
    pattern: "agri/v1/gw/{gatewayId}/up/billing",
    direction: "uplink",
    qos: 1,
    retain: false,
    payload: "billingReadings",
    description: "Cumulative energy register readings with their raw words: what the ledger charges from.",
  },
  events: {
    pattern: "agri/v1/gw/{gatewayId}/up/events",
    direction: "uplink",
    qos: 1,
    retain: false,
    payload: "eventBatch",
    // The event union includes the alarm events too, so this topic is the complete ordered log; an alarm that was
    // already sent on the alarm topic is recognised by its alarmId.
    description: "Batches of edge events in order: relay switching, tamper, device reachability, grants applied or refused, alarms.",
  },
  alarm: {
    pattern: "agri/v1/gw/{gatewayId}/up/alarm",
    direction: "uplink",
    qos: 1,
    retain: false,
    payload: "alarmMessage",
    // Its own topic so the cloud can subscribe to alarms alone (a dedicated, never-backlogged handler) and the
    // gateway can publish it ahead of any queue (invariant 6).
    description: "One fire/smoke alarm, alarm clearance or monitoring gap per message, published before any backlog.",
  },
  birth: {
    pattern: "agri/v1/gw/{gatewayId}/up/birth",
    direction: "uplink",
    qos: 1,
    // Not retained: a birth describes one session; a retained one would describe a gateway that may be long gone.
    retain: false,
    payload: "birth",
    description: "Sent on every (re)connect: software version, start time and the devices the gateway polls.",
  },
  status: {
    pattern: "agri/v1/gw/{gatewayId}/up/status",
    direction: "uplink",
    qos: 1,
    // Retained so a cloud that (re)subscribes learns every gateway's state at once; it is also the last will.
    retain: true,
    payload: "status",
    description: "Retained online/offline state; the gateway's MQTT last will is this topic with state \"offline\".",
  },
  commandAck: {
    pattern: "agri/v1/gw/{gatewayId}/up/cmd-ack",
    direction: "uplink",
    qos: 1,
    retain: false,
    payload: "commandAck",
    description: "The gateway's answer to a command: accepted, rejected (with a reason), done or failed.",
  },
  command: {
    pattern: "agri/v1/gw/{gatewayId}/down/cmd",
    direction: "downlink",
    qos: 1,
    // Never retained: a retained command would be replayed on every reconnect — a stale credit grant or relay
    // order executed after an offline period. Commands also carry expiresAt for the same reason.
    retain: false,
    payload: "command",
    description: "Commands to one gateway: credit grants, relay orders, config updates, pings.",
  },
} as const satisfies Record<string, TopicSpec>;

export type TopicName = keyof typeof TOPICS;
export const TOPIC_NAMES = Object.keys(TOPICS) as [TopicName, ...TopicName[]];

/** What each parameter may be. A value that could contain "/", "+" or "#" would change the topic's meaning. */
export const TOPIC_PARAM_PATTERNS = {
  gatewayId: GATEWAY_ID_PATTERN,
} as const satisfies Record<string, RegExp>;
export type TopicParamName = keyof typeof TOPIC_PARAM_PATTERNS;

type ParamNamesOf<P extends string> = P extends `${string}{${infer Name}}${infer Rest}` ? Name | ParamNamesOf<Rest> : never;
/** The parameters a topic's pattern names, e.g. { gatewayId: string }. */
export type TopicParams<N extends TopicName> = { readonly [K in ParamNamesOf<(typeof TOPICS)[N]["pattern"]>]: string };
export type TopicMatch = { [N in TopicName]: { readonly name: N; readonly params: TopicParams<N> } }[TopicName];

export class TopicError extends AgriError {
  constructor(code: string, message: string) {
    super(code, false, message);
  }
}

export const TOPIC_ERROR_CODES = {
  UNKNOWN_TOPIC: "PROTO_TOPIC_UNKNOWN",
  BAD_PARAM: "PROTO_TOPIC_BAD_PARAM",
  MISSING_PARAM: "PROTO_TOPIC_MISSING_PARAM",
  EXTRA_PARAM: "PROTO_TOPIC_EXTRA_PARAM",
} as const;

type Level = { readonly literal: string } | { readonly param: TopicParamName };

// Patterns parsed once at load; a pattern naming an unknown parameter is a bug in this table, so it throws here.
const LEVELS: ReadonlyMap<string, readonly Level[]> = new Map(TOPIC_NAMES.map((name) => [name, parsePattern(TOPICS[name].pattern)]));

function parsePattern(pattern: string): Level[] {
  return pattern.split("/").map((level): Level => {
    const m = /^\{(\w+)\}$/.exec(level);
    if (!m) return { literal: level };
    const param = m[1] ?? "";
    if (!isParamName(param)) throw new TopicError(TOPIC_ERROR_CODES.BAD_PARAM, `pattern ${pattern} names unknown parameter ${param}`);
    return { param };
  });
}

function isParamName(name: string): name is TopicParamName {
  return Object.hasOwn(TOPIC_PARAM_PATTERNS, name);
}

function checkParam(param: TopicParamName, value: unknown): string {
  if (typeof value !== "string" || !TOPIC_PARAM_PATTERNS[param].test(value)) {
    throw new TopicError(TOPIC_ERROR_CODES.BAD_PARAM, `${param} ${JSON.stringify(value) ?? String(value)} does not match ${String(TOPIC_PARAM_PATTERNS[param])}`);
  }
  return value;
}

// Callers are typed, but a name can still arrive from JSON or a CLI flag: refuse it rather than format "undefined".
function levelsOf(name: string): readonly Level[] {
  const levels = LEVELS.get(name);
  if (levels === undefined) throw new TopicError(TOPIC_ERROR_CODES.UNKNOWN_TOPIC, `no topic named ${name}`);
  return levels;
}

function refuseExtraParams(name: string, levels: readonly Level[], params: object): void {
  const expected = new Set(levels.flatMap((l) => ("param" in l ? [l.param as string] : [])));
  for (const key of Object.keys(params)) {
    if (!expected.has(key)) throw new TopicError(TOPIC_ERROR_CODES.EXTRA_PARAM, `topic ${name} has no parameter ${key}`);
  }
}

/** The concrete topic string. Throws TopicError when a parameter is missing, extra or not a valid level. */
export function formatTopic<N extends TopicName>(name: N, params: TopicParams<N>): string {
  const levels = levelsOf(name);
  refuseExtraParams(name, levels, params);
  const values = params as Readonly<Record<string, unknown>>;
  return levels
    .map((l) => {
      if ("literal" in l) return l.literal;
      if (values[l.param] === undefined) throw new TopicError(TOPIC_ERROR_CODES.MISSING_PARAM, `topic ${name} needs ${l.param}`);
      return checkParam(l.param, values[l.param]);
    })
    .join("/");
}

/**
 * Parse a concrete topic (as received) into its table entry and parameters, or undefined when it is not exactly one
 * of ours: another namespace, an extra or missing level, a wildcard, or a parameter that fails its pattern.
 */
export function matchTopic(topic: string): TopicMatch | undefined {
  const parts = topic.split("/");
  for (const name of TOPIC_NAMES) {
    const levels = levelsOf(name);
    if (levels.length !== parts.length) continue;
    const params: Record<string, string> = {};
    const matched = levels.every((l, i) => {
      const part = parts[i] ?? "";
      if ("literal" in l) return part === l.literal;
      if (!TOPIC_PARAM_PATTERNS[l.param].test(part)) return false;
      params[l.param] = part;
      return true;
    });
    if (matched) return { name, params } as TopicMatch;
  }
  return undefined;
}

/**
 * An MQTT subscription filter for a topic: bound parameters filled in, the others "+" (MQTT v3.1.1 §4.7.1.3,
 * single-level wildcard). subscriptionFilter("alarm") is "agri/v1/gw/+/up/alarm", the cloud's alarm subscription.
 */
export function subscriptionFilter<N extends TopicName>(name: N, params: Partial<TopicParams<N>> = {}): string {
  const levels = levelsOf(name);
  refuseExtraParams(name, levels, params);
  const values = params as Readonly<Record<string, unknown>>;
  return levels.map((l) => ("literal" in l ? l.literal : values[l.param] === undefined ? "+" : checkParam(l.param, values[l.param]))).join("/");
}

/** The uplink topic names, in table order. */
export const UPLINK_TOPIC_NAMES = TOPIC_NAMES.filter((n) => TOPICS[n].direction === "uplink");
/** The downlink topic names, in table order. */
export const DOWNLINK_TOPIC_NAMES = TOPIC_NAMES.filter((n) => TOPICS[n].direction === "downlink");

/** Every topic a gateway may publish to (invariant 10: its own uplinks and nothing else). For the broker ACL. */
export function uplinkTopicsFor(gatewayId: string): readonly string[] {
  return UPLINK_TOPIC_NAMES.map((name) => formatTopic(name, { gatewayId }));
}

/** The one topic a gateway may subscribe to: its own command topic. For the broker ACL and the edge uplink. */
export function downlinkTopicFor(gatewayId: string): string {
  return formatTopic("command", { gatewayId });
}
