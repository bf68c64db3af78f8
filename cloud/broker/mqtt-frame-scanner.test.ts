// The packet size guard's scanner, byte by byte: it finds packet boundaries from fixed headers alone.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MqttFrameScanner } from "./mqtt-frame-scanner.js";

// MQTT 3.1.1 §2.2.3 variable byte integer.
function remainingLength(n: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return bytes;
}

function packet(bodyBytes: number): Uint8Array {
  return Uint8Array.from([0x30, ...remainingLength(bodyBytes), ...new Array<number>(bodyBytes).fill(0x61)]);
}

describe("MqttFrameScanner", () => {
  it("passes a PINGREQ and a small PUBLISH", () => {
    const scanner = new MqttFrameScanner(64);
    expect(scanner.feed(Uint8Array.from([0xc0, 0x00]))).toEqual({ ok: true }); // PINGREQ, Remaining Length 0
    expect(scanner.feed(packet(20))).toEqual({ ok: true });
  });

  it("counts the whole packet: a packet of exactly the limit passes, one byte more is refused", () => {
    expect(new MqttFrameScanner(64).feed(packet(62))).toEqual({ ok: true }); // 1 + 1 + 62 = 64
    expect(new MqttFrameScanner(64).feed(packet(63))).toEqual({ ok: false, problem: "too-large", packetBytes: 65, maxPacketBytes: 64 });
  });

  it("refuses as soon as the length is declared, before any of the body arrives", () => {
    const scanner = new MqttFrameScanner(1024);
    expect(scanner.feed(Uint8Array.from([0x30, 0xff, 0xff, 0xff]))).toEqual({ ok: true }); // length not finished yet
    expect(scanner.feed(Uint8Array.from([0x7f]))).toEqual({ ok: false, problem: "too-large", packetBytes: 1 + 4 + 268_435_455, maxPacketBytes: 1024 });
  });

  it("refuses a Remaining Length with a fifth continuation byte as malformed", () => {
    expect(new MqttFrameScanner(1024).feed(Uint8Array.from([0x30, 0x80, 0x80, 0x80, 0x80]))).toEqual({ ok: false, problem: "malformed-length" });
  });

  it("keeps refusing after a violation", () => {
    const scanner = new MqttFrameScanner(16);
    scanner.feed(packet(100));
    expect(scanner.feed(Uint8Array.from([0xc0, 0x00])).ok).toBe(false);
  });

  it("gives the same verdict however the stream is split into chunks", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 50 })), (sizes, cuts) => {
        const stream = Uint8Array.from(sizes.flatMap((s) => [...packet(s)]));
        const whole = new MqttFrameScanner(200).feed(stream).ok;
        const scanner = new MqttFrameScanner(200);
        let offset = 0;
        let ok = true;
        for (const cut of [...cuts, stream.length]) {
          if (offset >= stream.length) break;
          ok = scanner.feed(stream.subarray(offset, offset + cut)).ok && ok;
          offset += cut;
        }
        expect(ok).toBe(whole);
        expect(whole).toBe(sizes.every((s) => 1 + remainingLength(s).length + s <= 200));
      }),
    );
  });
});
