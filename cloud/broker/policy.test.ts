// The broker policy as pure decisions: no sockets, no secrets checked, one behaviour per test.

import { describe, expect, it } from "vitest";
import { downlinkTopicFor, formatTopic, subscriptionFilter, uplinkTopicsFor } from "../../protocols/mqtt/topics.js";
import {
  BROKER_DENY,
  CONNACK_REFUSAL,
  SUBSCRIBE_GRANTS,
  admitClient,
  authorizePublish,
  authorizeSubscribe,
  filterWithin,
  lookupUser,
  stillRegistered,
  type Decision,
  type Identity,
  type RegistrySnapshot,
} from "./policy.js";

const registry: RegistrySnapshot = {
  gateways: new Map([
    ["gw-a", { secretHash: "hash-a", enabled: true }],
    ["gw-b", { secretHash: "hash-b", enabled: true }],
    ["gw-off", { secretHash: "hash-off", enabled: false }],
  ]),
  cloudClients: new Map([
    ["cloud-ingest", { secretHash: "hash-ingest", role: "ingest" as const }],
    ["cloud-command", { secretHash: "hash-command", role: "command" as const }],
  ]),
};

const gwA: Identity = { kind: "gateway", gatewayId: "gw-a" };
const ingest: Identity = { kind: "cloud", username: "cloud-ingest", role: "ingest" };
const command: Identity = { kind: "cloud", username: "cloud-command", role: "command" };
const limits = { maxPayloadBytes: 1024 };

function publish(topic: string, overrides: { retain?: boolean; payloadBytes?: number } = {}) {
  return { topic, retain: overrides.retain ?? false, payloadBytes: overrides.payloadBytes ?? 100 };
}

function reasonOf(decision: Decision): string | undefined {
  return decision.allow ? undefined : decision.reason;
}

describe("lookupUser: which identity a username names", () => {
  it("names a registered gateway by its gateway id, with its secret hash", () => {
    expect(lookupUser(registry, "gw-a")).toEqual({ found: true, identity: gwA, secretHash: "hash-a" });
  });

  it("names a cloud client with its role", () => {
    expect(lookupUser(registry, "cloud-ingest")).toEqual({ found: true, identity: ingest, secretHash: "hash-ingest" });
  });

  it("refuses an unknown username with return code 4, the same as a wrong secret", () => {
    expect(lookupUser(registry, "gw-zz")).toMatchObject({ found: false, reason: BROKER_DENY.UNKNOWN_USER, returnCode: CONNACK_REFUSAL.BAD_USERNAME_OR_PASSWORD });
  });

  it("refuses a login without a username", () => {
    expect(lookupUser(registry, undefined)).toMatchObject({ found: false, reason: BROKER_DENY.NO_CREDENTIALS, returnCode: 4 });
    expect(lookupUser(registry, "")).toMatchObject({ found: false, reason: BROKER_DENY.NO_CREDENTIALS });
  });

  it("refuses a username that is both a gateway and a cloud client rather than guess its rights", () => {
    const clash: RegistrySnapshot = { ...registry, cloudClients: new Map([["gw-a", { secretHash: "x", role: "ingest" as const }]]) };
    expect(lookupUser(clash, "gw-a")).toMatchObject({ found: false, reason: BROKER_DENY.AMBIGUOUS_USER, returnCode: 5 });
  });
});

describe("admitClient: may this identity connect with this client id", () => {
  it("admits a gateway whose client id is its gateway id", () => {
    expect(admitClient(registry, gwA, "gw-a")).toEqual({ allow: true });
  });

  it("refuses a gateway whose client id differs from its gateway id (identifier rejected), so it cannot take another session", () => {
    expect(admitClient(registry, gwA, "gw-b")).toMatchObject({ allow: false, reason: BROKER_DENY.CLIENT_ID_MISMATCH, returnCode: CONNACK_REFUSAL.IDENTIFIER_REJECTED });
  });

  it("refuses a disabled gateway with return code 5 (not authorized)", () => {
    expect(admitClient(registry, { kind: "gateway", gatewayId: "gw-off" }, "gw-off")).toMatchObject({
      allow: false,
      reason: BROKER_DENY.GATEWAY_DISABLED,
      returnCode: CONNACK_REFUSAL.NOT_AUTHORIZED,
    });
  });

  it("admits a cloud client under its username or its username with a suffix", () => {
    expect(admitClient(registry, ingest, "cloud-ingest")).toEqual({ allow: true });
    expect(admitClient(registry, ingest, "cloud-ingest-2")).toEqual({ allow: true });
  });

  it("refuses a cloud client presenting a gateway's client id", () => {
    expect(reasonOf(admitClient(registry, ingest, "gw-a"))).toBe(BROKER_DENY.CLIENT_ID_MISMATCH);
  });

  it("refuses a cloud client presenting another cloud client's id", () => {
    expect(reasonOf(admitClient(registry, ingest, "cloud-command"))).toBe(BROKER_DENY.CLIENT_ID_MISMATCH);
    expect(reasonOf(admitClient(registry, ingest, "cloud-ingest-"))).toBe(BROKER_DENY.CLIENT_ID_MISMATCH);
  });
});

describe("stillRegistered: rights end when the registry changes", () => {
  it("keeps an enabled gateway's rights", () => {
    expect(stillRegistered(registry, gwA)).toEqual({ allow: true });
  });

  it("withdraws a gateway's rights once it is disabled", () => {
    expect(reasonOf(stillRegistered(registry, { kind: "gateway", gatewayId: "gw-off" }))).toBe(BROKER_DENY.GATEWAY_DISABLED);
  });

  it("withdraws a gateway's rights once it is removed", () => {
    expect(reasonOf(stillRegistered(registry, { kind: "gateway", gatewayId: "gw-gone" }))).toBe(BROKER_DENY.UNKNOWN_USER);
  });

  it("withdraws a cloud client's rights when its role changed", () => {
    expect(reasonOf(stillRegistered(registry, { kind: "cloud", username: "cloud-ingest", role: "command" }))).toBe(BROKER_DENY.ROLE_NOT_PERMITTED);
  });
});

describe("authorizePublish", () => {
  it("lets a gateway publish to each of its own uplink topics", () => {
    for (const topic of uplinkTopicsFor("gw-a")) expect(authorizePublish(gwA, publish(topic), limits)).toEqual({ allow: true });
  });

  it("denies a gateway publishing to another gateway's uplink topic", () => {
    expect(reasonOf(authorizePublish(gwA, publish(formatTopic("telemetry", { gatewayId: "gw-b" })), limits))).toBe(BROKER_DENY.FOREIGN_TOPIC);
  });

  it("denies a gateway publishing a command, even to itself", () => {
    expect(reasonOf(authorizePublish(gwA, publish(downlinkTopicFor("gw-a")), limits))).toBe(BROKER_DENY.WRONG_DIRECTION);
    expect(reasonOf(authorizePublish(gwA, publish(downlinkTopicFor("gw-b")), limits))).toBe(BROKER_DENY.WRONG_DIRECTION);
  });

  it("denies topics from another namespace or outside the table", () => {
    for (const topic of ["agri/v2/gw/gw-a/up/telemetry", "other/gw-a/up/telemetry", "agri/v1/gw/gw-a/up/telemetry/extra", "$SYS/broker/x", "agri/v1/gw/gw-a/up/nope"]) {
      expect(reasonOf(authorizePublish(gwA, publish(topic), limits))).toBe(BROKER_DENY.UNKNOWN_TOPIC);
    }
  });

  it("allows retain on a gateway's own status topic, its last will", () => {
    expect(authorizePublish(gwA, publish(formatTopic("status", { gatewayId: "gw-a" }), { retain: true }), limits)).toEqual({ allow: true });
  });

  it("denies retain on every other topic", () => {
    expect(reasonOf(authorizePublish(gwA, publish(formatTopic("alarm", { gatewayId: "gw-a" }), { retain: true }), limits))).toBe(BROKER_DENY.RETAIN_NOT_ALLOWED);
    expect(reasonOf(authorizePublish(command, publish(downlinkTopicFor("gw-a"), { retain: true }), limits))).toBe(BROKER_DENY.RETAIN_NOT_ALLOWED);
  });

  it("denies a payload above the limit and allows one at it", () => {
    const topic = formatTopic("telemetry", { gatewayId: "gw-a" });
    expect(reasonOf(authorizePublish(gwA, publish(topic, { payloadBytes: 1025 }), limits))).toBe(BROKER_DENY.PAYLOAD_TOO_LARGE);
    expect(authorizePublish(gwA, publish(topic, { payloadBytes: 1024 }), limits)).toEqual({ allow: true });
  });

  it("lets the command client publish commands to any gateway", () => {
    expect(authorizePublish(command, publish(downlinkTopicFor("gw-b")), limits)).toEqual({ allow: true });
  });

  it("denies the command client publishing on an uplink, which would forge a gateway's data", () => {
    expect(reasonOf(authorizePublish(command, publish(formatTopic("billing", { gatewayId: "gw-a" })), limits))).toBe(BROKER_DENY.ROLE_NOT_PERMITTED);
  });

  it("denies the ingest client any publish", () => {
    expect(reasonOf(authorizePublish(ingest, publish(downlinkTopicFor("gw-a")), limits))).toBe(BROKER_DENY.ROLE_NOT_PERMITTED);
    expect(reasonOf(authorizePublish(ingest, publish(formatTopic("alarm", { gatewayId: "gw-a" })), limits))).toBe(BROKER_DENY.ROLE_NOT_PERMITTED);
  });
});

describe("authorizeSubscribe", () => {
  it("lets a gateway subscribe to exactly its own command topic", () => {
    expect(authorizeSubscribe(gwA, downlinkTopicFor("gw-a"))).toEqual({ allow: true });
  });

  it("denies a gateway subscribing to another gateway's command topic", () => {
    expect(reasonOf(authorizeSubscribe(gwA, downlinkTopicFor("gw-b")))).toBe(BROKER_DENY.FOREIGN_TOPIC);
  });

  it("denies a gateway any wildcard, even one covering only its own topics", () => {
    for (const filter of [subscriptionFilter("command"), "agri/v1/gw/gw-a/down/#", "agri/v1/gw/gw-a/+/cmd", "#"]) {
      expect(reasonOf(authorizeSubscribe(gwA, filter))).toBe(BROKER_DENY.WILDCARD_NOT_ALLOWED);
    }
  });

  it("denies a gateway subscribing to uplinks, its own included", () => {
    expect(reasonOf(authorizeSubscribe(gwA, formatTopic("status", { gatewayId: "gw-a" })))).toBe(BROKER_DENY.WRONG_DIRECTION);
  });

  it("denies a gateway a topic from another namespace", () => {
    expect(reasonOf(authorizeSubscribe(gwA, "agri/v2/gw/gw-a/down/cmd"))).toBe(BROKER_DENY.UNKNOWN_TOPIC);
  });

  it("lets the ingest client subscribe to every gateway's uplinks, all or by topic or by gateway", () => {
    for (const filter of ["agri/v1/gw/+/up/#", "agri/v1/gw/+/up/+", subscriptionFilter("alarm"), "agri/v1/gw/gw-a/up/#", formatTopic("billing", { gatewayId: "gw-b" })]) {
      expect(authorizeSubscribe(ingest, filter)).toEqual({ allow: true });
    }
  });

  it("denies the ingest client filters that reach beyond the uplinks", () => {
    for (const filter of ["#", "agri/v1/#", "agri/v1/gw/+/#", "agri/v1/gw/+/+/#", "agri/v1/gw/+/+/cmd", subscriptionFilter("command"), "agri/v1/gw/+/up", "agri/v2/gw/+/up/#"]) {
      expect(reasonOf(authorizeSubscribe(ingest, filter))).toBe(BROKER_DENY.ROLE_NOT_PERMITTED);
    }
  });

  it("lets the command client follow command acknowledgements and nothing else", () => {
    expect(authorizeSubscribe(command, subscriptionFilter("commandAck"))).toEqual({ allow: true });
    expect(authorizeSubscribe(command, formatTopic("commandAck", { gatewayId: "gw-a" }))).toEqual({ allow: true });
    expect(reasonOf(authorizeSubscribe(command, "agri/v1/gw/+/up/#"))).toBe(BROKER_DENY.ROLE_NOT_PERMITTED);
    expect(reasonOf(authorizeSubscribe(command, subscriptionFilter("command")))).toBe(BROKER_DENY.ROLE_NOT_PERMITTED);
  });

  it("denies filters that break MQTT's wildcard rules", () => {
    for (const filter of ["", "agri/v1/gw/#/up", "agri/v1/gw/gw-a+/up/#", "agri/v1/gw/+/up/al#", "agri/v1/gw/+/up/\u0000"]) {
      expect(reasonOf(authorizeSubscribe(ingest, filter))).toBe(BROKER_DENY.INVALID_FILTER);
    }
  });
});

describe("the grants derived from the topic table", () => {
  it("makes the ingest grant the uplink subtree agri/v1/gw/+/up/#", () => {
    expect(SUBSCRIBE_GRANTS.uplinks).toEqual(["agri", "v1", "gw", "+", "up", "#"]);
  });

  it("covers every uplink topic and no downlink topic with the ingest grant", () => {
    for (const topic of uplinkTopicsFor("gw-a")) expect(filterWithin(topic.split("/"), SUBSCRIBE_GRANTS.uplinks)).toBe(true);
    expect(filterWithin(downlinkTopicFor("gw-a").split("/"), SUBSCRIBE_GRANTS.uplinks)).toBe(false);
  });

  it("treats a '+' in the grant as one level, not as '#'", () => {
    expect(filterWithin(["a", "+"], ["a", "+"])).toBe(true);
    expect(filterWithin(["a", "x"], ["a", "+"])).toBe(true);
    expect(filterWithin(["a", "#"], ["a", "+"])).toBe(false);
    expect(filterWithin(["a", "x", "y"], ["a", "+"])).toBe(false);
  });
});
