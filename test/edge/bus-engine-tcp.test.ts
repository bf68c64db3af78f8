// The real BusEngine over the real TcpTransport (its own MBAP client) against the simulator's Modbus TCP server:
// decoding, priorities, a dead and a slow device sharing one connection, Modbus exceptions, damaged answers, a
// relay command between polls, connections dropped by the server or by a device, a late answer that must not be
// taken for the next one (transaction ids), and an answer from the wrong unit. Every wait is bounded; timing is
// only ever asserted as a lower bound or as a share of the expected polls.

import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { applyDeviceAction } from "../../firmware-sim/control.js";
import type { FaultInput } from "../../firmware-sim/modbus/faults.js";
import type { MeterModel } from "../../firmware-sim/models/meter.js";
import type { ScenarioInput } from "../../firmware-sim/scenario.js";
import { BusEngine, type BusEngineOptions, type PolledDevice } from "../../edge/modbus/bus-engine.js";
import { ModbusError, ModbusExceptionError, ModbusFrameError, ModbusPortError, ModbusTimeoutError } from "../../edge/modbus/errors.js";
import { TcpTransport } from "../../edge/modbus/tcp-transport.js";
import type { ModbusRequest } from "../../protocols/modbus/pdu.js";
import { baseBusOptions, commonBusBehaviours, DEVICES, polledDevice, startRecordedEngine, type BusDeviceKey, type BusRig } from "./fixtures/bus-behaviours.js";
import { until } from "./fixtures/bus-recording.js";
import { settleWithin, startField, type RunningField } from "../harness/programs.js";

const BUS = "tcp";
const SDM_IMPORT_WH = 1_234_567; // 1234.567 kWh, stored by the SDM120 as an f32 in kWh
const POLL_MS = 200;
/** Loopback answers in well under a millisecond; 250 ms is far above that and still cheap when a device is dead. */
const TIMEOUT_MS = 250;
type DeviceKey = BusDeviceKey;

let running: RunningField;

beforeAll(async () => {
  running = await startField({
    name: "bus-engine-tcp",
    buses: [{ id: BUS, tcp: { port: 0 } }],
    devices: [
      { id: DEVICES.sdm.id, bus: BUS, unit: DEVICES.sdm.unit, profile: DEVICES.sdm.profile, meter: { initialImportWh: SDM_IMPORT_WH } },
      { id: DEVICES.fire.id, bus: BUS, unit: DEVICES.fire.unit, profile: DEVICES.fire.profile, fire: { batteryMv: 3876, humidityPct: 47 } },
      { id: DEVICES.ddsA.id, bus: BUS, unit: DEVICES.ddsA.unit, profile: DEVICES.ddsA.profile },
      { id: DEVICES.ddsB.id, bus: BUS, unit: DEVICES.ddsB.unit, profile: DEVICES.ddsB.profile },
      { id: DEVICES.ddsC.id, bus: BUS, unit: DEVICES.ddsC.unit, profile: DEVICES.ddsC.profile },
    ],
  } satisfies ScenarioInput);
});

afterAll(async () => {
  await running?.close();
});

// ─── harness: a recording wrapper around the real transport, the engine's events, bounded waits ──────────────────


const polled = polledDevice;

type Rig = BusRig;

const rigs: Rig[] = [];

const BASE_OPTIONS: BusEngineOptions = baseBusOptions(BUS, TIMEOUT_MS);

/** A fresh engine with its own connection to the simulator's bus, started. */
function startRig(devices: readonly PolledDevice[], options: Partial<BusEngineOptions> = {}): Rig {
  const rig = startRecordedEngine(new TcpTransport("127.0.0.1", running.tcpPort(BUS)), { ...BASE_OPTIONS, ...options }, devices);
  rigs.push(rig);
  return rig;
}

function fault(key: DeviceKey, f: FaultInput): void {
  applyDeviceAction(running.field, DEVICES[key].id, { action: "fault", fault: f });
}

afterEach(async () => {
  // Put the field back even when an engine fails to stop, so one failure does not cascade into the next tests.
  const stopped = await Promise.allSettled(rigs.splice(0).map((rig) => settleWithin(rig.engine.stop(), 10_000, "BusEngine.stop()")));
  for (const d of Object.values(DEVICES)) {
    running.field.clearFaults(d.id);
    running.field.setAlive(d.id, true);
  }
  for (const key of ["ddsA", "ddsB", "ddsC"] as const) applyDeviceAction(running.field, DEVICES[key].id, { action: "set-relay", closed: true });
  for (const s of stopped) if (s.status === "rejected") throw s.reason;
});

const meter = (key: DeviceKey): MeterModel => running.field.requireDevice(DEVICES[key].id) as MeterModel;

// ─── the behaviours ──────────────────────────────────────────────────────────────────────────────────────────────

describe("BusEngine over Modbus TCP", () => {
  commonBusBehaviours({
    field: () => running.field,
    startRig,
    polled,
    fault,
    meter,
    baseOptions: BASE_OPTIONS,
    pollMs: POLL_MS,
  });

  it("does not let a device that answers after the timeout starve the others", async () => {
    const slowMs = 700;
    fault("ddsA", { kind: "slow", delayMs: slowMs });
    const { events, engine } = startRig([polled("ddsA", "meter", POLL_MS), polled("sdm", "meter", POLL_MS), polled("fire", "fire-sensor", POLL_MS)]);
    // Every answer of the slow device comes after its timeout, so it fails like a dead one and is backed off; the
    // late answers land during later requests and are dropped by their transaction ids.
    await until(() => events.health.some((h) => h.deviceId === DEVICES.ddsA.id && !h.online), 10_000, "the slow device going offline");
    const windowStart = Date.now();
    const windowMs = 4000;
    await sleep(windowMs);
    const expected = windowMs / POLL_MS;
    expect(events.ok(DEVICES.sdm.id, windowStart).length).toBeGreaterThanOrEqual(Math.ceil(0.7 * expected));
    expect(events.ok(DEVICES.fire.id, windowStart).length).toBeGreaterThanOrEqual(Math.ceil(0.7 * expected));
    expect(events.failed(DEVICES.ddsA.id).every((p) => p.error instanceof ModbusTimeoutError)).toBe(true);
    expect(engine.counters.timeouts).toBeGreaterThan(BASE_OPTIONS.health.offlineAfterFailures);
  });

  it("maps exception 02 to ModbusExceptionError with exceptionCode 2 and does not retry it", async () => {
    fault("ddsC", { kind: "exception", code: 2, count: 1 });
    const { events, engine, wire } = startRig([polled("ddsC", "meter", POLL_MS)]);
    await until(() => events.ok(DEVICES.ddsC.id).length >= 1, 10_000, "a good poll after the exception");
    const [first] = events.of(DEVICES.ddsC.id);
    expect(first?.error).toBeInstanceOf(ModbusExceptionError);
    expect((first?.error as ModbusExceptionError).exceptionCode).toBe(2);
    expect(first?.error?.code).toBe("EDGE_MODBUS_EXCEPTION");
    expect(first?.error?.retryable).toBe(false);
    expect(engine.counters.exceptions).toBe(1);
    expect(engine.counters.retries).toBe(0);
    // One request for the failed poll, one for the good one: the exception was not sent again.
    expect(wire.to(DEVICES.ddsC.unit).slice(0, 2).map((s) => s.outcome === "ok")).toEqual([false, true]);
  });

  // TCP has no CRC: the simulator's bad-crc fault sends a well-framed MBAP around a nonsense PDU instead.
  it("retries two damaged answers as frame errors and delivers the third, clean answer", async () => {
    fault("ddsC", { kind: "bad-crc", count: 2 });
    const { events, engine } = startRig([polled("ddsC", "meter", POLL_MS)], { attempts: 3 });
    await until(() => events.of(DEVICES.ddsC.id).length >= 1, 10_000, "the first poll");
    expect(events.of(DEVICES.ddsC.id)[0]?.readings).toBeDefined();
    expect(engine.counters.frameErrors).toBe(2);
    expect(engine.counters.retries).toBe(2);
    expect(engine.counters.timeouts).toBe(0);
  });

  it("reports a ModbusFrameError when every attempt gets a damaged answer", async () => {
    fault("ddsC", { kind: "bad-crc", count: 2 });
    const { events } = startRig([polled("ddsC", "meter", POLL_MS)], { attempts: 2 });
    await until(() => events.ok(DEVICES.ddsC.id).length >= 1, 10_000, "a good poll after the damaged answers");
    const [first, second] = events.of(DEVICES.ddsC.id);
    expect(first?.error).toBeInstanceOf(ModbusFrameError);
    expect(first?.error?.code).toBe("EDGE_MODBUS_FRAME");
    expect(second?.readings).toBeDefined();
  });

  for (const kind of ["garbage", "truncated"] as const) {
    it(`survives a ${kind} answer and reads the device at the very next poll`, async () => {
      fault("ddsC", { kind, count: 1 });
      // One attempt per poll, so a retry cannot hide a stream left out of step by the damaged answer.
      const { events } = startRig([polled("ddsC", "meter", POLL_MS)], { attempts: 1 });
      await until(() => events.of(DEVICES.ddsC.id).length >= 3, 10_000, "three polls of the device");
      const [first, second, third] = events.of(DEVICES.ddsC.id);
      expect(first?.error).toBeInstanceOf(ModbusError);
      expect(second?.readings, `second poll: ${String(second?.error)}`).toBeDefined();
      expect(third?.readings, `third poll: ${String(third?.error)}`).toBeDefined();
    });
  }

  it("runs a relay write queued while polls run before the next poll, and the meter's relay opens", async () => {
    const devices = [polled("ddsA", "meter", 50), polled("ddsB", "meter", 50), polled("fire", "fire-sensor", 50)];
    const { engine, wire, events } = startRig(devices);
    await until(() => events.polls.length >= 6, 10_000, "polls running");
    expect(meter("ddsA").relayClosed).toBe(true);

    const queuedAt = wire.sent.length;
    const inFlight = wire.sent.at(-1)?.outcome === undefined ? wire.sent.at(-1) : undefined;
    const answer = await settleWithin(engine.command(DEVICES.ddsA.unit, { fc: 16, address: 0x001a, values: [0] }), 5000, "the relay command");
    expect(answer).toEqual({ fc: 16, address: 0x001a, quantity: 1 });
    expect(meter("ddsA").relayClosed).toBe(false);

    // Nothing but the rest of the poll already on the line may go before the command.
    const commandAt = wire.sent.findIndex((s, i) => i >= queuedAt && s.fc === 16);
    const before = wire.sent.slice(queuedAt, commandAt);
    if (inFlight === undefined) expect(before).toEqual([]);
    else {
      const planLength = devices.find((d) => d.unitId === inFlight.unitId)?.plan.length ?? 0;
      expect(before.every((s) => s.unitId === inFlight.unitId)).toBe(true);
      expect(before.length).toBeLessThan(planLength);
    }

    const polledAfter = events.ok(DEVICES.ddsA.id).length;
    engine.pollSoon(DEVICES.ddsA.id);
    await until(() => events.ok(DEVICES.ddsA.id).length > polledAfter, 5000, "a poll after the write");
    const relay = events.latest(DEVICES.ddsA.id, "relay");
    expect(relay?.ok && relay.value).toBe(0);
  });

  it("reconnects by itself after the server drops every connection, and polling goes on", async () => {
    const { events, wire } = startRig([polled("sdm", "meter", POLL_MS), polled("fire", "fire-sensor", POLL_MS)]);
    await until(() => events.ok(DEVICES.sdm.id).length >= 1 && events.ok(DEVICES.fire.id).length >= 1, 10_000, "polls before the drop");
    const server = running.field.requireBus(BUS).tcp;
    expect(server?.connections()).toBe(1);

    server?.dropConnections();
    const droppedAt = Date.now();
    await until(() => events.ok(DEVICES.sdm.id, droppedAt).length >= 2 && events.ok(DEVICES.fire.id, droppedAt).length >= 2, 10_000, "polls after the drop");
    expect(server?.connections()).toBe(1);
    expect(wire.isOpen()).toBe(true);
    expect(events.health).toEqual([]);
  });

  it("answers a device that drops the connection mid-request with a port error and a retry on a new connection", async () => {
    fault("ddsC", { kind: "disconnect", count: 1 });
    const { events, engine, wire } = startRig([polled("ddsC", "meter", POLL_MS)], { attempts: 3 });
    await until(() => events.of(DEVICES.ddsC.id).length >= 1, 10_000, "the first poll");
    expect(events.of(DEVICES.ddsC.id)[0]?.readings).toBeDefined();
    expect(wire.to(DEVICES.ddsC.unit).map((s) => (s.outcome === "ok" ? "ok" : s.outcome?.constructor.name))).toEqual(["ModbusPortError", "ok"]);
    expect(engine.counters.portErrors).toBe(1);
    expect(engine.counters.retries).toBe(1);
    expect(running.field.requireBus(BUS).tcp?.connections()).toBe(1);
  });

  it("fails the poll with ModbusPortError when the connection drops on every attempt, and reads again afterwards", async () => {
    fault("ddsC", { kind: "disconnect", count: 2 });
    const { events } = startRig([polled("ddsC", "meter", POLL_MS)], { attempts: 2 });
    await until(() => events.ok(DEVICES.ddsC.id).length >= 1, 10_000, "a good poll after the drops");
    const [first, second] = events.of(DEVICES.ddsC.id);
    expect(first?.error).toBeInstanceOf(ModbusPortError);
    expect(second?.readings).toBeDefined();
  });

  it("does not take a late answer to a timed-out request for the answer to the next one", async () => {
    // Request 1 is answered 800 ms late, after its 600 ms timeout: while request 2 (answered after 450 ms) waits.
    fault("ddsA", { kind: "slow", delayMs: 800, count: 1 });
    fault("ddsA", { kind: "slow", delayMs: 450, count: 1 });
    const counters = running.field.requireBus(BUS).bus.counters;
    const played = counters.faultsPlayed;
    const { engine } = startRig([], { timeoutMs: 600, attempts: 1 });
    const readRelay: ModbusRequest = { fc: 3, address: 0x001a, quantity: 1 };

    const first = engine.command(DEVICES.ddsA.unit, readRelay).then(
      (answer) => answer,
      (err: unknown) => err,
    );
    await until(() => counters.faultsPlayed > played, 5000, "request 1 at the device");
    // The device has taken its answer to request 1 (relay on); from now on the register says off.
    applyDeviceAction(running.field, DEVICES.ddsA.id, { action: "set-relay", closed: false });
    expect(await settleWithin(first, 5000, "request 1")).toBeInstanceOf(ModbusTimeoutError);

    const second = await settleWithin(engine.command(DEVICES.ddsA.unit, readRelay), 5000, "request 2");
    expect(counters.faultsPlayed).toBe(played + 2);
    expect(second).toEqual({ fc: 3, words: [0] });
  });

  it("does not accept an answer that carries another unit id as the requested unit's answer", async () => {
    fault("ddsA", { kind: "wrong-unit", answerAs: DEVICES.ddsB.unit, count: 1 });
    const { engine } = startRig([], { attempts: 1 });
    const readRelay: ModbusRequest = { fc: 3, address: 0x001a, quantity: 1 };
    const refused = await settleWithin(
      engine.command(DEVICES.ddsA.unit, readRelay).then(
        (answer) => answer,
        (err: unknown) => err,
      ),
      5000,
      "the read answered by the wrong unit",
    );
    expect(refused).toBeInstanceOf(ModbusError);
    expect(await settleWithin(engine.command(DEVICES.ddsA.unit, readRelay), 5000, "the next read")).toEqual({ fc: 3, words: [1] });
  });
});

describe("BusEngine loop", () => {
  it("keeps polling when an event handler throws, and reports the error", async () => {
    const wire = new TcpTransport("127.0.0.1", running.tcpPort(BUS));
    const loopErrors: Error[] = [];
    let readings = 0;
    const engine = new BusEngine(wire, BASE_OPTIONS, {
      onReadings: () => {
        readings++;
        throw new Error("handler bug");
      },
      onPollFailed: () => undefined,
      onHealthChange: () => undefined,
      onLoopError: (err) => loopErrors.push(err),
    });
    engine.addDevice(polled("sdm", "meter", 50));
    engine.start();
    try {
      const deadline = Date.now() + 5000;
      while (readings < 5 && Date.now() < deadline) await sleep(20);
      expect(readings).toBeGreaterThanOrEqual(5);
      expect(loopErrors[0]?.message).toBe("handler bug");
    } finally {
      await engine.stop();
    }
  });
});
