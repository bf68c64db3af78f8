// Interop: pymodbus 3.0.0rc1 (Debian's python3-pymodbus) as the master, over Modbus TCP and over RTU on a pty.
// Each test runs a small Python script that prints one JSON line; values are decoded with struct in Python so
// the word order and scaling are checked by an independent implementation.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyDeviceAction } from "../../firmware-sim/control.js";
import type { MeterModel } from "../../firmware-sim/models/meter.js";
import type { RelayModuleModel } from "../../firmware-sim/models/relay-module.js";
import type { ScenarioInput } from "../../firmware-sim/scenario.js";
import { requireProgram, runProgram, startField, tempPath, type RunningField } from "../harness/programs.js";

type BusId = "tcp" | "rtu";

const SDM630_IMPORT_WH = 1_234_567;
const DTSU666_LOAD_W = 3000;
const SLOW_DELAY_MS = 300;

function devicesOn(bus: BusId): NonNullable<ScenarioInput["devices"]> {
  return [
    { id: `${bus}-sdm630`, bus, unit: 1, profile: "eastron-sdm630-v2", meter: { initialImportWh: SDM630_IMPORT_WH } },
    { id: `${bus}-dtsu666`, bus, unit: 2, profile: "chint-dtsu666", meter: { loads: [{ kind: "constant", watts: DTSU666_LOAD_W }] } },
    { id: `${bus}-dds238`, bus, unit: 3, profile: "hiking-dds238-2-zn", meter: { initialImportWh: 88_420 } },
    { id: `${bus}-relays`, bus, unit: 4, profile: "relay-module-8ch", relayModule: { initiallyOn: true } },
    { id: `${bus}-slow`, bus, unit: 5, profile: "hiking-dds238-2-zn", faults: [{ kind: "slow", delayMs: SLOW_DELAY_MS }] },
  ];
}

// pymodbus 3.0.0rc1: read/write calls take `slave=` (`unit=` still works but logs "Please do not use unit=").
// Its client truncates the timeout with int() (client/base.py), so 0.5 s becomes 0 = non-blocking reads that fail
// at once: timeouts here are whole seconds.
const PRELUDE = `
import json, struct, sys, time
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.pdu import ExceptionResponse

def connect(timeout=1):
    if sys.argv[1] == "tcp":
        client = ModbusTcpClient(sys.argv[2], port=int(sys.argv[3]), timeout=timeout, retries=0)
    else:
        client = ModbusSerialClient(method="rtu", port=sys.argv[2], baudrate=9600, bytesize=8, parity="N", stopbits=1, timeout=timeout, retries=0)
    if not client.connect():
        raise SystemExit("cannot connect to " + " ".join(sys.argv[1:]))
    return client

def outcome(response):
    if isinstance(response, ExceptionResponse):
        return {"exception": response.exception_code, "fc": response.function_code}
    if response.isError():
        return {"error": str(response)}
    out = {"fc": response.function_code}
    if hasattr(response, "registers"):
        out["registers"] = list(response.registers)
    if hasattr(response, "bits"):
        out["bits"] = [bool(b) for b in response.bits]
    return out

def f32(words):
    return struct.unpack(">f", struct.pack(">HH", words[0], words[1]))[0]

def emit(value):
    print(json.dumps(value))
`;

interface Outcome {
  readonly fc?: number;
  readonly exception?: number;
  readonly error?: string;
  readonly registers?: number[];
  readonly bits?: boolean[];
}

let python = "";
let running: RunningField;
const rtuPath = tempPath("agri-pymodbus-rtu");

beforeAll(async () => {
  python = requireProgram("/usr/bin/python3", ["-c", "import pymodbus.client"]);
  const socat = requireProgram("socat", ["-V"]);
  running = await startField(
    {
      name: "pymodbus-interop",
      buses: [
        { id: "tcp", tcp: { host: "127.0.0.1", port: 0 } },
        { id: "rtu", rtu: { path: rtuPath, baud: 9600, parity: "none", stopBits: 1 } },
      ],
      devices: [...devicesOn("tcp"), ...devicesOn("rtu")],
    } satisfies ScenarioInput,
    { socatPath: socat },
  );
  running.field.advance(1_000); // let the meters publish their power
});

afterAll(async () => {
  await running?.close();
});

/** Run `body` after the prelude with the transport in argv; the script's last stdout line is its JSON result. */
async function py<T>(bus: BusId, body: string): Promise<T> {
  const transport = bus === "tcp" ? ["tcp", "127.0.0.1", String(running.tcpPort("tcp"))] : ["rtu", rtuPath];
  const result = await runProgram(python, ["-c", `${PRELUDE}\n${body}`, ...transport], { timeoutMs: 15_000 });
  expect(result.code, `python failed:\n${result.stderr}`).toBe(0);
  const last = result.stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(last) as T;
}

function meter(id: string): MeterModel {
  return running.field.requireDevice(id) as MeterModel;
}

describe.each([
  { bus: "tcp" as const, transport: "Modbus TCP" },
  { bus: "rtu" as const, transport: "Modbus RTU on a pty at 9600 8N1" },
])("pymodbus 3.0.0rc1 over $transport", ({ bus }) => {
  it("decodes SDM630 import energy at input register 0x0048 (30073) as an f32 ABCD of the meter's kWh", async () => {
    const r = await py<{ words: number[]; kwh: number }>(
      bus,
      `c = connect()
r = c.read_input_registers(0x0048, 2, slave=1)
emit({"words": r.registers, "kwh": f32(r.registers)})`,
    );
    // 1234.567 as an IEEE-754 single, most significant word first.
    expect(r.words).toEqual([0x449a, 0x5225]);
    expect(r.kwh).toBeCloseTo(SDM630_IMPORT_WH / 1000, 3);
  });

  it("reads DTSU666 current with a 0.001 A scale and frequency with a 0.01 Hz scale through FC 03", async () => {
    const r = await py<{ volts: number; amps: number; rawAmps: number; hz: number }>(
      bus,
      `c = connect()
block = c.read_holding_registers(0x2006, 8, slave=2).registers
hz = c.read_holding_registers(0x2044, 2, slave=2).registers
emit({"volts": f32(block[0:2]) * 0.1, "rawAmps": f32(block[6:8]), "amps": f32(block[6:8]) * 0.001, "hz": f32(hz) * 0.01})`,
    );
    expect(r.volts).toBeGreaterThan(225);
    expect(r.volts).toBeLessThan(235);
    // 3 kW over three phases: 1 kW per phase, so U × I is 1000 W and the raw current is in milliamperes.
    expect(r.rawAmps).toBeGreaterThan(4000);
    expect(r.volts * r.amps).toBeCloseTo(DTSU666_LOAD_W / 3, 0);
    expect(r.hz).toBeGreaterThan(49.9);
    expect(r.hz).toBeLessThan(50.1);
  });

  it("writes a relay-module coil with FC 05 and reads it back with FC 01", async () => {
    const r = await py<{ write: Outcome; read: Outcome }>(
      bus,
      `c = connect()
w = c.write_coil(4, False, slave=4)
emit({"write": outcome(w), "read": outcome(c.read_coils(0, 8, slave=4))})`,
    );
    expect(r.write.fc).toBe(5);
    expect(r.read.bits?.slice(0, 8)).toEqual([true, true, true, true, false, true, true, true]);
    const board = running.field.requireDevice(`${bus}-relays`) as RelayModuleModel;
    expect(board.coil(4)).toBe(false);
    applyDeviceAction(running.field, `${bus}-relays`, { action: "set-coil", channel: 5, on: true });
  });

  it("writes the DDS238 relay register with FC 16 and the meter opens its supply", async () => {
    expect(meter(`${bus}-dds238`).relayClosed).toBe(true);
    const r = await py<{ write: Outcome; read: Outcome }>(
      bus,
      `c = connect()
w = c.write_registers(0x001A, [0], slave=3)
emit({"write": outcome(w), "read": outcome(c.read_holding_registers(0x001A, 1, slave=3))})`,
    );
    expect(r.write).toEqual({ fc: 16 });
    expect(r.read.registers).toEqual([0]);
    expect(meter(`${bus}-dds238`).relayClosed).toBe(false);
    applyDeviceAction(running.field, `${bus}-dds238`, { action: "set-relay", closed: true });
  });

  it("answers FC 06 to the DDS238 relay register with exception 01, since the meter only understands FC 16", async () => {
    const r = await py<Outcome>(bus, `emit(outcome(connect().write_register(0x001A, 0, slave=3)))`);
    expect(r).toEqual({ exception: 1, fc: 0x86 });
    expect(meter(`${bus}-dds238`).relayClosed).toBe(true);
  });

  it("answers an Eastron read at an odd address with exception 02", async () => {
    const r = await py<Outcome>(bus, `emit(outcome(connect().read_input_registers(0x0049, 2, slave=1)))`);
    expect(r).toEqual({ exception: 2, fc: 0x84 });
  });

  it("answers an Eastron read of more than 80 registers with exception 03", async () => {
    const r = await py<Outcome>(bus, `emit(outcome(connect().read_input_registers(0x0000, 82, slave=1)))`);
    expect(r).toEqual({ exception: 3, fc: 0x84 });
  });

  it("reads 3 registers from a unit answering 300 ms late within a 1 s timeout", async () => {
    const r = await py<{ read: Outcome; elapsedS: number }>(
      bus,
      `c = connect(timeout=1)
t = time.monotonic()
r = c.read_holding_registers(0x000A, 3, slave=5)
emit({"read": outcome(r), "elapsedS": time.monotonic() - t})`,
    );
    expect(r.read.registers).toHaveLength(3);
    expect(r.elapsedS).toBeGreaterThanOrEqual((SLOW_DELAY_MS - 20) / 1000);
  });
});

describe("pymodbus 3.0.0rc1 over Modbus RTU only", () => {
  it("fails a read whose answer has a bad CRC and succeeds on the next read", async () => {
    running.field.addFault("rtu-dds238", { kind: "bad-crc", probability: 1, count: 1 });
    const r = await py<{ first: Outcome; second: Outcome }>(
      "rtu",
      `c = connect(timeout=1)
first = outcome(c.read_holding_registers(0x000A, 2, slave=3))
time.sleep(0.1)
second = outcome(c.read_holding_registers(0x000A, 2, slave=3))
emit({"first": first, "second": second})`,
    );
    expect(r.first.registers).toBeUndefined();
    expect(r.first.error).toBeDefined();
    expect(r.second.registers).toEqual([0, 8842]);
    expect(running.field.buses.get("rtu")?.bus.faultsOf(3)).toEqual([]);
  });
});
