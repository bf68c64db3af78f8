import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeMbap } from "../../protocols/modbus/frames.js";
import { encodeRequest } from "../../protocols/modbus/pdu.js";
import { applyDeviceAction } from "../../firmware-sim/control.js";
import { Field } from "../../firmware-sim/field.js";
import { parseScenario } from "../../firmware-sim/scenario.js";
import { RawModbusTcpClient } from "../harness/modbus-tcp-client.js";

let field: Field;
let port: number;

beforeAll(async () => {
  field = new Field(
    parseScenario({
      name: "tcp",
      buses: [{ id: "a", tcp: { port: 0 } }],
      devices: [
        { id: "m1", bus: "a", unit: 1, profile: "eastron-sdm120", meter: { loads: [], initialImportWh: 4200 } },
        { id: "m2", bus: "a", unit: 2, profile: "eastron-sdm120", meter: { loads: [], initialImportWh: 9100 } },
        { id: "m3", bus: "a", unit: 3, profile: "eastron-sdm120", meter: { loads: [] } },
      ],
    }),
    undefined,
    { autoTick: false },
  );
  await field.start();
  port = field.requireBus("a").tcp?.port ?? 0;
});

afterAll(async () => {
  await field.stop();
});

const energyRead = { fc: 4, address: 0x48, quantity: 2 } as const;

describe("simulator Modbus TCP server", () => {
  it("serves many unit ids on one port, each its own device", async () => {
    const c = await RawModbusTcpClient.connect(port);
    const [a, b] = await Promise.all([c.request(1, energyRead), c.request(2, energyRead)]);
    expect(a).toEqual({ fc: 4, words: [0x4086, 0x6666] }); // 4.2 kWh
    expect(b).toEqual({ fc: 4, words: [0x4111, 0x999a] }); // 9.1 kWh
    c.close();
  });

  it("answers pipelined requests with their own transaction ids", async () => {
    const c = await RawModbusTcpClient.connect(port);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => c.request((i % 2) + 1, energyRead)));
    expect(answers.filter((a) => "words" in a && a.words[0] === 0x4086)).toHaveLength(25);
    c.close();
  });

  it("reassembles a request split into single bytes", async () => {
    const c = await RawModbusTcpClient.connect(port);
    const answer = c.request(1, energyRead);
    // The request was already written whole by request(); send a second one byte by byte with tid 0x7777.
    const frame = encodeMbap(0x7777, 1, encodeRequest(energyRead));
    for (const byte of frame) {
      c.sendRaw(Uint8Array.of(byte));
      await new Promise((r) => setTimeout(r, 1));
    }
    await answer;
    await new Promise((r) => setTimeout(r, 50));
    expect(c.unmatched).toHaveLength(1);
    expect(c.unmatched[0]?.readUInt16BE(0)).toBe(0x7777);
    c.close();
  });

  it("stays silent for a unit id no device has, and for a killed device", async () => {
    const c = await RawModbusTcpClient.connect(port);
    await expect(c.request(77, energyRead, 200)).rejects.toThrow(/timeout/);
    applyDeviceAction(field, "m3", { action: "kill" });
    await expect(c.request(3, energyRead, 200)).rejects.toThrow(/timeout/);
    applyDeviceAction(field, "m3", { action: "revive" });
    await expect(c.request(3, energyRead, 500)).resolves.toMatchObject({ fc: 4 });
    c.close();
  });

  it("discards a frame whose protocol id is not 0 and keeps serving the connection", async () => {
    const c = await RawModbusTcpClient.connect(port);
    const bad = encodeMbap(0x0101, 1, encodeRequest(energyRead));
    bad[3] = 1;
    c.sendRaw(bad);
    await expect(c.request(1, energyRead)).resolves.toMatchObject({ fc: 4 });
    expect(c.unmatched).toHaveLength(0);
    c.close();
  });

  it("closes a connection whose MBAP length field is impossible", async () => {
    const c = await RawModbusTcpClient.connect(port);
    const closed = new Promise<void>((resolve) => c.socket.once("close", () => resolve()));
    c.sendRaw(Uint8Array.of(0, 1, 0, 0, 0xff, 0xff, 1, 4, 0, 0));
    await closed;
    const c2 = await RawModbusTcpClient.connect(port);
    await expect(c2.request(1, energyRead)).resolves.toMatchObject({ fc: 4 });
    c2.close();
  });

  it("plays exception, slow, wrong-unit and disconnect faults as configured", async () => {
    const c = await RawModbusTcpClient.connect(port);
    applyDeviceAction(field, "m2", { action: "fault", fault: { kind: "exception", code: 6, count: 1 } });
    await expect(c.request(2, energyRead)).resolves.toEqual({ fc: 4, exception: 6 });
    applyDeviceAction(field, "m2", { action: "fault", fault: { kind: "slow", delayMs: 150, count: 1 } });
    const t0 = performance.now();
    await c.request(2, energyRead);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    applyDeviceAction(field, "m2", { action: "fault", fault: { kind: "disconnect", count: 1 } });
    await expect(c.request(2, energyRead)).rejects.toThrow(/closed/);
    const c2 = await RawModbusTcpClient.connect(port);
    await expect(c2.request(2, energyRead)).resolves.toMatchObject({ fc: 4 });
    c2.close();
  });
});
