// Interop: mbpoll (libmodbus) reads and writes the simulator over Modbus TCP and over RTU on a pty, and sees the
// same values, exceptions and silences a real meter, relay board and fire node would give it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyDeviceAction } from "../../firmware-sim/control.js";
import type { FireSensorModel } from "../../firmware-sim/models/fire-sensor.js";
import type { MeterModel } from "../../firmware-sim/models/meter.js";
import type { RelayModuleModel } from "../../firmware-sim/models/relay-module.js";
import type { ScenarioInput } from "../../firmware-sim/scenario.js";
import { requireProgram, runProgram, startField, tempPath, type ProgramResult, type RunningField } from "../harness/programs.js";

type BusId = "tcp" | "rtu";

const SDM630_IMPORT_WH = 1_234_567; // mbpoll shows 1234.57 (kWh)
const DDS238_IMPORT_WH = 12_345_678; // raw 1 234 567 × 0.01 kWh: the high word is not zero
const DDS238_LOAD_W = 2000;
const PUMP_LOAD_W = 7500;
const PUMP_CONTACTOR_CHANNEL = 8;

function devicesOn(bus: BusId): NonNullable<ScenarioInput["devices"]> {
  return [
    { id: `${bus}-sdm630`, bus, unit: 1, profile: "eastron-sdm630-v2", meter: { initialImportWh: SDM630_IMPORT_WH } },
    { id: `${bus}-sdm120`, bus, unit: 2, profile: "eastron-sdm120" },
    { id: `${bus}-dds238`, bus, unit: 3, profile: "hiking-dds238-2-zn", meter: { initialImportWh: DDS238_IMPORT_WH, loads: [{ kind: "constant", watts: DDS238_LOAD_W }] } },
    { id: `${bus}-relays`, bus, unit: 4, profile: "relay-module-8ch", relayModule: { initiallyOn: true } },
    { id: `${bus}-fire`, bus, unit: 5, profile: "agri-fire-node", fire: {} },
    { id: `${bus}-doomed`, bus, unit: 6, profile: "eastron-sdm120" },
    {
      id: `${bus}-pump`, bus, unit: 7, profile: "eastron-sdm630-v2",
      meter: { loads: [{ kind: "constant", watts: PUMP_LOAD_W }], contactor: { device: `${bus}-relays`, channel: PUMP_CONTACTOR_CHANNEL } },
    },
  ];
}

let mbpollPath = "";
let running: RunningField;
const rtuPath = tempPath("agri-mbpoll-rtu");

beforeAll(async () => {
  mbpollPath = requireProgram("mbpoll", ["-V"]);
  const socat = requireProgram("socat", ["-V"]);
  running = await startField(
    {
      name: "mbpoll-interop",
      buses: [
        { id: "tcp", tcp: { host: "127.0.0.1", port: 0 } },
        { id: "rtu", rtu: { path: rtuPath, baud: 9600, parity: "none", stopBits: 1 } },
      ],
      devices: [...devicesOn("tcp"), ...devicesOn("rtu")],
    } satisfies ScenarioInput,
    { socatPath: socat },
  );
});

afterAll(async () => {
  await running?.close();
});

/** The mbpoll arguments that select the transport and the device/host (the last positional argument). */
function target(bus: BusId): string[] {
  return bus === "tcp" ? ["-m", "tcp", "-p", String(running.tcpPort("tcp")), "127.0.0.1"] : ["-m", "rtu", "-b", "9600", "-P", "none", "-s", "1", rtuPath];
}

/** One poll (-1) with PDU addressing (-0) and a 0.5 s time-out; `writeValues` turn the poll into a write. */
function mbpoll(bus: BusId, unit: number, options: readonly string[], writeValues: readonly string[] = []): Promise<ProgramResult> {
  return runProgram(mbpollPath, ["-0", "-1", "-o", "0.5", "-a", String(unit), ...options, ...target(bus), ...writeValues], { timeoutMs: 10_000 });
}

/** mbpoll prints one `[reference]: <tab>value` line per value; 16-bit values above 32767 get ` (signed)` after. */
function values(result: ProgramResult): number[] {
  expect(result.stderr, "mbpoll reported an error").toBe("");
  expect(result.code).toBe(0);
  return [...result.stdout.matchAll(/^\[(\d+)\]:\s+(\S+)/gm)].map((m) => Number(m[2]));
}

function meter(id: string): MeterModel {
  return running.field.requireDevice(id) as MeterModel;
}

describe.each([
  { bus: "tcp" as const, transport: "Modbus TCP" },
  { bus: "rtu" as const, transport: "Modbus RTU on a pty at 9600 8N1" },
])("mbpoll over $transport", ({ bus }) => {
  it("reads SDM630 import energy at input register 0x0048 as a big-endian float in kWh", async () => {
    const [kwh] = values(await mbpoll(bus, 1, ["-t", "3:float", "-B", "-r", "0x0048"]));
    expect(kwh).toBeCloseTo(SDM630_IMPORT_WH / 1000, 2);
  });

  it("reads SDM120 voltage at input register 0x0000 as about 230 V", async () => {
    const [volts] = values(await mbpoll(bus, 2, ["-t", "3:float", "-B", "-r", "0x0000"]));
    expect(volts).toBeGreaterThan(226);
    expect(volts).toBeLessThan(234);
  });

  it("reads DDS238 import energy as a u32 of 0.01 kWh across holding registers 0x000A and 0x000B", async () => {
    const [high, low] = values(await mbpoll(bus, 3, ["-t", "4", "-r", "0x000A", "-c", "2"]));
    const raw = (high ?? NaN) * 65536 + (low ?? NaN);
    expect(high).toBeGreaterThan(0);
    expect(raw).toBe(Math.floor(meter(`${bus}-dds238`).importRegisterWh / 10));
    expect(raw / 100).toBeGreaterThanOrEqual(DDS238_IMPORT_WH / 1000 - 0.01);
  });

  it("reads the DDS238 relay register 0x001A as 1 while the supply is closed", async () => {
    expect(meter(`${bus}-dds238`).relayClosed).toBe(true);
    expect(values(await mbpoll(bus, 3, ["-t", "4", "-r", "0x001A"]))).toEqual([1]);
  });

  it("reads the relay module's eight coils with FC 01 as the channels are switched", async () => {
    applyDeviceAction(running.field, `${bus}-relays`, { action: "set-coil", channel: 3, on: false });
    const coils = values(await mbpoll(bus, 4, ["-t", "0", "-r", "0", "-c", "8"]));
    expect(coils).toEqual([1, 1, 0, 1, 1, 1, 1, 1]);
    const board = running.field.requireDevice(`${bus}-relays`) as RelayModuleModel;
    expect(coils).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((c) => (board.coil(c) ? 1 : 0)));
  });

  it("reads the fire node's smoke alarm as discrete input 0 once a started fire has latched it", async () => {
    expect(values(await mbpoll(bus, 5, ["-t", "1", "-r", "0", "-c", "6"]))).toEqual([0, 0, 0, 0, 0, 0]);
    const node = running.field.requireDevice(`${bus}-fire`) as FireSensorModel;
    applyDeviceAction(running.field, `${bus}-fire`, { action: "start-fire" });
    for (let minutes = 0; minutes < 10 && !node.smokeAlarm; minutes += 0.5) running.field.advance(30_000);
    expect(node.smokeAlarm).toBe(true);
    const flags = values(await mbpoll(bus, 5, ["-t", "1", "-r", "0", "-c", "6"]));
    expect(flags[0]).toBe(1);
    expect(flags).toEqual([node.smokeAlarm, node.heatAlarm, node.fault, false, node.tamper, false].map((f) => (f ? 1 : 0)));
    applyDeviceAction(running.field, `${bus}-fire`, { action: "stop-fire" });
  });

  it("writes one holding register with FC 06, which the DDS238 refuses as Illegal function, leaving its relay closed", async () => {
    // mbpoll sends a single value with FC 06 (modbus_write_register); the DDS238 only understands FC 16.
    const dds = meter(`${bus}-dds238`);
    const write = await mbpoll(bus, 3, ["-t", "4", "-r", "0x001A"], ["0"]);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/Illegal function/);
    expect(dds.relayClosed).toBe(true);
    expect(values(await mbpoll(bus, 3, ["-t", "4", "-r", "0x001A"]))).toEqual([1]);
  });

  it("writes 0 to a contactor coil and the meter behind it loses supply so its energy stops rising under load", async () => {
    const pump = meter(`${bus}-pump`);
    const beforeWh = pump.importWh;
    running.field.advance(600_000);
    expect(pump.importWh - beforeWh).toBeCloseTo((PUMP_LOAD_W * 600) / 3600, 6);

    const write = await mbpoll(bus, 4, ["-t", "0", "-r", String(PUMP_CONTACTOR_CHANNEL - 1)], ["0"]);
    expect(write.stderr).toBe("");
    expect(write.code).toBe(0);
    expect(write.stdout).toMatch(/Written 1 references/);
    expect(pump.supplyClosed()).toBe(false);
    expect(pump.relayClosed).toBe(true); // the meter's own relay is untouched; the contactor opened

    const cutWh = pump.importWh;
    running.field.advance(600_000);
    expect(pump.importWh).toBe(cutWh);
    expect(pump.meteredPowerW).toBe(0);
    expect(values(await mbpoll(bus, 4, ["-t", "0", "-r", String(PUMP_CONTACTOR_CHANNEL - 1)]))).toEqual([0]);
    applyDeviceAction(running.field, `${bus}-relays`, { action: "set-coil", channel: PUMP_CONTACTOR_CHANNEL, on: true });
  });

  it("answers a read of an unmapped input register with exception 02, which mbpoll prints as Illegal data address", async () => {
    const result = await mbpoll(bus, 1, ["-t", "3:float", "-B", "-r", "0x03E8"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/Illegal data address/);
  });

  it("leaves a killed unit silent so mbpoll times out", async () => {
    expect(values(await mbpoll(bus, 6, ["-t", "3:float", "-B", "-r", "0"]))).toHaveLength(1);
    applyDeviceAction(running.field, `${bus}-doomed`, { action: "kill" });
    const result = await mbpoll(bus, 6, ["-t", "3:float", "-B", "-r", "0"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/timed out/i);
    expect(result.stdout).not.toMatch(/^\[0\]:/m);
  });
});
