// The topic table and its helpers, tested as the contract the broker ACL, the edge and the cloud rely on.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GATEWAY_ID_PATTERN, MESSAGE_SCHEMAS } from "./messages.js";
import {
  DOWNLINK_TOPIC_NAMES,
  TOPIC_ERROR_CODES,
  TOPIC_NAMES,
  TOPICS,
  TopicError,
  UPLINK_TOPIC_NAMES,
  downlinkTopicFor,
  formatTopic,
  matchTopic,
  subscriptionFilter,
  uplinkTopicsFor,
} from "./topics.js";

const gatewayIds = fc.stringMatching(GATEWAY_ID_PATTERN);
const topicNames = fc.constantFrom(...TOPIC_NAMES);

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof TopicError ? error.code : `not a TopicError: ${String(error)}`;
  }
  return undefined;
}

describe("the topic table", () => {
  it("names a payload schema that exists in MESSAGE_SCHEMAS for every topic", () => {
    for (const name of TOPIC_NAMES) expect(Object.keys(MESSAGE_SCHEMAS)).toContain(TOPICS[name].payload);
  });

  it("keeps every topic under the agri/v1 namespace with the gateway id as the fourth level", () => {
    for (const name of TOPIC_NAMES) expect(TOPICS[name].pattern).toMatch(/^agri\/v1\/gw\/\{gatewayId\}\/(up|down)\//);
  });

  it("gives every topic a distinct pattern", () => {
    expect(new Set(TOPIC_NAMES.map((n) => TOPICS[n].pattern)).size).toBe(TOPIC_NAMES.length);
  });

  it("puts uplinks under /up/ and downlinks under /down/", () => {
    for (const name of UPLINK_TOPIC_NAMES) expect(TOPICS[name].pattern).toContain("/up/");
    for (const name of DOWNLINK_TOPIC_NAMES) expect(TOPICS[name].pattern).toContain("/down/");
  });

  it("uses QoS 1 for every topic", () => {
    for (const name of TOPIC_NAMES) expect(TOPICS[name].qos).toBe(1);
  });

  it("retains only the status topic", () => {
    expect(TOPIC_NAMES.filter((n) => TOPICS[n].retain)).toEqual(["status"]);
  });

  it("never retains commands, so a stale grant or relay order is not replayed on reconnect", () => {
    expect(TOPICS.command.retain).toBe(false);
    expect(TOPICS.command.direction).toBe("downlink");
    expect(TOPICS.command.pattern).toBe("agri/v1/gw/{gatewayId}/down/cmd");
  });

  it("gives alarms a topic of their own, apart from batched events", () => {
    expect(TOPICS.alarm.pattern).toBe("agri/v1/gw/{gatewayId}/up/alarm");
    expect(TOPICS.alarm.payload).toBe("alarmMessage");
    expect(TOPICS.events.payload).toBe("eventBatch");
  });

  it("has one downlink topic, the command topic", () => {
    expect(DOWNLINK_TOPIC_NAMES).toEqual(["command"]);
  });
});

describe("formatTopic and matchTopic", () => {
  it("round-trips every topic for every valid gateway id", () => {
    fc.assert(
      fc.property(topicNames, gatewayIds, (name, gatewayId) => {
        const topic = formatTopic(name, { gatewayId });
        expect(matchTopic(topic)).toEqual({ name, params: { gatewayId } });
      }),
    );
  });

  it("formats the alarm topic of a gateway", () => {
    expect(formatTopic("alarm", { gatewayId: "gw-hubei-017" })).toBe("agri/v1/gw/gw-hubei-017/up/alarm");
  });

  it.each([
    ["a wildcard +", "+"],
    ["a wildcard #", "#"],
    ["an id with a +", "gw+1"],
    ["an id with a #", "gw#1"],
    ["an id with a slash", "gw/1"],
    ["an uppercase id", "GW-1"],
    ["an empty id", ""],
    ["a one-character id", "g"],
    ["an id starting with a hyphen", "-gw"],
    ["an id of 64 characters", "g".repeat(64)],
    ["an id with a space", "gw 1"],
    ["an id with $", "$sys"],
  ])("refuses to format %s", (_what, gatewayId) => {
    expect(errorCode(() => formatTopic("telemetry", { gatewayId }))).toBe(TOPIC_ERROR_CODES.BAD_PARAM);
  });

  it("refuses a missing parameter", () => {
    expect(errorCode(() => formatTopic("telemetry", {} as { gatewayId: string }))).toBe(TOPIC_ERROR_CODES.MISSING_PARAM);
  });

  it("refuses a parameter the topic does not have", () => {
    expect(errorCode(() => formatTopic("telemetry", { gatewayId: "gw-1", meterId: "m1" } as { gatewayId: string }))).toBe(TOPIC_ERROR_CODES.EXTRA_PARAM);
  });

  it("refuses a topic name that is not in the table", () => {
    expect(errorCode(() => formatTopic("nope" as "telemetry", { gatewayId: "gw-1" }))).toBe(TOPIC_ERROR_CODES.UNKNOWN_TOPIC);
  });

  it.each([
    ["another namespace", "agri/v2/gw/gw-1/up/alarm"],
    ["another root", "other/v1/gw/gw-1/up/alarm"],
    ["an extra level", "agri/v1/gw/gw-1/up/alarm/extra"],
    ["a trailing slash", "agri/v1/gw/gw-1/up/alarm/"],
    ["a leading slash", "/agri/v1/gw/gw-1/up/alarm"],
    ["a missing level", "agri/v1/gw/gw-1/up"],
    ["an unknown last level", "agri/v1/gw/gw-1/up/alarms"],
    ["a downlink name under up", "agri/v1/gw/gw-1/up/cmd"],
    ["a + wildcard for the gateway", "agri/v1/gw/+/up/alarm"],
    ["a # wildcard", "agri/v1/gw/gw-1/#"],
    ["an uppercase gateway id", "agri/v1/gw/GW-1/up/alarm"],
    ["an empty gateway id", "agri/v1/gw//up/alarm"],
    ["an empty topic", ""],
  ])("does not match %s", (_what, topic) => {
    expect(matchTopic(topic)).toBeUndefined();
  });

  it("never throws on an arbitrary string", () => {
    fc.assert(
      fc.property(fc.string(), (topic) => {
        const m = matchTopic(topic);
        if (m !== undefined) expect(formatTopic(m.name, m.params)).toBe(topic);
      }),
    );
  });
});

describe("subscriptionFilter", () => {
  it("puts + where a parameter is unbound, so the cloud subscribes to every gateway's alarms", () => {
    expect(subscriptionFilter("alarm")).toBe("agri/v1/gw/+/up/alarm");
  });

  it("fills in a bound parameter", () => {
    expect(subscriptionFilter("command", { gatewayId: "gw-1" })).toBe("agri/v1/gw/gw-1/down/cmd");
  });

  it("equals the formatted topic when every parameter is bound", () => {
    fc.assert(fc.property(topicNames, gatewayIds, (name, gatewayId) => subscriptionFilter(name, { gatewayId }) === formatTopic(name, { gatewayId })));
  });

  it("refuses a wildcard passed as a parameter value", () => {
    expect(errorCode(() => subscriptionFilter("alarm", { gatewayId: "#" }))).toBe(TOPIC_ERROR_CODES.BAD_PARAM);
  });
});

describe("ACL helpers", () => {
  it("lists exactly the gateway's own uplink topics", () => {
    fc.assert(
      fc.property(gatewayIds, (gatewayId) => {
        const topics = uplinkTopicsFor(gatewayId);
        expect(topics).toHaveLength(UPLINK_TOPIC_NAMES.length);
        for (const topic of topics) {
          const m = matchTopic(topic);
          expect(m?.params.gatewayId).toBe(gatewayId);
          expect(m && TOPICS[m.name].direction).toBe("uplink");
        }
      }),
    );
  });

  it("does not list the command topic among uplinks", () => {
    expect(uplinkTopicsFor("gw-1")).not.toContain(downlinkTopicFor("gw-1"));
  });

  it("gives the gateway's own command topic as its only downlink", () => {
    expect(downlinkTopicFor("gw-1")).toBe("agri/v1/gw/gw-1/down/cmd");
  });

  it("shares no topic between two gateways", () => {
    const a = [...uplinkTopicsFor("gw-a"), downlinkTopicFor("gw-a")];
    const b = new Set([...uplinkTopicsFor("gw-b"), downlinkTopicFor("gw-b")]);
    expect(a.filter((t) => b.has(t))).toEqual([]);
  });

  it("refuses a wildcard gateway id, which would widen the ACL", () => {
    expect(errorCode(() => uplinkTopicsFor("+"))).toBe(TOPIC_ERROR_CODES.BAD_PARAM);
    expect(errorCode(() => downlinkTopicFor("#"))).toBe(TOPIC_ERROR_CODES.BAD_PARAM);
  });
});
