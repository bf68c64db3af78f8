// The broker's security policy as pure decisions over a registry snapshot (ARCHITECTURE.md invariant 10, §5 "policy
// as hooks"): who a username is, whether that identity may use a client id, publish on a topic and subscribe to a
// filter. Every grant is derived from the topic table in protocols/mqtt/topics.ts; broker.ts only wires these into
// aedes's authenticate / authorizePublish / authorizeSubscribe hooks, and verifies secrets.

import {
  DOWNLINK_TOPIC_NAMES,
  TOPICS,
  UPLINK_TOPIC_NAMES,
  downlinkTopicFor,
  matchTopic,
  subscriptionFilter,
  type TopicName,
} from "../../protocols/mqtt/topics.js";

export interface GatewayRecord {
  /** scrypt encoding from secrets.ts; never the secret itself. */
  readonly secretHash: string;
  readonly enabled: boolean;
}

export type CloudRole = "ingest" | "command";

export interface CloudClientRecord {
  readonly secretHash: string;
  readonly role: CloudRole;
}

/** What the broker knows of its users at one moment. Gateways log in with username = client id = gateway id. */
export interface RegistrySnapshot {
  readonly gateways: ReadonlyMap<string, GatewayRecord>;
  readonly cloudClients: ReadonlyMap<string, CloudClientRecord>;
}

export type Identity =
  | { readonly kind: "gateway"; readonly gatewayId: string }
  | { readonly kind: "cloud"; readonly username: string; readonly role: CloudRole };

export const BROKER_DENY = {
  NO_CREDENTIALS: "BROKER_DENY_NO_CREDENTIALS",
  UNKNOWN_USER: "BROKER_DENY_UNKNOWN_USER",
  AMBIGUOUS_USER: "BROKER_DENY_AMBIGUOUS_USER",
  BAD_SECRET: "BROKER_DENY_BAD_SECRET",
  SECRET_HASH_INVALID: "BROKER_DENY_SECRET_HASH_INVALID",
  GATEWAY_DISABLED: "BROKER_DENY_GATEWAY_DISABLED",
  CLIENT_ID_MISMATCH: "BROKER_DENY_CLIENT_ID_MISMATCH",
  REGISTRY_UNAVAILABLE: "BROKER_DENY_REGISTRY_UNAVAILABLE",
  NO_IDENTITY: "BROKER_DENY_NO_IDENTITY",
  UNKNOWN_TOPIC: "BROKER_DENY_UNKNOWN_TOPIC",
  FOREIGN_TOPIC: "BROKER_DENY_FOREIGN_TOPIC",
  WRONG_DIRECTION: "BROKER_DENY_WRONG_DIRECTION",
  ROLE_NOT_PERMITTED: "BROKER_DENY_ROLE_NOT_PERMITTED",
  RETAIN_NOT_ALLOWED: "BROKER_DENY_RETAIN_NOT_ALLOWED",
  PAYLOAD_TOO_LARGE: "BROKER_DENY_PAYLOAD_TOO_LARGE",
  PACKET_TOO_LARGE: "BROKER_DENY_PACKET_TOO_LARGE",
  MALFORMED_PACKET: "BROKER_DENY_MALFORMED_PACKET",
  INVALID_FILTER: "BROKER_DENY_INVALID_FILTER",
  WILDCARD_NOT_ALLOWED: "BROKER_DENY_WILDCARD_NOT_ALLOWED",
  CONNECTION_RATE: "BROKER_DENY_CONNECTION_RATE",
} as const;
export type DenyReason = (typeof BROKER_DENY)[keyof typeof BROKER_DENY];

export type Decision = { readonly allow: true } | { readonly allow: false; readonly reason: DenyReason; readonly detail: string };

/** MQTT 3.1.1 §3.2.2.3 Table 3.1: the CONNACK return codes a refusal may carry. */
export const CONNACK_REFUSAL = { IDENTIFIER_REJECTED: 2, SERVER_UNAVAILABLE: 3, BAD_USERNAME_OR_PASSWORD: 4, NOT_AUTHORIZED: 5 } as const;
export type ConnackRefusal = (typeof CONNACK_REFUSAL)[keyof typeof CONNACK_REFUSAL];

export type ConnectDecision =
  | { readonly allow: true }
  | { readonly allow: false; readonly reason: DenyReason; readonly detail: string; readonly returnCode: ConnackRefusal };

export type UserLookup =
  | { readonly found: true; readonly identity: Identity; readonly secretHash: string }
  | { readonly found: false; readonly reason: DenyReason; readonly detail: string; readonly returnCode: ConnackRefusal };

export interface PublishRequest {
  readonly topic: string;
  readonly retain: boolean;
  readonly payloadBytes: number;
}

export interface PublishLimits {
  readonly maxPayloadBytes: number;
}

const ALLOW: Decision = { allow: true };

function deny(reason: DenyReason, detail: string): Decision {
  return { allow: false, reason, detail };
}

/**
 * Step one of a login, before the secret is checked: which identity this username names, and the hash to check
 * against. Unknown and missing usernames get the same return code as a wrong secret (4), so a refusal does not
 * tell a prober which usernames exist.
 */
export function lookupUser(registry: RegistrySnapshot, username: string | undefined): UserLookup {
  if (username === undefined || username === "") {
    return { found: false, reason: BROKER_DENY.NO_CREDENTIALS, detail: "no username", returnCode: CONNACK_REFUSAL.BAD_USERNAME_OR_PASSWORD };
  }
  const gateway = registry.gateways.get(username);
  const cloud = registry.cloudClients.get(username);
  if (gateway !== undefined && cloud !== undefined) {
    // A registry fault: refuse rather than guess which set of rights the login was meant to get.
    return { found: false, reason: BROKER_DENY.AMBIGUOUS_USER, detail: "username is both a gateway and a cloud client", returnCode: CONNACK_REFUSAL.NOT_AUTHORIZED };
  }
  if (gateway !== undefined) return { found: true, identity: { kind: "gateway", gatewayId: username }, secretHash: gateway.secretHash };
  if (cloud !== undefined) return { found: true, identity: { kind: "cloud", username, role: cloud.role }, secretHash: cloud.secretHash };
  return { found: false, reason: BROKER_DENY.UNKNOWN_USER, detail: "username not in the registry", returnCode: CONNACK_REFUSAL.BAD_USERNAME_OR_PASSWORD };
}

/**
 * Step two, after the secret matched: may this identity connect now, with this client id? A gateway's client id
 * must be its gateway id, and no cloud client may use a gateway's id: the broker hands a persistent session to
 * whoever presents its client id and disconnects the holder (MQTT 3.1.1 §3.1.4), so the id is part of the grant.
 */
export function admitClient(registry: RegistrySnapshot, identity: Identity, clientId: string): ConnectDecision {
  const registered = stillRegistered(registry, identity);
  if (!registered.allow) {
    const returnCode = registered.reason === BROKER_DENY.GATEWAY_DISABLED ? CONNACK_REFUSAL.NOT_AUTHORIZED : CONNACK_REFUSAL.BAD_USERNAME_OR_PASSWORD;
    return { ...registered, returnCode };
  }
  if (identity.kind === "gateway" && clientId !== identity.gatewayId) {
    return { allow: false, reason: BROKER_DENY.CLIENT_ID_MISMATCH, detail: "a gateway's client id must be its gateway id", returnCode: CONNACK_REFUSAL.IDENTIFIER_REJECTED };
  }
  if (identity.kind === "cloud" && (registry.gateways.has(clientId) || !isOwnCloudClientId(identity.username, clientId))) {
    return {
      allow: false,
      reason: BROKER_DENY.CLIENT_ID_MISMATCH,
      detail: "a cloud client's id must be its username, or its username and '-' and a suffix, and no gateway's id",
      returnCode: CONNACK_REFUSAL.IDENTIFIER_REJECTED,
    };
  }
  return { allow: true };
}

// Several workers may share one cloud username (ingest-1, ingest-2), but one username must not take another's session.
function isOwnCloudClientId(username: string, clientId: string): boolean {
  return clientId === username || (clientId.startsWith(`${username}-`) && clientId.length > username.length + 1);
}

/** Re-checked on every publish and subscribe: a gateway disabled or removed after it connected loses its rights. */
export function stillRegistered(registry: RegistrySnapshot, identity: Identity): Decision {
  if (identity.kind === "gateway") {
    const record = registry.gateways.get(identity.gatewayId);
    if (record === undefined) return deny(BROKER_DENY.UNKNOWN_USER, "gateway no longer in the registry");
    if (!record.enabled) return deny(BROKER_DENY.GATEWAY_DISABLED, "gateway is disabled");
    return ALLOW;
  }
  const record = registry.cloudClients.get(identity.username);
  if (record === undefined) return deny(BROKER_DENY.UNKNOWN_USER, "cloud client no longer in the registry");
  if (record.role !== identity.role) return deny(BROKER_DENY.ROLE_NOT_PERMITTED, "cloud client's role changed since it connected");
  return ALLOW;
}

/** Which topics each cloud role may publish to, and within which filters it may subscribe. */
const CLOUD_ROLE_GRANTS = {
  // The ingest client reads every gateway's uplinks and sends nothing.
  ingest: { publish: [] as readonly TopicName[], subscribeWithin: "uplinks" },
  // The command client sends commands to any gateway and follows their acknowledgements.
  command: { publish: DOWNLINK_TOPIC_NAMES, subscribeWithin: "commandAcks" },
} as const satisfies Record<CloudRole, { publish: readonly TopicName[]; subscribeWithin: string }>;

/**
 * May this identity publish this message? A gateway: its own uplink topics only (uplinkTopicsFor), never a
 * downlink. The command role: command topics. The ingest role: nothing. Retain only where the table retains
 * (the status topic, which is also the last will); payloads up to limits.maxPayloadBytes.
 */
export function authorizePublish(identity: Identity, publish: PublishRequest, limits: PublishLimits): Decision {
  const match = matchTopic(publish.topic);
  if (match === undefined) return deny(BROKER_DENY.UNKNOWN_TOPIC, "not a topic of the agri/v1 table");
  const spec = TOPICS[match.name];
  if (identity.kind === "gateway") {
    if (spec.direction !== "uplink") return deny(BROKER_DENY.WRONG_DIRECTION, "gateways publish only uplinks");
    if (match.params.gatewayId !== identity.gatewayId) return deny(BROKER_DENY.FOREIGN_TOPIC, "another gateway's topic");
  } else {
    const allowed: readonly TopicName[] = CLOUD_ROLE_GRANTS[identity.role].publish;
    if (!allowed.includes(match.name)) return deny(BROKER_DENY.ROLE_NOT_PERMITTED, `role ${identity.role} may not publish ${match.name}`);
  }
  if (publish.retain && !spec.retain) return deny(BROKER_DENY.RETAIN_NOT_ALLOWED, `${match.name} is not a retained topic`);
  if (publish.payloadBytes > limits.maxPayloadBytes) {
    return deny(BROKER_DENY.PAYLOAD_TOO_LARGE, `payload ${publish.payloadBytes} bytes > ${limits.maxPayloadBytes}`);
  }
  return ALLOW;
}

/**
 * May this identity subscribe to this filter? A gateway: exactly its own command topic, no wildcards. The ingest
 * role: any filter inside the uplink subtree (agri/v1/gw/+/up/#). The command role: filters inside the cmd-ack topic.
 */
export function authorizeSubscribe(identity: Identity, filter: string): Decision {
  const levels = filter.split("/");
  if (!isValidFilter(levels)) return deny(BROKER_DENY.INVALID_FILTER, "not a valid MQTT topic filter (MQTT 3.1.1 §4.7)");
  if (identity.kind === "gateway") {
    if (levels.some(isWildcard)) return deny(BROKER_DENY.WILDCARD_NOT_ALLOWED, "gateways subscribe without wildcards");
    if (filter === downlinkTopicFor(identity.gatewayId)) return ALLOW;
    const match = matchTopic(filter);
    if (match === undefined) return deny(BROKER_DENY.UNKNOWN_TOPIC, "not a topic of the agri/v1 table");
    if (TOPICS[match.name].direction !== "downlink") return deny(BROKER_DENY.WRONG_DIRECTION, "gateways subscribe only to their command topic");
    return deny(BROKER_DENY.FOREIGN_TOPIC, "another gateway's topic");
  }
  const grant = CLOUD_ROLE_GRANTS[identity.role].subscribeWithin;
  if (!filterWithin(levels, SUBSCRIBE_GRANTS[grant])) {
    return deny(BROKER_DENY.ROLE_NOT_PERMITTED, `role ${identity.role} may subscribe only within ${grant}`);
  }
  return ALLOW;
}

function isWildcard(level: string): boolean {
  return level === "+" || level === "#";
}

// MQTT 3.1.1 §4.7.1: "#" only as the whole last level, "+" only as a whole level; §4.7.3: non-empty, no U+0000.
function isValidFilter(levels: readonly string[]): boolean {
  if (levels.length === 1 && levels[0] === "") return false;
  return levels.every((level, i) => {
    if (level.includes("\u0000")) return false;
    if (level === "#") return i === levels.length - 1;
    return !level.includes("#") && (level === "+" || !level.includes("+"));
  });
}

/**
 * Is every topic `filter` can match also matched by `grant`? Both are filters split into levels. A "+" in the
 * grant covers any one level but not "#"; a "#" covers the rest. The filter must reach the grant's "#" (the
 * parent level alone, which §4.7.1.2 lets "#" match, is no topic of ours).
 */
export function filterWithin(filter: readonly string[], grant: readonly string[]): boolean {
  for (let i = 0; i < grant.length; i++) {
    const g = grant[i];
    const f = filter[i];
    if (f === undefined) return false;
    if (g === "#") return true;
    if (g === "+") {
      if (f === "#") return false;
      continue;
    }
    if (f !== g) return false;
  }
  return filter.length === grant.length;
}

function splitFilter(filter: string): readonly string[] {
  return filter.split("/");
}

/**
 * The uplink subtree as levels, derived from the table rather than written here: the levels every uplink's
 * subscription filter shares ("agri", "v1", "gw", "+", "up"), then "#". Checked at load not to reach a downlink.
 */
function uplinkSubtree(): readonly string[] {
  const filters = UPLINK_TOPIC_NAMES.map((name) => splitFilter(subscriptionFilter(name)));
  const first = filters[0] ?? [];
  const prefix: string[] = [];
  for (const [i, level] of first.entries()) {
    if (!filters.every((f) => f[i] === level)) break;
    prefix.push(level);
  }
  const subtree = [...prefix, "#"];
  for (const name of DOWNLINK_TOPIC_NAMES) {
    if (prefix.length === 0 || filterWithin(splitFilter(subscriptionFilter(name)), subtree)) {
      throw new Error(`topic table: the uplink subtree ${subtree.join("/")} would cover downlink ${name}`);
    }
  }
  return subtree;
}

/** The filters a cloud role may subscribe within, as levels. Exported for tests and the docs. */
export const SUBSCRIBE_GRANTS = {
  uplinks: uplinkSubtree(),
  commandAcks: splitFilter(subscriptionFilter("commandAck")),
} as const satisfies Record<(typeof CLOUD_ROLE_GRANTS)[CloudRole]["subscribeWithin"], readonly string[]>;
