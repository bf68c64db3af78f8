// Interop: the simulator's RTU side against raw bytes on its pty, checked against Modbus over Serial Line V1.02 —
// framing by length and CRC, silence after garbage, broadcast, the line's frame time at 9600 baud — and a USB
// adapter pulled out and plugged back in.

import { closeSync, existsSync, openSync, constants as fsConstants, writeSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import tty from "node:tty";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyDeviceAction } from "../../firmware-sim/control.js";
import type { MeterModel } from "../../firmware-sim/models/meter.js";
import type { ScenarioInput } from "../../firmware-sim/scenario.js";
import { crc16Modbus } from "../../protocols/modbus/crc16.js";
import { rtuResponseLength, rtuTransactionLimitPerSecond, type SerialLine } from "../../protocols/modbus/frames.js";
import { requireProgram, settleWithin, startField, tempPath, type RunningField } from "../harness/programs.js";

const DDS238_IMPORT_WH = 12_345_678; // register 1 234 567 × 0.01 kWh = 0x0012 0xD687
const LINE: SerialLine = { baud: 9600, parity: "none", stopBits: 1 };
/** The simulator flushes an incomplete frame after 50 ms of silence; we leave more than that. */
const SILENCE_MS = 80;
/** How long to listen for an answer that must not come. */
const QUIET_MS = 300;

/**
 * The master's end of the RS-485 line: the pty opened like a USB adapter. Reads go through tty.ReadStream, which
 * reopens the terminal for itself (libuv uv_tty_init), so our own descriptor stays ours to write and to close.
 */
class RawLine {
  private received: Buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;

  private constructor(
    private readonly fd: number,
    private readonly reader: tty.ReadStream,
  ) {
    reader.on("data", (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake?.();
    });
    reader.on("error", () => undefined); // EIO once the simulator's side goes away
  }

  static open(path: string): RawLine {
    const fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_NOCTTY);
    const reader = new tty.ReadStream(fd);
    reader.setRawMode(true);
    return new RawLine(fd, reader);
  }

  send(bytes: Uint8Array): void {
    writeSync(this.fd, bytes);
  }

  /** The next complete answer frame (by its function code and byte count), or undefined after `timeoutMs`. */
  async frame(timeoutMs = 1000): Promise<Uint8Array | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const length = rtuResponseLength(this.received);
      if (typeof length === "number" && this.received.length >= length) {
        const frame = Uint8Array.from(this.received.subarray(0, length));
        this.received = this.received.subarray(length);
        return frame;
      }
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await this.nextChunk(left);
    }
  }

  /** Everything that arrives during `ms` (expected: nothing). */
  async listen(ms: number): Promise<Uint8Array> {
    await sleep(ms);
    const all = Uint8Array.from(this.received);
    this.received = Buffer.alloc(0);
    return all;
  }

  private nextChunk(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  close(): void {
    this.wake = undefined;
    this.reader.destroy();
    closeSync(this.fd);
  }
}

async function withLine<T>(path: string, use: (line: RawLine) => Promise<T>): Promise<T> {
  const line = RawLine.open(path);
  try {
    return await use(line);
  } finally {
    line.close();
  }
}

/** An RTU frame: the bytes given, then CRC-16/MODBUS low byte first (Serial Line V1.02 §2.5.1.2). */
function withCrc(...bytes: number[]): Uint8Array {
  const crc = crc16Modbus(Uint8Array.from(bytes));
  return Uint8Array.from([...bytes, crc & 0xff, crc >> 8]);
}

let running: RunningField;
const linePath = tempPath("agri-rtu-link");
const timedPath = tempPath("agri-rtu-timed");

beforeAll(async () => {
  const socat = requireProgram("socat", ["-V"]);
  running = await startField(
    {
      name: "rtu-link",
      buses: [
        { id: "line", rtu: { path: linePath, baud: 9600, parity: "none", stopBits: 1 } },
        { id: "timed", rtu: { path: timedPath, baud: 9600, parity: "none", stopBits: 1, lineTiming: true } },
      ],
      devices: [
        { id: "dds-1", bus: "line", unit: 1, profile: "hiking-dds238-2-zn", meter: { initialImportWh: DDS238_IMPORT_WH } },
        { id: "dds-2", bus: "line", unit: 2, profile: "hiking-dds238-2-zn" },
        { id: "dds-timed", bus: "timed", unit: 1, profile: "hiking-dds238-2-zn" },
      ],
    } satisfies ScenarioInput,
    { socatPath: socat },
  );
});

afterAll(async () => {
  await running?.close();
});

const readImportEnergy = Uint8Array.of(
  0x01, // unit 1
  0x03, // FC 03 read holding registers
  0x00, 0x0a, // start 0x000A: import energy, u32 ×0.01 kWh
  0x00, 0x02, // quantity 2
  0xe4, 0x09, // CRC-16/MODBUS, low byte first
);

function meter(id: string): MeterModel {
  return running.field.requireDevice(id) as MeterModel;
}

describe("the simulator's RTU link on a pty, byte by byte", () => {
  it("answers a handcrafted FC 03 read of the DDS238 import energy with a well-formed frame", async () => {
    expect(readImportEnergy).toEqual(withCrc(0x01, 0x03, 0x00, 0x0a, 0x00, 0x02));
    const answer = await withLine(linePath, async (line) => {
      line.send(readImportEnergy);
      return line.frame();
    });
    expect(answer).toBeDefined();
    const a = answer as Uint8Array;
    expect(a).toHaveLength(9);
    expect(a[0]).toBe(0x01); // unit
    expect(a[1]).toBe(0x03); // function code
    expect(a[2]).toBe(0x04); // byte count: 2 registers
    expect([...a.subarray(3, 7)]).toEqual([0x00, 0x12, 0xd6, 0x87]); // 1 234 567, high word first, big-endian
    const raw = ((a[3] as number) << 24) | ((a[4] as number) << 16) | ((a[5] as number) << 8) | (a[6] as number);
    expect(raw).toBe(Math.floor(meter("dds-1").importRegisterWh / 10));
    const crc = crc16Modbus(a, 0, 7);
    expect([a[7], a[8]]).toEqual([crc & 0xff, crc >> 8]); // CRC low byte first
  });

  it("drops garbage after a silence and answers the valid frame that follows", async () => {
    const framingErrors = running.field.requireBus("line").bus.counters.framingErrors;
    const answer = await withLine(linePath, async (line) => {
      // Looks like the start of an FC 03 request to unit 7 but never completes: only the silence can end it.
      line.send(Uint8Array.of(0x07, 0x03, 0x12, 0x34, 0x56));
      expect(await line.listen(SILENCE_MS)).toHaveLength(0);
      line.send(readImportEnergy);
      return line.frame();
    });
    expect(answer?.subarray(0, 3)).toEqual(Uint8Array.of(0x01, 0x03, 0x04));
    expect(running.field.requireBus("line").bus.counters.framingErrors).toBe(framingErrors + 1);
  });

  it("gives no answer to a frame with a bad CRC", async () => {
    const bad = Uint8Array.from(readImportEnergy);
    bad[7] = (bad[7] as number) ^ 0xff;
    const framingErrors = running.field.requireBus("line").bus.counters.framingErrors;
    const heard = await withLine(linePath, async (line) => {
      line.send(bad);
      const silence = await line.listen(QUIET_MS);
      line.send(readImportEnergy); // the line still works afterwards
      const answer = await line.frame();
      expect(answer?.[1]).toBe(0x03);
      return silence;
    });
    expect(heard).toHaveLength(0);
    expect(running.field.requireBus("line").bus.counters.framingErrors).toBe(framingErrors + 1);
  });

  it("executes a broadcast FC 16 write on every unit and answers nothing", async () => {
    expect(meter("dds-1").relayClosed).toBe(true);
    expect(meter("dds-2").relayClosed).toBe(true);
    const broadcast = Uint8Array.of(
      0x00, // unit 0: broadcast
      0x10, // FC 16 write multiple registers
      0x00, 0x1a, // start 0x001A: relay
      0x00, 0x01, // quantity 1
      0x02, // byte count
      0x00, 0x00, // 0 = open the relay
      0xa9, 0xfa, // CRC
    );
    expect(broadcast).toEqual(withCrc(0x00, 0x10, 0x00, 0x1a, 0x00, 0x01, 0x02, 0x00, 0x00));
    const heard = await withLine(linePath, async (line) => {
      line.send(broadcast);
      return line.listen(QUIET_MS);
    });
    expect(heard).toHaveLength(0);
    expect(meter("dds-1").relayClosed).toBe(false);
    expect(meter("dds-2").relayClosed).toBe(false);
    for (const id of ["dds-1", "dds-2"]) applyDeviceAction(running.field, id, { action: "set-relay", closed: true });
  });

  it("with line timing at 9600 baud takes at least the frame time of every transaction of 20 sequential reads", async () => {
    const read10 = withCrc(0x01, 0x03, 0x00, 0x00, 0x00, 0x0a);
    const transactionMs = 1000 / rtuTransactionLimitPerSecond(3, 10, LINE); // request + answer + 2 silences ≈ 41.7 ms
    const elapsedMs = await withLine(timedPath, async (line) => {
      const started = performance.now();
      for (let i = 0; i < 20; i++) {
        line.send(read10);
        const answer = await line.frame(2000);
        expect(answer, `answer ${i}`).toHaveLength(5 + 20);
      }
      return performance.now() - started;
    });
    // Lower bound only (the machine is noisy); 10 % slack for millisecond timer rounding.
    expect(elapsedMs).toBeGreaterThanOrEqual(0.9 * 20 * transactionMs);
  });

  it("makes the pty path vanish on unplug and brings it back at the same path, answering again, on replug", async () => {
    await settleWithin(running.field.unplug("line"), 5000, "Field.unplug()");
    expect(existsSync(linePath)).toBe(false);
    await settleWithin(running.field.replug("line"), 5000, "Field.replug()");
    expect(existsSync(linePath)).toBe(true);
    const answer = await withLine(linePath, async (line) => {
      line.send(readImportEnergy);
      return line.frame();
    });
    expect(answer?.subarray(0, 3)).toEqual(Uint8Array.of(0x01, 0x03, 0x04));
  });
});
