// routeMessage as the ingest's contract: every uplink of the table accepted with its gateway and seq, and every
// refusal with its reason, without a socket.

import { describe, expect, it } from "vitest";
import { formatTopic, UPLINK_TOPIC_NAMES } from "../../protocols/mqtt/topics.js";
import { INGEST_REJECT, routeMessage, type UplinkName } from "./route.js";

const GW = "gw-hubei-017";
const at = "2025-04-01T06:30:00+08:00";
const envelope = { v: 1, gatewayId: GW, seq: 42, sentAt: "2025-04-01T06:30:02.125+08:00" } as const;
const alarmRaised = { type: "alarm.raised", deviceId: "smoke-03", cause: "smoke_density", value: 0.21, threshold: 0.15, at, alarmId: "a-1" };
const reading = {
  meterId: "meter-01",
  unitId: 1,
  pointId: "importEnergy",
  role: "import_energy",
  registerSeq: 7,
  at,
  raw: { words: [0x0001, 0xe240], value: 123456 },
  energyWh: 1_234_560,
  conversion: { exact: true, droppedWh: 0 },
};

const VALID: Record<UplinkName, Record<string, unknown>> = {
  telemetry: { ...envelope, samples: [{ deviceId: "meter-01", pointId: "voltageL1", role: "voltage", channel: "L1", value: 229.8, unit: "V", at }] },
  billing: { ...envelope, readings: [reading] },
  events: { ...envelope, events: [alarmRaised, { type: "device.online", deviceId: "meter-02", at }] },
  alarm: { ...envelope, event: alarmRaised },
  birth: { ...envelope, version: "0.1.0", startedAt: at, devices: [{ deviceId: "meter-01", profileId: "hiking-dds238", kind: "meter", bus: "rs485-a", unitId: 1 }] },
  status: { v: 1, gatewayId: GW, state: "offline", reason: "connection lost" },
  commandAck: { ...envelope, commandId: "0b7c4f1e-8a8e-4d5b-9c61-3f2a9d7e0c11", status: "accepted" },
};

const deps = { maxPayloadBytes: 64 * 1024 };
const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const topic = (name: UplinkName, gatewayId = GW): string => formatTopic(name, { gatewayId });

describe("routeMessage", () => {
  it("covers every uplink topic of the table", () => {
    expect(Object.keys(VALID).sort()).toEqual([...UPLINK_TOPIC_NAMES].sort());
  });

  for (const name of Object.keys(VALID) as UplinkName[]) {
    it(`accepts a valid ${name} message with its gateway id and seq`, () => {
      const result = routeMessage(topic(name), bytes(VALID[name]), deps);
      expect(result).toMatchObject({ kind: "accepted", name, gatewayId: GW });
      if (result.kind !== "accepted") return;
      if (name === "status") expect(result).not.toHaveProperty("seq");
      else expect(result.seq).toBe(42);
      expect(result.message).toMatchObject({ gatewayId: GW });
    });
  }

  it("rejects a topic outside the table as INGEST_UNKNOWN_TOPIC", () => {
    for (const t of [`agri/v1/gw/${GW}/up/nonsense`, "agri/v2/gw/x1/up/billing", `agri/v1/gw/${GW}/up/billing/extra`, "agri/v1/gw/+/up/billing", ""]) {
      expect(routeMessage(t, bytes(VALID.billing), deps)).toMatchObject({ kind: "rejected", reason: INGEST_REJECT.UNKNOWN_TOPIC });
    }
  });

  it("rejects a downlink topic as INGEST_NOT_UPLINK", () => {
    expect(routeMessage(formatTopic("command", { gatewayId: GW }), bytes({}), deps)).toMatchObject({ kind: "rejected", reason: INGEST_REJECT.NOT_UPLINK, gatewayId: GW });
  });

  it("rejects a payload over the byte limit before decoding it", () => {
    const big = new Uint8Array(deps.maxPayloadBytes + 1).fill(0x7b);
    expect(routeMessage(topic("telemetry"), big, deps)).toMatchObject({ kind: "rejected", reason: INGEST_REJECT.PAYLOAD_TOO_LARGE, gatewayId: GW });
    // Exactly at the limit is decoded (and refused here only for being bad JSON).
    expect(routeMessage(topic("telemetry"), big.subarray(1), deps)).toMatchObject({ reason: INGEST_REJECT.NOT_JSON });
  });

  it("rejects bytes that are not JSON, or not UTF-8, as INGEST_NOT_JSON", () => {
    for (const payload of [new TextEncoder().encode("{not json"), new Uint8Array([]), new Uint8Array([0x22, 0xff, 0xfe, 0x22])]) {
      expect(routeMessage(topic("billing"), payload, deps)).toMatchObject({ kind: "rejected", reason: INGEST_REJECT.NOT_JSON });
    }
  });

  it("rejects a payload that fails its topic's schema with the issue paths", () => {
    const bad = { ...VALID.billing, readings: [{ ...reading, energyWh: 1.5 }] };
    const result = routeMessage(topic("billing"), bytes(bad), deps);
    expect(result).toMatchObject({ kind: "rejected", reason: INGEST_REJECT.INVALID_PAYLOAD });
    if (result.kind !== "rejected") return;
    expect(result.issues?.map((i) => i.path)).toContain("readings.0.energyWh");
    expect(result.detail).toContain("readings.0.energyWh");
  });

  it("checks the payload against the topic's schema, not any schema it happens to match", () => {
    expect(routeMessage(topic("telemetry"), bytes(VALID.billing), deps)).toMatchObject({ reason: INGEST_REJECT.INVALID_PAYLOAD });
    expect(routeMessage(topic("billing"), bytes(null), deps)).toMatchObject({ reason: INGEST_REJECT.INVALID_PAYLOAD });
  });

  it("rejects a payload that speaks for another gateway as INGEST_GATEWAY_MISMATCH", () => {
    for (const name of Object.keys(VALID) as UplinkName[]) {
      const result = routeMessage(topic(name, "gw-other-001"), bytes(VALID[name]), deps);
      expect(result).toMatchObject({ kind: "rejected", reason: INGEST_REJECT.GATEWAY_MISMATCH, gatewayId: "gw-other-001" });
    }
  });

  it("never throws on hostile input", () => {
    const samples = ["__proto__", '{"__proto__":{"x":1}}', "1e999999", "[".repeat(10_000), '"\\ud800"'];
    for (const s of samples) expect(() => routeMessage(topic("events"), new TextEncoder().encode(s), deps)).not.toThrow();
  });
});
