import { describe, expect, it } from "vitest";
import { encodeRequest, type ModbusRequest } from "../../protocols/modbus/pdu.js";
import { findProfile } from "../../protocols/profiles/index.js";
import type { DeviceProfile } from "../../protocols/profiles/schema.js";
import { MeterModel } from "../models/meter.js";
import { seededRandom } from "../models/random.js";
import { RelayModuleModel } from "../models/relay-module.js";
import { answerPdu, handleRequestPdu } from "./pdu-handler.js";

function profile(id: string): DeviceProfile {
  const p = findProfile(id);
  if (!p) throw new Error(id);
  return p;
}

const sdm630 = (): MeterModel => new MeterModel({ id: "m", profile: profile("eastron-sdm630-v2"), loads: [], initialImportWh: 1_234_567, random: seededRandom(1) });
const dds238 = (): MeterModel => new MeterModel({ id: "d", profile: profile("hiking-dds238-2-zn"), loads: [], initialImportWh: 1_234_560, random: seededRandom(1) });

function ask(device: MeterModel | RelayModuleModel, req: ModbusRequest): ReturnType<typeof handleRequestPdu> {
  return handleRequestPdu(device, encodeRequest(req), 0);
}

describe("simulated device answering PDUs", () => {
  it("answers an SDM630 import-energy read with f32 ABCD words of 1234.567 kWh", () => {
    const r = answerPdu(sdm630(), encodeRequest({ fc: 4, address: 0x48, quantity: 2 }), 0);
    // 04 = FC, 04 = byte count, then 0x449A 0x5225 = 1234.567f
    expect([...r]).toEqual([0x04, 0x04, 0x44, 0x9a, 0x52, 0x25]);
  });

  it("refuses more than 80 registers from an Eastron meter with exception 03", () => {
    expect(ask(sdm630(), { fc: 4, address: 0, quantity: 82 })).toEqual({ fc: 4, exception: 3 });
  });

  it("refuses an odd start or count from an Eastron meter with exception 02", () => {
    expect(ask(sdm630(), { fc: 4, address: 0x49, quantity: 2 })).toEqual({ fc: 4, exception: 2 });
    expect(ask(sdm630(), { fc: 4, address: 0x48, quantity: 1 })).toEqual({ fc: 4, exception: 2 });
  });

  it("refuses registers outside the map with exception 02 but fills gaps inside it with zeros", () => {
    expect(ask(sdm630(), { fc: 4, address: 0x0400, quantity: 2 })).toEqual({ fc: 4, exception: 2 });
    const r = ask(sdm630(), { fc: 4, address: 0x0036, quantity: 4 });
    expect(r).toEqual({ fc: 4, words: [0, 0, 0, 0] });
  });

  it("refuses a bridged gap when the device is configured to (holes are illegal)", () => {
    const m = new MeterModel({ id: "m", profile: profile("eastron-sdm630-v2"), loads: [], random: seededRandom(1), holesAreIllegal: true });
    expect(ask(m, { fc: 4, address: 0x0036, quantity: 4 })).toEqual({ fc: 4, exception: 2 });
  });

  it("answers FC 06 to the DDS238 relay with exception 01, since the meter understands only FC 16", () => {
    expect(ask(dds238(), { fc: 6, address: 0x1a, value: 0 })).toEqual({ fc: 6, exception: 1 });
    const m = dds238();
    expect(ask(m, { fc: 16, address: 0x1a, values: [0] })).toEqual({ fc: 16, address: 0x1a, quantity: 1 });
    expect(m.relayClosed).toBe(false);
  });

  it("refuses writes to a meter without write targets with exception 01", () => {
    expect(ask(sdm630(), { fc: 16, address: 0x0, values: [0, 0] })).toEqual({ fc: 16, exception: 1 });
  });

  it("switches a relay-module coil with FC 05 and reads it back with FC 01", () => {
    const board = new RelayModuleModel("r", profile("relay-module-8ch"), true);
    expect(ask(board, { fc: 5, address: 2, value: false })).toEqual({ fc: 5, address: 2, value: 0 });
    expect(ask(board, { fc: 1, address: 0, quantity: 8 })).toEqual({ fc: 1, bits: [true, true, false, true, true, true, true, true] });
    expect(board.switchLog).toEqual([{ atMs: 0, address: 2, on: false }]);
  });

  it("switches several coils with FC 15", () => {
    const board = new RelayModuleModel("r", profile("relay-module-8ch"), false);
    expect(ask(board, { fc: 15, address: 0, values: [true, false, true] })).toEqual({ fc: 15, address: 0, quantity: 3 });
    expect(board.coil(0) && !board.coil(1) && board.coil(2)).toBe(true);
  });

  it("refuses coils beyond channel 8 with exception 02", () => {
    const board = new RelayModuleModel("r", profile("relay-module-8ch"));
    expect(ask(board, { fc: 5, address: 8, value: true })).toEqual({ fc: 5, exception: 2 });
    expect(ask(board, { fc: 1, address: 0, quantity: 9 })).toEqual({ fc: 1, exception: 3 });
  });

  it("answers malformed PDUs with the exception the spec asks for", () => {
    const m = sdm630();
    expect(handleRequestPdu(m, Uint8Array.of(0x2b, 0x0e, 0x01, 0x00), 0)).toEqual({ fc: 0x2b, exception: 1 });
    expect(handleRequestPdu(m, Uint8Array.of(0x04, 0x00, 0x00, 0x00, 0x00), 0)).toEqual({ fc: 4, exception: 3 });
    expect(handleRequestPdu(m, Uint8Array.of(0x04, 0x00), 0)).toEqual({ fc: 4, exception: 3 });
  });
});
