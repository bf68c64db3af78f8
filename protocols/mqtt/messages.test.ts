// The message schemas, tested as the contract between gateway and cloud: what must pass, what must be refused and
// where the refusal points.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MESSAGE_NAMES, MESSAGE_SCHEMAS, MESSAGE_VERSION, commandExpired, parseMessage, type MessageName } from "./messages.js";

const at = "2025-04-01T06:30:00+08:00";
const envelope = { v: 1, gatewayId: "gw-hubei-017", seq: 42, sentAt: "2025-04-01T06:30:02.125+08:00" } as const;

const sample = { deviceId: "meter-01", pointId: "importEnergy", role: "import_energy", value: 1234.56, unit: "kWh", at };
const reading = {
  meterId: "meter-01",
  unitId: 1,
  pointId: "importEnergy",
  role: "import_energy",
  registerSeq: 7,
  at,
  // DDS238 import energy: u32 0x0001E240 = 123456 × 0.01 kWh.
  raw: { words: [0x0001, 0xe240], value: 123456 },
  energyWh: 1_234_560,
  conversion: { exact: true, droppedWh: 0 },
};
const alarmRaised = { type: "alarm.raised", deviceId: "smoke-03", cause: "smoke_density", value: 0.21, threshold: 0.15, at, alarmId: "a-1" };

const EVENTS = [
  alarmRaised,
  { type: "alarm.cleared", deviceId: "smoke-03", cause: "smoke_density", at, alarmId: "a-1" },
  { type: "monitoring.gap", deviceId: "smoke-03", at, silentSinceAt: "2025-04-01T06:25:00+08:00", missedPolls: 30 },
  { type: "tamper", deviceId: "meter-01", at, kind: "energy_backwards", detail: "import register fell from 1234560 to 1234000 Wh", registerWh: 1_234_000 },
  { type: "relay.opened", deviceId: "meter-01", at, reason: "credit_exhausted", registerWh: 1_300_000, grantSeq: 3, registerValue: 0, verified: true },
  { type: "relay.closed", deviceId: "meter-01", at, reason: "credit_granted", registerWh: 1_300_000, registerValue: 1, verified: false },
  { type: "device.offline", deviceId: "meter-02", at, consecutiveFailures: 5, lastError: "EDGE_MODBUS_TIMEOUT" },
  { type: "device.online", deviceId: "meter-02", at },
  { type: "grant.applied", meterId: "meter-01", at, grantSeq: 4 },
  { type: "grant.rejected", meterId: "meter-01", at, grantSeq: 2, reason: "older than grant 4 in force" },
  { type: "battery.low", deviceId: "fire-01", at, batteryMv: 3280, thresholdMv: 3300 },
  { type: "battery.ok", deviceId: "fire-01", at, batteryMv: 3420, thresholdMv: 3400 },
] as const;

const commandEnvelope = { v: 1, commandId: "0b7c4f1e-8a8e-4d5b-9c61-3f2a9d7e0c11", issuedAt: "2025-04-01T08:00:00+08:00", expiresAt: "2025-04-01T09:00:00+08:00" };
const creditGrant = {
  type: "credit.grant",
  meterId: "meter-01",
  grantSeq: 5,
  limitWh: 1_500_000,
  reconnect: "automatic",
  friendlyPeriods: [{ from: "22:00", to: "06:00", days: [1, 2, 3, 4, 5] }],
};

const VALID: Record<MessageName, unknown> = {
  telemetryBatch: { ...envelope, samples: [sample, { ...sample, pointId: "voltageL1", role: "voltage", channel: "L1", value: 229.8, unit: "V" }] },
  billingReadings: { ...envelope, readings: [reading] },
  eventBatch: { ...envelope, events: EVENTS },
  alarmMessage: { ...envelope, event: alarmRaised },
  birth: {
    ...envelope,
    version: "0.1.0-rc.1+build.5",
    startedAt: at,
    devices: [{ deviceId: "meter-01", profileId: "hiking-dds238", kind: "meter", bus: "rs485-a", unitId: 1 }],
  },
  status: { v: 1, gatewayId: "gw-hubei-017", state: "online", at },
  command: { ...commandEnvelope, command: creditGrant },
  commandAck: { ...envelope, commandId: commandEnvelope.commandId, status: "accepted" },
};

function issuesOf(name: MessageName, json: unknown): { path: string; message: string }[] {
  const result = parseMessage(name, json);
  if (result.ok) throw new Error(`expected ${name} to be refused`);
  return [...result.issues];
}
function paths(name: MessageName, json: unknown): string[] {
  return issuesOf(name, json).map((i) => i.path);
}
function without<T extends object>(obj: T, key: keyof T): Partial<T> {
  const copy: Partial<T> = { ...obj };
  delete copy[key];
  return copy;
}

describe("valid messages", () => {
  it.each(MESSAGE_NAMES)("parses a valid %s", (name) => {
    const result = parseMessage(name, VALID[name]);
    expect(result).toEqual({ ok: true, value: VALID[name] });
  });

  it.each(EVENTS.map((e) => [e.type, e] as const))("parses a %s event", (_type, event) => {
    expect(parseMessage("eventBatch", { ...envelope, events: [event] }).ok).toBe(true);
  });

  it.each([
    ["a relay order", { type: "relay.set", deviceId: "relay-8ch-1", state: "open", officerId: "officer-7", reason: "fire break order" }],
    ["a config update", { type: "config.update", config: { poll: { intervalMs: 1000 }, buses: [] }, configVersion: 3 }],
    ["a ping", { type: "ping", nonce: "n-1" }],
    ["a grant without friendly periods", { ...creditGrant, friendlyPeriods: undefined, reconnect: "manual" }],
    ["a grant with the village's warning stages", { ...creditGrant, warnAtWh: [37_856, 9_464] }],
    ["a grant whose warning stages rounded to one level", { ...creditGrant, warnAtWh: [0, 0] }],
  ])("parses a command carrying %s", (_what, command) => {
    const body = JSON.parse(JSON.stringify(command)) as unknown;
    expect(parseMessage("command", { ...commandEnvelope, command: body }).ok).toBe(true);
  });

  it("parses the last will, which has no seq and no time", () => {
    expect(parseMessage("status", { v: 1, gatewayId: "gw-1", state: "offline", reason: "connection lost" }).ok).toBe(true);
  });

  it("parses an inexact billing conversion that says what it dropped", () => {
    const inexact = { ...reading, energyWh: 1_234_568, conversion: { exact: false, droppedWh: -0.2 } };
    expect(parseMessage("billingReadings", { ...envelope, readings: [inexact] }).ok).toBe(true);
  });

  it("parses every failed or rejected ack that has a reason", () => {
    for (const status of ["rejected", "failed"]) {
      expect(parseMessage("commandAck", { ...envelope, commandId: commandEnvelope.commandId, status, reason: "command expired" }).ok).toBe(true);
    }
  });

  it("is at version 1", () => {
    expect(MESSAGE_VERSION).toBe(1);
  });
});

describe("envelope refusals", () => {
  it.each(MESSAGE_NAMES)("refuses a %s of another version, naming v", (name) => {
    expect(paths(name, { ...(VALID[name] as object), v: 2 })).toContain("v");
  });

  it.each(MESSAGE_NAMES.filter((n) => n !== "command"))("refuses a %s without gatewayId", (name) => {
    expect(paths(name, without(VALID[name] as { gatewayId: string }, "gatewayId"))).toContain("gatewayId");
  });

  it.each(MESSAGE_NAMES.filter((n) => n !== "command" && n !== "status"))("refuses a %s without seq", (name) => {
    expect(paths(name, without(VALID[name] as { seq: number }, "seq"))).toContain("seq");
  });

  it.each([
    ["a negative seq", -1],
    ["a zero seq", 0],
    ["a fractional seq", 1.5],
    ["a seq past 2^53", 2 ** 53],
    ["a string seq", "42"],
  ])("refuses %s", (_what, seq) => {
    expect(paths("telemetryBatch", { ...(VALID.telemetryBatch as object), seq })).toEqual(["seq"]);
  });

  it.each(["GW-1", "gw/1", "+", "#", ""])("refuses gateway id %j", (gatewayId) => {
    expect(paths("telemetryBatch", { ...(VALID.telemetryBatch as object), gatewayId })).toEqual(["gatewayId"]);
  });

  it("refuses a time without an offset, which is ambiguous", () => {
    expect(paths("telemetryBatch", { ...(VALID.telemetryBatch as object), sentAt: "2025-04-01T06:30:02" })).toEqual(["sentAt"]);
  });

  it("refuses a status that carries a seq, since the will cannot have a meaningful one", () => {
    expect(issuesOf("status", { ...(VALID.status as object), seq: 1 })[0]?.message).toMatch(/seq/);
  });
});

describe("unknown keys", () => {
  it.each(MESSAGE_NAMES)("refuses a %s with an unknown top-level key, naming the key", (name) => {
    const issues = issuesOf(name, { ...(VALID[name] as object), extra: true });
    expect(issues).toEqual([expect.objectContaining({ path: "", message: expect.stringContaining("extra") as unknown })]);
  });

  it("refuses an unknown key inside a sample, naming the sample", () => {
    const issues = issuesOf("telemetryBatch", { ...envelope, samples: [{ ...sample, quality: "good" }] });
    expect(issues).toEqual([expect.objectContaining({ path: "samples.0", message: expect.stringContaining("quality") as unknown })]);
  });

  it("refuses an unknown key inside a command body", () => {
    expect(paths("command", { ...commandEnvelope, command: { ...creditGrant, priceFen: 1 } })).toEqual(["command"]);
  });
});

describe("value refusals", () => {
  it.each([
    ["the string NaN", "NaN"],
    ["null", null],
    ["a numeric string", "1.5"],
  ])("refuses a sample value of %s", (_what, value) => {
    expect(paths("telemetryBatch", { ...envelope, samples: [{ ...sample, value }] })).toEqual(["samples.0.value"]);
  });

  it("refuses a unit the role cannot carry", () => {
    expect(paths("telemetryBatch", { ...envelope, samples: [{ ...sample, unit: "V" }] })).toEqual(["samples.0.unit"]);
  });

  it("refuses a non-energy role in billing readings", () => {
    expect(paths("billingReadings", { ...envelope, readings: [{ ...reading, role: "voltage" }] })).toEqual(["readings.0.role"]);
  });

  it("refuses a fractional or negative energyWh", () => {
    expect(paths("billingReadings", { ...envelope, readings: [{ ...reading, energyWh: 1234.5 }] })).toEqual(["readings.0.energyWh"]);
    expect(paths("billingReadings", { ...envelope, readings: [{ ...reading, energyWh: -1 }] })).toEqual(["readings.0.energyWh"]);
  });

  it("refuses a register word outside 0..65535", () => {
    expect(paths("billingReadings", { ...envelope, readings: [{ ...reading, raw: { words: [0x10000], value: 1 } }] })).toEqual(["readings.0.raw.words.0"]);
  });

  it("refuses an exact conversion that dropped something", () => {
    expect(paths("billingReadings", { ...envelope, readings: [{ ...reading, conversion: { exact: true, droppedWh: 0.5 } }] })).toEqual([
      "readings.0.conversion.droppedWh",
    ]);
  });

  it("refuses the same registerSeq of a meter twice in one batch", () => {
    expect(paths("billingReadings", { ...envelope, readings: [reading, reading] })).toEqual(["readings.1.registerSeq"]);
  });

  it("refuses an event type it does not know", () => {
    expect(paths("eventBatch", { ...envelope, events: [{ ...alarmRaised, type: "alarm.snoozed" }] })).toEqual(["events.0.type"]);
  });

  it("refuses a tamper event on the alarm topic, which carries alarms and monitoring gaps only", () => {
    expect(paths("alarmMessage", { ...envelope, event: EVENTS[3] })).toEqual(["event.type"]);
  });

  it("refuses a relay register value outside one register", () => {
    expect(paths("eventBatch", { ...envelope, events: [{ ...EVENTS[4], registerValue: 65536 }] })).toEqual(["events.0.registerValue"]);
  });

  it("refuses a grant rejection without a reason", () => {
    expect(paths("eventBatch", { ...envelope, events: [without(EVENTS[9], "reason")] })).toEqual(["events.0.reason"]);
  });

  it("refuses a birth that lists a device twice", () => {
    const birth = VALID.birth as { devices: unknown[] };
    expect(paths("birth", { ...birth, devices: [...birth.devices, ...birth.devices] })).toEqual(["devices.1.deviceId"]);
  });

  it("refuses a version that is not semver", () => {
    expect(paths("birth", { ...(VALID.birth as object), version: "v1.2" })).toEqual(["version"]);
  });
});

describe("size bounds", () => {
  it.each([
    ["1001 telemetry samples", "telemetryBatch", { ...envelope, samples: Array.from({ length: 1001 }, () => sample) }, "samples"],
    ["no telemetry samples", "telemetryBatch", { ...envelope, samples: [] }, "samples"],
    ["501 billing readings", "billingReadings", { ...envelope, readings: Array.from({ length: 501 }, (_, i) => ({ ...reading, registerSeq: i + 1 })) }, "readings"],
    ["101 events", "eventBatch", { ...envelope, events: Array.from({ length: 101 }, () => alarmRaised) }, "events"],
    ["no events", "eventBatch", { ...envelope, events: [] }, "events"],
    ["17 friendly periods", "command", { ...commandEnvelope, command: { ...creditGrant, friendlyPeriods: Array.from({ length: 17 }, () => ({ from: "22:00", to: "06:00" })) } }, "command.friendlyPeriods"],
    ["a 201-character relay reason", "command", { ...commandEnvelope, command: { type: "relay.set", deviceId: "r1", state: "open", officerId: "o1", reason: "x".repeat(201) } }, "command.reason"],
    ["a 65-character device id", "telemetryBatch", { ...envelope, samples: [{ ...sample, deviceId: "m".repeat(65) }] }, "samples.0.deviceId"],
    ["a config over 64 KiB", "command", { ...commandEnvelope, command: { type: "config.update", config: { blob: "x".repeat(70_000) }, configVersion: 1 } }, "command.config"],
  ] as const)("refuses %s", (_what, name, json, path) => {
    expect(paths(name, json)).toEqual([path]);
  });

  it("accepts exactly 1000 telemetry samples", () => {
    expect(parseMessage("telemetryBatch", { ...envelope, samples: Array.from({ length: 1000 }, () => sample) }).ok).toBe(true);
  });
});

describe("commands and acks", () => {
  it("refuses a rejected ack without a reason", () => {
    expect(paths("commandAck", { ...envelope, commandId: commandEnvelope.commandId, status: "rejected" })).toEqual(["reason"]);
  });

  it("refuses a failed ack without a reason", () => {
    expect(paths("commandAck", { ...envelope, commandId: commandEnvelope.commandId, status: "failed" })).toEqual(["reason"]);
  });

  it("refuses a command that expires before it was issued", () => {
    expect(paths("command", { ...(VALID.command as object), expiresAt: "2025-04-01T07:59:59+08:00" })).toEqual(["expiresAt"]);
  });

  it("refuses a command that expires the instant it was issued", () => {
    // The same instant written in two offsets: compared as instants, not as strings.
    expect(paths("command", { ...(VALID.command as object), expiresAt: "2025-04-01T00:00:00Z" })).toEqual(["expiresAt"]);
  });

  it("refuses a credit limit that is not a whole Wh", () => {
    expect(paths("command", { ...commandEnvelope, command: { ...creditGrant, limitWh: 1500.5 } })).toEqual(["command.limitWh"]);
  });

  it("refuses a grant sequence of zero", () => {
    expect(paths("command", { ...commandEnvelope, command: { ...creditGrant, grantSeq: 0 } })).toEqual(["command.grantSeq"]);
  });

  it.each([
    ["a time past 23:59", { from: "24:00", to: "06:00" }, "command.friendlyPeriods.0.from"],
    ["an empty period", { from: "06:00", to: "06:00" }, "command.friendlyPeriods.0.to"],
    ["a day 7", { from: "22:00", to: "06:00", days: [7] }, "command.friendlyPeriods.0.days.0"],
    ["a repeated day", { from: "22:00", to: "06:00", days: [1, 1] }, "command.friendlyPeriods.0.days"],
  ])("refuses a friendly period with %s", (_what, period, path) => {
    expect(paths("command", { ...commandEnvelope, command: { ...creditGrant, friendlyPeriods: [period] } })).toEqual([path]);
  });

  it.each([
    ["stage 2 above stage 1", [1_000, 5_000], "command.warnAtWh"],
    ["a negative stage", [1_000, -1], "command.warnAtWh.1"],
    ["a fractional stage", [1_000.5, 200], "command.warnAtWh.0"],
    ["one stage only", [1_000], "command.warnAtWh"],
    ["three stages", [3_000, 2_000, 1_000], "command.warnAtWh"],
  ])("refuses a grant's warnAtWh with %s", (_what, warnAtWh, path) => {
    expect(paths("command", { ...commandEnvelope, command: { ...creditGrant, warnAtWh } })).toEqual([path]);
  });

  it.each([
    ["a negative voltage", { batteryMv: -1 }, "events.0.batteryMv"],
    ["a fractional threshold", { thresholdMv: 3300.5 }, "events.0.thresholdMv"],
    ["an unknown key", { percent: 12 }, "events.0"],
  ])("refuses a battery event with %s", (_what, change, path) => {
    const event = { type: "battery.low", deviceId: "fire-01", at, batteryMv: 3280, thresholdMv: 3300, ...change };
    expect(paths("eventBatch", { ...envelope, events: [event] })).toEqual([path]);
  });

  it("keeps battery events off the alarm lane", () => {
    expect(paths("alarmMessage", { ...envelope, event: { type: "battery.low", deviceId: "fire-01", at, batteryMv: 3280, thresholdMv: 3300 } })).toEqual(["event.type"]);
  });

  it.each(["short", "has space-in-it", "x".repeat(65)])("refuses command id %j", (commandId) => {
    expect(paths("command", { ...(VALID.command as object), commandId })).toEqual(["commandId"]);
  });

  it("treats a command as expired from its expiresAt instant on", () => {
    const expiresMs = Date.parse(commandEnvelope.expiresAt);
    expect(commandExpired(commandEnvelope, expiresMs - 1)).toBe(false);
    expect(commandExpired(commandEnvelope, expiresMs)).toBe(true);
  });
});

describe("parseMessage", () => {
  it("never throws on random JSON, for every schema", () => {
    fc.assert(
      fc.property(fc.constantFrom(...MESSAGE_NAMES), fc.jsonValue(), (name, json) => {
        const result = parseMessage(name, json);
        if (!result.ok) expect(result.issues.length).toBeGreaterThan(0);
      }),
    );
  });

  it("never throws on a valid message with one field replaced by random JSON", () => {
    fc.assert(
      fc.property(fc.constantFrom(...MESSAGE_NAMES), fc.jsonValue(), (name, json) => {
        const valid = VALID[name] as Record<string, unknown>;
        for (const key of Object.keys(valid)) parseMessage(name, { ...valid, [key]: json });
      }),
      { numRuns: 50 },
    );
  });

  it("refuses a schema name it does not know instead of throwing", () => {
    expect(parseMessage("nope" as MessageName, {}).ok).toBe(false);
  });

  it("keeps the table and the name list in step", () => {
    expect(MESSAGE_NAMES).toEqual(Object.keys(MESSAGE_SCHEMAS));
  });
});
