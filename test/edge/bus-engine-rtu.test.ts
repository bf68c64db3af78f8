// The real BusEngine over the real RtuTransport (modbus-serial + serialport) against the simulator's RTU bus on a
// socat pty at 9600 8N1: decoding, priorities, a dead and a slow device on a shared half-duplex bus, Modbus
// exceptions, damaged frames, a relay command between polls, and a USB-RS485 adapter pulled out and plugged back.
// Every wait is bounded; timing is only ever asserted as a lower bound or as a share of the expected polls.

import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { applyDeviceAction } from "../../firmware-sim/control.js";
import type { FaultInput } from "../../firmware-sim/modbus/faults.js";
import type { MeterModel } from "../../firmware-sim/models/meter.js";
import type { ScenarioInput } from "../../firmware-sim/scenario.js";
import type { BusEngineOptions, PolledDevice } from "../../edge/modbus/bus-engine.js";
import { ModbusError, ModbusExceptionError, ModbusFrameError, ModbusPortError, ModbusTimeoutError } from "../../edge/modbus/errors.js";
import { RtuTransport } from "../../edge/modbus/rtu-transport.js";
import { baseBusOptions, commonBusBehaviours, DEVICES, polledDevice, startRecordedEngine, type BusDeviceKey, type BusRig } from "./fixtures/bus-behaviours.js";
import { until } from "./fixtures/bus-recording.js";
import { requireProgram, settleWithin, startField, tempPath, type RunningField } from "../harness/programs.js";

const BUS = "rtu";
const PATH = tempPath("agri-bus-engine-rtu");
const SDM_IMPORT_WH = 1_234_567; // 1234.567 kWh, stored by the SDM120 as an f32 in kWh
const POLL_MS = 200;
/** A pty answers in a few milliseconds; 250 ms is far above that and still cheap when a device is dead. */
const TIMEOUT_MS = 250;
type DeviceKey = BusDeviceKey;

let running: RunningField;

beforeAll(async () => {
  const socat = requireProgram("socat", ["-V"]);
  running = await startField(
    {
      name: "bus-engine-rtu",
      buses: [{ id: BUS, rtu: { path: PATH, baud: 9600, parity: "none", stopBits: 1 } }],
      devices: [
        { id: DEVICES.sdm.id, bus: BUS, unit: DEVICES.sdm.unit, profile: DEVICES.sdm.profile, meter: { initialImportWh: SDM_IMPORT_WH } },
        { id: DEVICES.fire.id, bus: BUS, unit: DEVICES.fire.unit, profile: DEVICES.fire.profile, fire: { batteryMv: 3876, humidityPct: 47 } },
        { id: DEVICES.ddsA.id, bus: BUS, unit: DEVICES.ddsA.unit, profile: DEVICES.ddsA.profile },
        { id: DEVICES.ddsB.id, bus: BUS, unit: DEVICES.ddsB.unit, profile: DEVICES.ddsB.profile },
        { id: DEVICES.ddsC.id, bus: BUS, unit: DEVICES.ddsC.unit, profile: DEVICES.ddsC.profile },
      ],
    } satisfies ScenarioInput,
    { socatPath: socat },
  );
});

afterAll(async () => {
  await running?.close();
});

// ─── harness: a recording wrapper around the real transport, the engine's events, bounded waits ──────────────────


const polled = polledDevice;

type Rig = BusRig;

const rigs: Rig[] = [];

const BASE_OPTIONS: BusEngineOptions = baseBusOptions(BUS, TIMEOUT_MS);

/** A fresh engine and transport on the bus (one at a time: the pty is one RS-485 line), started. */
function startRig(devices: readonly PolledDevice[], options: Partial<BusEngineOptions> = {}): Rig {
  const rig = startRecordedEngine(new RtuTransport({ path: PATH, baud: 9600, parity: "none", stopBits: 1 }), { ...BASE_OPTIONS, ...options }, devices);
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
  if (!running.field.requireBus(BUS).pty) await running.field.replug(BUS);
  for (const s of stopped) if (s.status === "rejected") throw s.reason;
});

const meter = (key: DeviceKey): MeterModel => running.field.requireDevice(DEVICES[key].id) as MeterModel;

// ─── the behaviours ──────────────────────────────────────────────────────────────────────────────────────────────

describe("BusEngine over Modbus RTU on a pty", () => {
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
    // Answers 8 s late: long after their timeout and after this test's window, so the device fails like a dead one
    // and is backed off. (RTU has no transaction id: an answer landing while the same unit's next request waits
    // would be taken for its answer. The TCP twin of this test lets late answers land and checks they are not.)
    fault("ddsA", { kind: "slow", delayMs: 8000 });
    const { events, engine } = startRig([polled("ddsA", "meter", POLL_MS), polled("sdm", "meter", POLL_MS), polled("fire", "fire-sensor", POLL_MS)]);
    await until(() => events.health.some((h) => h.deviceId === DEVICES.ddsA.id && !h.online), 10_000, "the slow device going offline");
    const windowStart = Date.now();
    const windowMs = 4000;
    await sleep(windowMs);
    const expected = windowMs / POLL_MS;
    expect(events.ok(DEVICES.sdm.id, windowStart).length).toBeGreaterThanOrEqual(Math.ceil(0.7 * expected));
    expect(events.ok(DEVICES.fire.id, windowStart).length).toBeGreaterThanOrEqual(Math.ceil(0.7 * expected));
    expect(events.failed(DEVICES.ddsA.id).every((p) => p.error instanceof ModbusTimeoutError)).toBe(true);
    expect(engine.counters.timeouts).toBeGreaterThan(BASE_OPTIONS.health.offlineAfterFailures);
    // Unplugging stops the simulator's line with the late answers still on their way, so none reaches the next test.
    await engine.stop();
    await settleWithin(running.field.unplug(BUS), 5000, "Field.unplug()");
    await settleWithin(running.field.replug(BUS), 5000, "Field.replug()");
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

  it("retries two answers with a bad CRC as frame errors and delivers the third, clean answer", async () => {
    fault("ddsC", { kind: "bad-crc", count: 2 });
    const { events, engine } = startRig([polled("ddsC", "meter", POLL_MS)], { attempts: 3 });
    await until(() => events.of(DEVICES.ddsC.id).length >= 1, 10_000, "the first poll");
    expect(events.of(DEVICES.ddsC.id)[0]?.readings).toBeDefined();
    expect(engine.counters.frameErrors).toBe(2);
    expect(engine.counters.retries).toBe(2);
    expect(engine.counters.timeouts).toBe(0);
  });

  it("reports a ModbusFrameError when every attempt gets a bad CRC", async () => {
    fault("ddsC", { kind: "bad-crc", count: 2 });
    const { events } = startRig([polled("ddsC", "meter", POLL_MS)], { attempts: 2 });
    await until(() => events.ok(DEVICES.ddsC.id).length >= 1, 10_000, "a good poll after the bad CRCs");
    const [first, second] = events.of(DEVICES.ddsC.id);
    expect(first?.error).toBeInstanceOf(ModbusFrameError);
    expect(first?.error?.code).toBe("EDGE_MODBUS_FRAME");
    expect(second?.readings).toBeDefined();
  });

  for (const kind of ["garbage", "truncated"] as const) {
    it(`survives a ${kind} answer and reads the device at the very next poll`, async () => {
      fault("ddsC", { kind, count: 1 });
      // One device alone (another unit's answer would clear the line for it) and one attempt per poll, so neither
      // can hide a receive buffer left out of step by the damaged answer.
      const { events } = startRig([polled("ddsC", "meter", POLL_MS)], { attempts: 1 });
      await until(() => events.of(DEVICES.ddsC.id).length >= 3, 10_000, "three polls of the device");
      const [first, second, third] = events.of(DEVICES.ddsC.id);
      expect(first?.error).toBeInstanceOf(ModbusError);
      expect(second?.readings, `second poll: ${String(second?.error)}`).toBeDefined();
      expect(third?.readings, `third poll: ${String(third?.error)}`).toBeDefined();
    });
  }

  it("does not take an answer carrying another unit id for the requested unit's answer", async () => {
    fault("ddsC", { kind: "wrong-unit", answerAs: DEVICES.ddsB.unit, count: 1 });
    const { events } = startRig([polled("ddsC", "meter", POLL_MS)], { attempts: 1 });
    await until(() => events.of(DEVICES.ddsC.id).length >= 2, 10_000, "two polls");
    const [first, second] = events.of(DEVICES.ddsC.id);
    expect(first?.readings).toBeUndefined();
    expect(first?.error).toBeInstanceOf(ModbusError);
    expect(second?.readings).toBeDefined();
  });

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

  it("fails the request on the line at once with ModbusPortError when the adapter is pulled out mid-transaction", async () => {
    fault("sdm", { kind: "slow", delayMs: 400, count: 1 });
    const counters = running.field.requireBus(BUS).bus.counters;
    const played = counters.faultsPlayed;
    // The timeout is beyond the test's patience: only the port going away can end this request in time.
    const { engine } = startRig([], { timeoutMs: 8000, attempts: 1 });
    // Settled into a value at once: the read may fail before unplug() has even seen socat exit.
    const outcome = engine.command(DEVICES.sdm.unit, { fc: 4, address: 0x0000, quantity: 2 }).then(
      (answer) => answer,
      (err: unknown) => err,
    );
    await until(() => counters.faultsPlayed > played, 5000, "the slow request on the line");
    await settleWithin(running.field.unplug(BUS), 5000, "Field.unplug()");
    expect(await settleWithin(outcome, 6000, "the read in flight")).toBeInstanceOf(ModbusPortError);
  });

  it("survives the adapter being pulled out under back-to-back requests, five times, without being recreated", async () => {
    // A write racing the disconnect fails with EIO, which modbus-serial emits as an "error" event: unhandled, it
    // would be an uncaught exception (the test run reports it). Five unplugs make losing that race near certain.
    const { events, engine } = startRig([polled("ddsA", "meter", 1)], { attempts: 1, health: { offlineAfterFailures: 1000, offlinePollMaxMs: 1000 } });
    for (let cycle = 0; cycle < 5; cycle++) {
      const since = Date.now();
      await until(() => events.ok(DEVICES.ddsA.id, since).length > 0, 10_000, `polls before unplug ${cycle + 1}`);
      await settleWithin(running.field.unplug(BUS), 5000, "Field.unplug()");
      await sleep(100);
      await settleWithin(running.field.replug(BUS), 5000, "Field.replug()");
    }
    const since = Date.now();
    await until(() => events.ok(DEVICES.ddsA.id, since).length > 0, 10_000, "polls after the last replug");
    expect(engine.counters.portErrors).toBeGreaterThan(0);
  });

  it("fails polls with ModbusPortError while the adapter is unplugged and resumes by itself when it is plugged back", async () => {
    // A meter polled back to back keeps the line busy, as on a loaded bus: the unplug then catches writes too.
    const busy = polled("ddsA", "meter", 1);
    const { engine, events, wire } = startRig([polled("sdm", "meter", POLL_MS), polled("fire", "fire-sensor", POLL_MS), busy], {
      attempts: 2,
      health: { offlineAfterFailures: 3, offlinePollMaxMs: 1000 },
    });
    await until(() => events.ok(DEVICES.sdm.id).length >= 1 && events.ok(DEVICES.fire.id).length >= 1, 10_000, "polls before the unplug");

    await settleWithin(running.field.unplug(BUS), 5000, "Field.unplug()");
    const unpluggedAt = Date.now();
    // A write to the vanished device node fails with EIO: that must come back as a port error of the request, not
    // as an "error" event nobody listens to (which kills the process) nor as a timeout.
    const read = engine.command(DEVICES.sdm.unit, { fc: 4, address: 0x0000, quantity: 2 });
    await expect(settleWithin(read, 5000, "a read right after the unplug")).rejects.toBeInstanceOf(ModbusPortError);
    await sleep(1500);
    expect(engine.counters.portErrors).toBeGreaterThan(0);
    const failures = [...events.failed(DEVICES.sdm.id, unpluggedAt), ...events.failed(DEVICES.fire.id, unpluggedAt)];
    expect(failures.some((p) => p.error instanceof ModbusPortError)).toBe(true);
    expect(events.ok(DEVICES.sdm.id, unpluggedAt + 100)).toEqual([]);

    await settleWithin(running.field.replug(BUS), 5000, "Field.replug()");
    const repluggedAt = Date.now();
    await until(
      () => events.ok(DEVICES.sdm.id, repluggedAt).length >= 2 && events.ok(DEVICES.fire.id, repluggedAt).length >= 2,
      15_000,
      "polls after the replug",
    );
    expect(wire.isOpen()).toBe(true);
    for (const id of [DEVICES.sdm.id, DEVICES.fire.id]) {
      const changes = events.health.filter((h) => h.deviceId === id);
      if (changes.length > 0) expect(changes.at(-1)?.online, `${id} back online`).toBe(true);
    }
  });
});
