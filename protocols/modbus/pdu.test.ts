// Modbus PDUs, RTU frames and MBAP headers, byte by byte. Fixtures are the examples of the Modbus Application
// Protocol Specification V1.1b3 (§6.x, §7) and frames seen on the wire; each byte is annotated. Properties check
// that every request and response round-trips and that random bytes only ever produce typed failures.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { crc16Modbus } from "./crc16.js";
import {
  MBAP_HEADER_LENGTH,
  bitsPerCharacter,
  decodeMbapHeader,
  encodeMbap,
  encodeRtuFrame,
  frameTimeMs,
  interFrameSilenceMs,
  rtuCrcOk,
  rtuReadFrameSizes,
  rtuRequestLength,
  rtuResponseLength,
  rtuTransactionLimitPerSecond,
  type SerialLine,
} from "./frames.js";
import {
  EXCEPTION_CODES,
  QUANTITY_LIMITS,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  packBits,
  unpackBits,
  type ModbusRequest,
  type ModbusResponse,
} from "./pdu.js";

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const hex = (u: Uint8Array): string => [...u].map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join(" ");

// ─── arbitraries ──────────────────────────────────────────────────────────────────────────────────────────────────

const word = fc.integer({ min: 0, max: 0xffff });
const unitId = fc.integer({ min: 0, max: 255 });

function startFor(count: number): fc.Arbitrary<number> {
  return fc.integer({ min: 0, max: 0x10000 - count });
}

const readRequests: fc.Arbitrary<ModbusRequest> = fc
  .constantFrom(1, 2, 3, 4)
  .chain((code) => fc.integer({ min: 1, max: QUANTITY_LIMITS[code] }).chain((quantity) => startFor(quantity).map((address) => ({ fc: code, address, quantity }))));
const writeCoil: fc.Arbitrary<ModbusRequest> = fc.record({ fc: fc.constant(5 as const), address: word, value: fc.boolean() });
const writeRegister: fc.Arbitrary<ModbusRequest> = fc.record({ fc: fc.constant(6 as const), address: word, value: word });
const writeCoils: fc.Arbitrary<ModbusRequest> = fc
  .array(fc.boolean(), { minLength: 1, maxLength: QUANTITY_LIMITS[15] })
  .chain((values) => startFor(values.length).map((address) => ({ fc: 15 as const, address, values })));
const writeRegisters: fc.Arbitrary<ModbusRequest> = fc
  .array(word, { minLength: 1, maxLength: QUANTITY_LIMITS[16] })
  .chain((values) => startFor(values.length).map((address) => ({ fc: 16 as const, address, values })));
const requests = fc.oneof(readRequests, writeCoil, writeRegister, writeCoils, writeRegisters);

/** A well-formed answer to `req`. */
function responsesTo(req: ModbusRequest): fc.Arbitrary<ModbusResponse> {
  switch (req.fc) {
    case 1:
    case 2: {
      const bitsFc = req.fc === 1 ? 1 : 2;
      return fc.array(fc.boolean(), { minLength: req.quantity, maxLength: req.quantity }).map((bits) => ({ fc: bitsFc, bits }));
    }
    case 3:
    case 4: {
      const registersFc = req.fc === 3 ? 3 : 4;
      return fc.array(word, { minLength: req.quantity, maxLength: req.quantity }).map((words) => ({ fc: registersFc, words }));
    }
    case 5:
      return fc.constant({ fc: 5, address: req.address, value: req.value ? 0xff00 : 0x0000 });
    case 6:
      return fc.constant({ fc: 6, address: req.address, value: req.value });
    case 15:
    case 16:
      return fc.constant({ fc: req.fc, address: req.address, quantity: req.values.length });
  }
}
const exchanges = requests.chain((req) => fc.tuple(fc.constant(req), fc.oneof(responsesTo(req), fc.constantFrom(1, 2, 3, 4, 6).map((exception) => ({ fc: req.fc, exception })))));

// ─── CRC ──────────────────────────────────────────────────────────────────────────────────────────────────────────

describe("CRC-16/MODBUS", () => {
  it("gives 84 0A for 01 03 00 00 00 01 (unit 1, read 1 holding register at 0, as mbpoll sends it)", () => {
    const frame = bytes(
      0x01, // unit id 1
      0x03, // FC 03 read holding registers
      0x00, 0x00, // start address 0
      0x00, 0x01, // quantity 1
    );
    const crc = crc16Modbus(frame);
    expect(crc).toBe(0x0a84);
    expect([crc & 0xff, crc >> 8]).toEqual([0x84, 0x0a]); // low byte first on the wire
  });

  it("gives 0x1241, sent as 41 12, for 02 07 (read exception status, unit 2): the CRC-placement example of the serial line spec", () => {
    // Modbus over Serial Line V1.02 §6.2.2 / Modicon PI-MBUS-300: "if the CRC value is 1241 hex … CRC Lo 41, CRC Hi 12".
    expect(crc16Modbus(bytes(0x02, 0x07))).toBe(0x1241);
    expect(hex(encodeRtuFrame(2, bytes(0x07)))).toBe("02 07 41 12");
  });

  it("gives the catalogue check value 0x4B37 for the ASCII string 123456789 (CRC RevEng, CRC-16/MODBUS)", () => {
    expect(crc16Modbus(new TextEncoder().encode("123456789"))).toBe(0x4b37);
  });

  it("gives 76 87 for 11 03 00 6B 00 03 (unit 17, read registers 108-110, the §6.3 request in an RTU frame)", () => {
    expect(hex(encodeRtuFrame(0x11, bytes(0x03, 0x00, 0x6b, 0x00, 0x03)))).toBe("11 03 00 6B 00 03 76 87");
  });

  it("is 0xFFFF (the initial value) for no bytes, and honours start/end", () => {
    expect(crc16Modbus(bytes())).toBe(0xffff);
    const padded = bytes(0xaa, 0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0xbb);
    expect(crc16Modbus(padded, 1, 7)).toBe(0x0a84);
  });
});

// ─── request encoding and server-side decoding ───────────────────────────────────────────────────────────────────

describe("requests: the examples of Modbus Application Protocol V1.1b3 §6", () => {
  const examples: readonly [string, ModbusRequest, Uint8Array][] = [
    [
      "§6.1 read coils 20-38",
      { fc: 1, address: 19, quantity: 19 },
      bytes(
        0x01, // FC 01 read coils
        0x00, 0x13, // starting address 19 (coil 20)
        0x00, 0x13, // quantity 19
      ),
    ],
    [
      "§6.2 read discrete inputs 197-218",
      { fc: 2, address: 196, quantity: 22 },
      bytes(
        0x02, // FC 02 read discrete inputs
        0x00, 0xc4, // starting address 196 (input 197)
        0x00, 0x16, // quantity 22
      ),
    ],
    [
      "§6.3 read holding registers 108-110",
      { fc: 3, address: 107, quantity: 3 },
      bytes(
        0x03, // FC 03 read holding registers
        0x00, 0x6b, // starting address 107 (register 108)
        0x00, 0x03, // quantity 3
      ),
    ],
    [
      "§6.4 read input register 9",
      { fc: 4, address: 8, quantity: 1 },
      bytes(
        0x04, // FC 04 read input registers
        0x00, 0x08, // starting address 8 (register 9)
        0x00, 0x01, // quantity 1
      ),
    ],
    [
      "§6.5 write coil 173 ON",
      { fc: 5, address: 172, value: true },
      bytes(
        0x05, // FC 05 write single coil
        0x00, 0xac, // output address 172 (coil 173)
        0xff, 0x00, // 0xFF00 = ON
      ),
    ],
    [
      "§6.6 write register 2 = 3",
      { fc: 6, address: 1, value: 3 },
      bytes(
        0x06, // FC 06 write single register
        0x00, 0x01, // register address 1 (register 2)
        0x00, 0x03, // value 3
      ),
    ],
    [
      "§6.11 write 10 coils from coil 20",
      { fc: 15, address: 19, values: [true, false, true, true, false, false, true, true, true, false] },
      bytes(
        0x0f, // FC 15 write multiple coils
        0x00, 0x13, // starting address 19 (coil 20)
        0x00, 0x0a, // quantity 10
        0x02, // byte count 2
        0xcd, // coils 27..20 = 1100 1101
        0x01, // coils 29..28 = 01, padding zero
      ),
    ],
    [
      "§6.12 write registers 2-3 = 0x000A 0x0102",
      { fc: 16, address: 1, values: [0x000a, 0x0102] },
      bytes(
        0x10, // FC 16 write multiple registers
        0x00, 0x01, // starting address 1 (register 2)
        0x00, 0x02, // quantity 2
        0x04, // byte count 4
        0x00, 0x0a, // register 2 = 0x000A
        0x01, 0x02, // register 3 = 0x0102
      ),
    ],
  ];

  for (const [what, req, pdu] of examples) {
    it(`encodes ${what} as ${hex(pdu)}`, () => {
      expect(hex(encodeRequest(req))).toBe(hex(pdu));
    });
    it(`decodes ${hex(pdu)} as ${what}`, () => {
      expect(decodeRequest(pdu)).toEqual({ ok: true, value: req });
    });
  }

  it("encodes FC 05 OFF as 0x0000", () => {
    expect(hex(encodeRequest({ fc: 5, address: 172, value: false }))).toBe("05 00 AC 00 00");
  });

  it("round-trips every request of every function code: decodeRequest(encodeRequest(r)) = r", () => {
    fc.assert(
      fc.property(requests, (req) => {
        expect(decodeRequest(encodeRequest(req))).toEqual({ ok: true, value: req });
      }),
    );
  });

  it("accepts the limits themselves: 2000 bits, 125 registers, 1968 coils, 123 registers, address 65535", () => {
    expect(decodeRequest(bytes(0x01, 0x00, 0x00, 0x07, 0xd0))).toMatchObject({ ok: true, value: { quantity: 2000 } });
    expect(decodeRequest(bytes(0x04, 0x00, 0x00, 0x00, 0x7d))).toMatchObject({ ok: true, value: { quantity: 125 } });
    expect(decodeRequest(bytes(0x03, 0xff, 0x83, 0x00, 0x7d))).toMatchObject({ ok: true, value: { address: 0xff83, quantity: 125 } }); // ends at 65535
    expect(decodeRequest(encodeRequest({ fc: 15, address: 0, values: new Array<boolean>(1968).fill(true) }))).toMatchObject({ ok: true });
    expect(decodeRequest(encodeRequest({ fc: 16, address: 0, values: new Array<number>(123).fill(7) }))).toMatchObject({ ok: true });
    expect(decodeRequest(bytes(0x06, 0xff, 0xff, 0x12, 0x34))).toEqual({ ok: true, value: { fc: 6, address: 0xffff, value: 0x1234 } });
  });
});

describe("requests: what a server must refuse, and with which exception", () => {
  const { ILLEGAL_FUNCTION, ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE } = EXCEPTION_CODES;
  const refused: readonly [string, Uint8Array, number][] = [
    ["an empty PDU", bytes(), ILLEGAL_FUNCTION],
    [
      "FC 03 quantity 0 (§6.3: 1..125)",
      bytes(
        0x03, // FC 03
        0x00, 0x00, // address 0
        0x00, 0x00, // quantity 0
      ),
      ILLEGAL_DATA_VALUE,
    ],
    [
      "FC 03 quantity 126",
      bytes(
        0x03, // FC 03
        0x00, 0x00, // address 0
        0x00, 0x7e, // quantity 126
      ),
      ILLEGAL_DATA_VALUE,
    ],
    [
      "FC 04 quantity 126",
      bytes(0x04, 0x00, 0x00, 0x00, 0x7e),
      ILLEGAL_DATA_VALUE,
    ],
    [
      "FC 01 quantity 2001 (§6.1: 1..2000)",
      bytes(
        0x01, // FC 01
        0x00, 0x00, // address 0
        0x07, 0xd1, // quantity 2001
      ),
      ILLEGAL_DATA_VALUE,
    ],
    ["FC 02 quantity 2001", bytes(0x02, 0x00, 0x00, 0x07, 0xd1), ILLEGAL_DATA_VALUE],
    [
      "FC 03 at 65535 for 2 registers",
      bytes(
        0x03, // FC 03
        0xff, 0xff, // address 65535
        0x00, 0x02, // quantity 2: would end at 65536
      ),
      ILLEGAL_DATA_ADDRESS,
    ],
    [
      "FC 04 at 0xFF90 for 0x71 registers",
      bytes(
        0x04, // FC 04
        0xff, 0x90, // address 65424
        0x00, 0x71, // quantity 113: 65424 + 113 = 65537
      ),
      ILLEGAL_DATA_ADDRESS,
    ],
    ["FC 01 at 65000 for 1000 bits", bytes(0x01, 0xfd, 0xe8, 0x03, 0xe8), ILLEGAL_DATA_ADDRESS],
    ["FC 03 one byte short", bytes(0x03, 0x00, 0x00, 0x00), ILLEGAL_DATA_VALUE],
    ["FC 03 one byte long", bytes(0x03, 0x00, 0x00, 0x00, 0x01, 0x00), ILLEGAL_DATA_VALUE],
    [
      "FC 05 value 0x1234 (§6.5: only 0x0000 or 0xFF00)",
      bytes(
        0x05, // FC 05
        0x00, 0xac, // coil address 172
        0x12, 0x34, // neither OFF nor ON
      ),
      ILLEGAL_DATA_VALUE,
    ],
    ["FC 05 value 0x0001", bytes(0x05, 0x00, 0xac, 0x00, 0x01), ILLEGAL_DATA_VALUE],
    ["FC 05 value 0x00FF (ON with its bytes swapped)", bytes(0x05, 0x00, 0xac, 0x00, 0xff), ILLEGAL_DATA_VALUE],
    ["FC 06 one byte short", bytes(0x06, 0x00, 0x01, 0x00), ILLEGAL_DATA_VALUE],
    [
      "FC 15 byte count 1 for 10 coils",
      bytes(
        0x0f, // FC 15
        0x00, 0x13, // address 19
        0x00, 0x0a, // quantity 10: needs 2 bytes
        0x01, // byte count 1: mismatch
        0xcd, // coils 27..20
      ),
      ILLEGAL_DATA_VALUE,
    ],
    [
      "FC 15 byte count 2 but only 1 data byte",
      bytes(
        0x0f, // FC 15
        0x00, 0x13, // address 19
        0x00, 0x0a, // quantity 10
        0x02, // byte count 2
        0xcd, // one data byte: the second is missing
      ),
      ILLEGAL_DATA_VALUE,
    ],
    ["FC 15 quantity 0", bytes(0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00), ILLEGAL_DATA_VALUE],
    ["FC 15 quantity 1969 (§6.11: 1..1968)", bytes(0x0f, 0x00, 0x00, 0x07, 0xb1, 0xf7, ...new Array<number>(0xf7).fill(0)), ILLEGAL_DATA_VALUE],
    [
      "FC 15 at 65535 for 2 coils",
      bytes(
        0x0f, // FC 15
        0xff, 0xff, // address 65535
        0x00, 0x02, // quantity 2
        0x01, // byte count 1
        0x03, // coils
      ),
      ILLEGAL_DATA_ADDRESS,
    ],
    [
      "FC 16 byte count 3 for 2 registers",
      bytes(
        0x10, // FC 16
        0x00, 0x01, // address 1
        0x00, 0x02, // quantity 2: needs 4 bytes
        0x03, // byte count 3: mismatch
        0x00, 0x0a, 0x01,
      ),
      ILLEGAL_DATA_VALUE,
    ],
    [
      "FC 16 byte count 4 but 3 data bytes",
      bytes(
        0x10, // FC 16
        0x00, 0x01, // address 1
        0x00, 0x02, // quantity 2
        0x04, // byte count 4
        0x00, 0x0a, 0x01, // one byte missing
      ),
      ILLEGAL_DATA_VALUE,
    ],
    ["FC 16 quantity 124 (§6.12: 1..123)", bytes(0x10, 0x00, 0x00, 0x00, 0x7c, 0xf8, ...new Array<number>(0xf8).fill(0)), ILLEGAL_DATA_VALUE],
    ["FC 16 quantity 0", bytes(0x10, 0x00, 0x00, 0x00, 0x00, 0x00), ILLEGAL_DATA_VALUE],
    ["FC 16 header only", bytes(0x10, 0x00, 0x00, 0x00, 0x01), ILLEGAL_DATA_VALUE],
    [
      "FC 16 at 65535 for 2 registers",
      bytes(
        0x10, // FC 16
        0xff, 0xff, // address 65535
        0x00, 0x02, // quantity 2
        0x04, // byte count 4
        0x00, 0x01, 0x00, 0x02,
      ),
      ILLEGAL_DATA_ADDRESS,
    ],
    [
      "FC 0x2B (encapsulated interface transport, not supported here)",
      bytes(
        0x2b, // FC 43
        0x0e, // MEI type 14: read device identification
        0x01, // read device id code 1
        0x00, // object id 0
      ),
      ILLEGAL_FUNCTION,
    ],
    ["FC 0x00", bytes(0x00, 0x00, 0x00, 0x00, 0x01), ILLEGAL_FUNCTION],
    ["an exception-response function code (0x83) sent as a request", bytes(0x83, 0x02), ILLEGAL_FUNCTION],
  ];

  for (const [what, pdu, exception] of refused) {
    it(`refuses ${what} with exception 0${exception}`, () => {
      const r = decodeRequest(pdu);
      expect(r).toMatchObject({ ok: false, exception });
      if (!r.ok) expect(r.reason.length).toBeGreaterThan(0);
    });
  }

  it("never throws on random bytes: every failure is exception 01, 02 or 03, every success re-encodes to the same bytes", () => {
    const pdus = fc.oneof(
      fc.uint8Array({ maxLength: 260 }),
      // Mostly-plausible PDUs reach the deeper checks more often than uniform bytes do.
      fc.tuple(fc.constantFrom(1, 2, 3, 4, 5, 6, 15, 16, 0x2b, 0x83), fc.uint8Array({ maxLength: 12 })).map(([f, rest]) => Uint8Array.of(f, ...rest)),
    );
    fc.assert(
      fc.property(pdus, (pdu) => {
        const r = decodeRequest(pdu);
        if (!r.ok) {
          expect([1, 2, 3]).toContain(r.exception);
          return;
        }
        // FC 15 may carry nonzero padding bits that re-encode as zero; every other request is canonical.
        if (r.value.fc !== 15) expect(hex(encodeRequest(r.value))).toBe(hex(pdu));
      }),
      { numRuns: 2000 },
    );
  });
});

// ─── responses ────────────────────────────────────────────────────────────────────────────────────────────────────

describe("responses: the examples of §6 and §7", () => {
  it("§6.1: coils 20-38 answer 01 03 CD 6B 05", () => {
    const pdu = bytes(
      0x01, // FC 01
      0x03, // byte count 3
      0xcd, // coils 27..20 = 1100 1101
      0x6b, // coils 35..28 = 0110 1011
      0x05, // coils 38..36 = 101, five padding zeros
    );
    const r = decodeResponse(pdu, { fc: 1, address: 19, quantity: 19 });
    const coils20to38 = [1, 0, 1, 1, 0, 0, 1, 1, /* 28 */ 1, 1, 0, 1, 0, 1, 1, 0, /* 36 */ 1, 0, 1].map((b) => b === 1);
    expect(r).toEqual({ ok: true, value: { fc: 1, bits: coils20to38 } });
    expect(hex(encodeResponse({ fc: 1, bits: coils20to38 }))).toBe(hex(pdu));
  });

  it("§6.2: discrete inputs 197-218 answer 02 03 AC DB 35", () => {
    const pdu = bytes(
      0x02, // FC 02
      0x03, // byte count 3
      0xac, // inputs 204..197 = 1010 1100
      0xdb, // inputs 212..205 = 1101 1011
      0x35, // inputs 218..213 = 11 0101, two padding zeros
    );
    const r = decodeResponse(pdu, { fc: 2, address: 196, quantity: 22 });
    expect(r.ok).toBe(true);
    if (r.ok && "bits" in r.value) {
      expect(r.value.bits).toHaveLength(22);
      expect(r.value.bits.slice(0, 8)).toEqual([false, false, true, true, false, true, false, true]); // 0xAC LSB first
    }
  });

  it("§6.3: registers 108-110 answer 03 06 02 2B 00 00 00 64 (555, 0, 100)", () => {
    const pdu = bytes(
      0x03, // FC 03
      0x06, // byte count 6
      0x02, 0x2b, // register 108 = 555
      0x00, 0x00, // register 109 = 0
      0x00, 0x64, // register 110 = 100
    );
    expect(decodeResponse(pdu, { fc: 3, address: 107, quantity: 3 })).toEqual({ ok: true, value: { fc: 3, words: [555, 0, 100] } });
    expect(hex(encodeResponse({ fc: 3, words: [555, 0, 100] }))).toBe(hex(pdu));
  });

  it("§6.4: input register 9 answers 04 02 00 0A (10)", () => {
    expect(decodeResponse(bytes(0x04, 0x02, 0x00, 0x0a), { fc: 4, address: 8, quantity: 1 })).toEqual({ ok: true, value: { fc: 4, words: [10] } });
  });

  it("§6.5/§6.6: single writes answer with an echo of the request", () => {
    expect(decodeResponse(bytes(0x05, 0x00, 0xac, 0xff, 0x00), { fc: 5, address: 172, value: true })).toEqual({ ok: true, value: { fc: 5, address: 172, value: 0xff00 } });
    expect(decodeResponse(bytes(0x06, 0x00, 0x01, 0x00, 0x03), { fc: 6, address: 1, value: 3 })).toEqual({ ok: true, value: { fc: 6, address: 1, value: 3 } });
  });

  it("§6.11/§6.12: multiple writes answer with address and quantity", () => {
    const coils = [true, false, true, true, false, false, true, true, true, false];
    expect(decodeResponse(bytes(0x0f, 0x00, 0x13, 0x00, 0x0a), { fc: 15, address: 19, values: coils })).toEqual({ ok: true, value: { fc: 15, address: 19, quantity: 10 } });
    expect(decodeResponse(bytes(0x10, 0x00, 0x01, 0x00, 0x02), { fc: 16, address: 1, values: [10, 258] })).toEqual({ ok: true, value: { fc: 16, address: 1, quantity: 2 } });
  });

  it("§7: an exception response 81 02 decodes as illegal data address for FC 01", () => {
    const pdu = bytes(
      0x81, // FC 01 | 0x80: exception
      0x02, // exception 02 illegal data address
    );
    expect(decodeResponse(pdu, { fc: 1, address: 0x04a1, quantity: 1 })).toEqual({ ok: true, value: { fc: 1, exception: 2 } });
    expect(hex(encodeResponse({ fc: 1, exception: 2 }))).toBe("81 02");
  });

  it("decodes an exception to a write (0x90 04: server device failure on FC 16)", () => {
    expect(decodeResponse(bytes(0x90, 0x04), { fc: 16, address: 0x1a, values: [0] })).toEqual({ ok: true, value: { fc: 16, exception: 4 } });
  });

  it("round-trips every well-formed answer, exceptions included", () => {
    fc.assert(
      fc.property(exchanges, ([req, resp]) => {
        expect(decodeResponse(encodeResponse(resp), req)).toEqual({ ok: true, value: resp });
      }),
    );
  });
});

describe("responses: what a client must refuse", () => {
  const read3: ModbusRequest = { fc: 3, address: 107, quantity: 3 };
  const cases: readonly [string, Uint8Array, ModbusRequest, "MALFORMED" | "MISMATCH"][] = [
    ["an empty answer", bytes(), read3, "MALFORMED"],
    ["an FC 04 answer to an FC 03 request", bytes(0x04, 0x06, 0x02, 0x2b, 0x00, 0x00, 0x00, 0x64), read3, "MISMATCH"],
    ["an FC 04 exception (0x84) to an FC 03 request", bytes(0x84, 0x02), read3, "MISMATCH"],
    ["an exception response of 3 bytes", bytes(0x83, 0x02, 0x00), read3, "MALFORMED"],
    ["an exception response of 1 byte", bytes(0x83), read3, "MALFORMED"],
    [
      "2 registers where 3 were asked",
      bytes(
        0x03, // FC 03
        0x04, // byte count 4: asked 3 registers = 6 bytes
        0x02, 0x2b, 0x00, 0x00,
      ),
      read3,
      "MISMATCH",
    ],
    [
      "a byte count that disagrees with the length",
      bytes(
        0x03, // FC 03
        0x06, // byte count 6
        0x02, 0x2b, 0x00, 0x00, // only 4 bytes follow
      ),
      read3,
      "MALFORMED",
    ],
    ["an odd byte count for registers", bytes(0x03, 0x05, 0x02, 0x2b, 0x00, 0x00, 0x00), read3, "MISMATCH"],
    ["no byte count at all", bytes(0x03), read3, "MALFORMED"],
    ["2 bytes of coils where 19 coils need 3", bytes(0x01, 0x02, 0xcd, 0x6b), { fc: 1, address: 19, quantity: 19 }, "MISMATCH"],
    [
      "an FC 06 echo with another value",
      bytes(
        0x06, // FC 06
        0x00, 0x01, // address 1: same
        0x00, 0x04, // value 4: asked 3
      ),
      { fc: 6, address: 1, value: 3 },
      "MISMATCH",
    ],
    ["an FC 06 echo with another address", bytes(0x06, 0x00, 0x02, 0x00, 0x03), { fc: 6, address: 1, value: 3 }, "MISMATCH"],
    ["an FC 05 echo of OFF to an ON request", bytes(0x05, 0x00, 0xac, 0x00, 0x00), { fc: 5, address: 172, value: true }, "MISMATCH"],
    ["a short FC 05 echo", bytes(0x05, 0x00, 0xac, 0xff), { fc: 5, address: 172, value: true }, "MALFORMED"],
    ["an FC 16 answer with another quantity", bytes(0x10, 0x00, 0x01, 0x00, 0x01), { fc: 16, address: 1, values: [10, 258] }, "MISMATCH"],
    ["an FC 16 answer with another address", bytes(0x10, 0x00, 0x1a, 0x00, 0x02), { fc: 16, address: 1, values: [10, 258] }, "MISMATCH"],
    ["an FC 15 answer of 6 bytes", bytes(0x0f, 0x00, 0x13, 0x00, 0x0a, 0x00), { fc: 15, address: 19, values: [true] }, "MALFORMED"],
  ];
  for (const [what, pdu, req, code] of cases) {
    it(`refuses ${what} as ${code}`, () => {
      expect(decodeResponse(pdu, req)).toMatchObject({ ok: false, code });
    });
  }

  it("never throws on random bytes against any request", () => {
    fc.assert(
      fc.property(requests, fc.oneof(fc.uint8Array({ maxLength: 260 }), fc.uint8Array({ maxLength: 8 })), (req, pdu) => {
        const r = decodeResponse(pdu, req);
        expect(typeof r.ok).toBe("boolean");
        if (!r.ok) expect(["MALFORMED", "MISMATCH"]).toContain(r.code);
      }),
      { numRuns: 2000 },
    );
  });

  it("never throws on a valid answer with one byte changed or the length cut", () => {
    fc.assert(
      fc.property(exchanges, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), ([req, resp], at, value, cut) => {
        const pdu = Uint8Array.from(encodeResponse(resp));
        const i = at % pdu.length;
        if (cut) expect(() => decodeResponse(pdu.subarray(0, i), req)).not.toThrow();
        pdu[i] = value;
        expect(() => decodeResponse(pdu, req)).not.toThrow();
      }),
    );
  });
});

describe("packBits / unpackBits", () => {
  it("packs coils 20-38 of the §6.1 example LSB-first into CD 6B 05", () => {
    const coils = [true, false, true, true, false, false, true, true, true, true, false, true, false, true, true, false, true, false, true];
    expect(hex(packBits(coils))).toBe("CD 6B 05");
    expect(unpackBits(bytes(0xcd, 0x6b, 0x05), 19)).toEqual(coils);
  });

  it("packs nothing into no bytes, and 8 bits into exactly one", () => {
    expect(packBits([])).toHaveLength(0);
    expect(hex(packBits([true, false, false, false, false, false, false, true]))).toBe("81");
  });

  it("reads from an offset, and reads missing bytes as 0 rather than throwing", () => {
    expect(unpackBits(bytes(0xff, 0x01), 2, 1)).toEqual([true, false]);
    expect(unpackBits(bytes(), 3)).toEqual([false, false, false]);
  });

  it("round-trips any bit array", () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 2000 }), (bits) => {
        const packed = packBits(bits);
        expect(packed).toHaveLength(Math.ceil(bits.length / 8));
        expect(unpackBits(packed, bits.length)).toEqual(bits);
      }),
    );
  });
});

// ─── frames ───────────────────────────────────────────────────────────────────────────────────────────────────────

describe("RTU frames", () => {
  it("frames unit 1 + 03 00 00 00 01 as 01 03 00 00 00 01 84 0A", () => {
    const frame = encodeRtuFrame(1, encodeRequest({ fc: 3, address: 0, quantity: 1 }));
    expect(hex(frame)).toBe("01 03 00 00 00 01 84 0A");
    expect(rtuCrcOk(frame)).toBe(true);
  });

  it("checks the CRC of every frame it builds", () => {
    fc.assert(
      fc.property(unitId, fc.uint8Array({ minLength: 1, maxLength: 253 }), (unit, pdu) => {
        const frame = encodeRtuFrame(unit, pdu);
        expect(frame).toHaveLength(pdu.length + 3);
        expect(frame[0]).toBe(unit);
        expect(hex(frame.subarray(1, pdu.length + 1))).toBe(hex(pdu));
        expect(rtuCrcOk(frame)).toBe(true);
      }),
    );
  });

  it("fails the CRC when any one bit of the frame flips (CRC-16 detects every single-bit error)", () => {
    fc.assert(
      fc.property(unitId, fc.uint8Array({ minLength: 1, maxLength: 253 }), fc.nat(), fc.integer({ min: 0, max: 7 }), (unit, pdu, at, bit) => {
        const frame = encodeRtuFrame(unit, pdu);
        frame[at % frame.length] = (frame[at % frame.length] as number) ^ (1 << bit);
        expect(rtuCrcOk(frame)).toBe(false);
      }),
    );
  });

  it("rejects frames shorter than unit + FC + CRC", () => {
    expect(rtuCrcOk(bytes())).toBe(false);
    expect(rtuCrcOk(bytes(0x01, 0x84, 0x0a))).toBe(false);
  });

  it("knows request lengths from the function code: 8 for FC 01-06, 9 + byte count for FC 15/16", () => {
    expect(rtuRequestLength(bytes())).toBe("more");
    expect(rtuRequestLength(bytes(0x01))).toBe("more"); // unit id only
    for (const f of [1, 2, 3, 4, 5, 6]) expect(rtuRequestLength(bytes(0x01, f))).toBe(8);
    expect(rtuRequestLength(bytes(0x01, 0x10, 0x00, 0x01, 0x00, 0x02))).toBe("more"); // byte count not yet here
    expect(
      rtuRequestLength(
        bytes(
          0x01, // unit
          0x10, // FC 16
          0x00, 0x01, // address
          0x00, 0x02, // quantity
          0x04, // byte count 4 → 1 + 1 + 2 + 2 + 1 + 4 + 2 = 13
        ),
      ),
    ).toBe(13);
    expect(rtuRequestLength(bytes(0x01, 0x0f, 0x00, 0x13, 0x00, 0x0a, 0x02))).toBe(11);
    expect(rtuRequestLength(bytes(0x01, 0x2b, 0x0e))).toBe("unknown");
    expect(rtuRequestLength(bytes(0x01, 0x07))).toBe("unknown");
  });

  it("computes the exact length of every request frame from its first 7 bytes", () => {
    fc.assert(
      fc.property(unitId, requests, (unit, req) => {
        const frame = encodeRtuFrame(unit, encodeRequest(req));
        expect(rtuRequestLength(frame.subarray(0, 7))).toBe(frame.length);
        expect(rtuRequestLength(frame)).toBe(frame.length);
      }),
    );
  });

  it("knows response lengths: 5 for exceptions, 5 + byte count for reads, 8 for write answers", () => {
    expect(rtuResponseLength(bytes())).toBe("more");
    expect(rtuResponseLength(bytes(0x01))).toBe("more");
    expect(rtuResponseLength(bytes(0x01, 0x83))).toBe(5); // unit, 0x83, code, CRC
    expect(rtuResponseLength(bytes(0x01, 0x03))).toBe("more"); // byte count not yet here
    expect(rtuResponseLength(bytes(0x01, 0x03, 0x06))).toBe(11); // unit, FC, count, 6 data, CRC
    expect(rtuResponseLength(bytes(0x01, 0x01, 0x03))).toBe(8);
    for (const f of [5, 6, 15, 16]) expect(rtuResponseLength(bytes(0x01, f))).toBe(8);
    expect(rtuResponseLength(bytes(0x01, 0x2b))).toBe("unknown");
  });

  it("computes the exact length of every response frame from its first 3 bytes", () => {
    fc.assert(
      fc.property(unitId, exchanges, (unit, [, resp]) => {
        const frame = encodeRtuFrame(unit, encodeResponse(resp));
        expect(rtuResponseLength(frame.subarray(0, 3))).toBe(frame.length);
      }),
    );
  });
});

describe("MBAP (Modbus Messaging on TCP/IP V1.0b §3.1.3)", () => {
  const adu = bytes(
    0x00, 0x01, // transaction id 1
    0x00, 0x00, // protocol id 0 = Modbus
    0x00, 0x06, // length 6 = unit id + 5 PDU bytes
    0x11, // unit id 17
    0x03, 0x00, 0x6b, 0x00, 0x03, // PDU: FC 03, address 107, quantity 3
  );

  it("wraps the §6.3 request for unit 17, transaction 1 as 00 01 00 00 00 06 11 03 00 6B 00 03", () => {
    expect(hex(encodeMbap(1, 0x11, encodeRequest({ fc: 3, address: 107, quantity: 3 })))).toBe(hex(adu));
  });

  it("decodes the header fields of that ADU", () => {
    expect(decodeMbapHeader(adu)).toEqual({ transactionId: 1, protocolId: 0, length: 6, unitId: 0x11 });
    expect(decodeRequest(adu.subarray(MBAP_HEADER_LENGTH))).toEqual({ ok: true, value: { fc: 3, address: 107, quantity: 3 } });
  });

  it("carries transaction ids up to 0xFFFF big-endian, and reports a nonzero protocol id for the caller to refuse", () => {
    expect(hex(encodeMbap(0xbeef, 0xff, bytes(0x81, 0x02)))).toBe("BE EF 00 00 00 03 FF 81 02");
    expect(decodeMbapHeader(bytes(0x12, 0x34, 0x00, 0x01, 0x00, 0x02, 0x05))).toEqual({ transactionId: 0x1234, protocolId: 1, length: 2, unitId: 5 });
  });

  it("needs all 7 header bytes", () => {
    expect(decodeMbapHeader(adu.subarray(0, 6))).toBeUndefined();
  });

  it("round-trips any transaction id, unit id and PDU", () => {
    fc.assert(
      fc.property(word, unitId, fc.uint8Array({ minLength: 1, maxLength: 253 }), (tid, unit, pdu) => {
        const out = encodeMbap(tid, unit, pdu);
        expect(decodeMbapHeader(out)).toEqual({ transactionId: tid, protocolId: 0, length: pdu.length + 1, unitId: unit });
        expect(hex(out.subarray(MBAP_HEADER_LENGTH))).toBe(hex(pdu));
      }),
    );
  });
});

describe("serial line arithmetic (Modbus over Serial Line V1.02 §2.5.1)", () => {
  const line = (baud: number, parity: SerialLine["parity"] = "even", stopBits: SerialLine["stopBits"] = 1): SerialLine => ({ baud, parity, stopBits });

  it("counts 11 bits per character for 8E1 and 8N2, 10 for 8N1", () => {
    expect(bitsPerCharacter(line(9600, "even", 1))).toBe(11);
    expect(bitsPerCharacter(line(9600, "odd", 1))).toBe(11);
    expect(bitsPerCharacter(line(9600, "none", 2))).toBe(11);
    expect(bitsPerCharacter(line(9600, "none", 1))).toBe(10);
  });

  it("takes 11/9.6 ms per 8E1 character at 9600 baud", () => {
    expect(frameTimeMs(1, line(9600))).toBeCloseTo(11 / 9.6, 12);
    expect(frameTimeMs(8, line(9600))).toBeCloseTo(88 / 9.6, 12);
  });

  it("waits 3.5 characters between frames up to 19200 baud, and a fixed 1.75 ms above it (§2.5.1.1)", () => {
    expect(interFrameSilenceMs(line(9600))).toBeCloseTo((3.5 * 11) / 9.6, 12); // ≈ 4.01 ms
    expect(interFrameSilenceMs(line(19200))).toBeCloseTo((3.5 * 11) / 19.2, 12); // ≈ 2.005 ms: 19200 is not "above"
    for (const baud of [38400, 57600, 115200]) expect(interFrameSilenceMs(line(baud))).toBe(1.75);
  });

  it("sizes an FC 03 read of N registers as an 8-byte request and a (5 + 2N)-byte answer, bit reads as 5 + ceil(N/8)", () => {
    expect(rtuReadFrameSizes(3, 10)).toEqual({ request: 8, response: 25 });
    expect(rtuReadFrameSizes(4, 60)).toEqual({ request: 8, response: 125 });
    expect(rtuReadFrameSizes(1, 19)).toEqual({ request: 8, response: 8 });
  });

  // performance-notes.md: 10 registers → 21.8 / 43.6 / 150 txn/s; 60 registers → 6.2 / 12.5 / 61.7 txn/s (8E1).
  const figures: readonly [number, number, number, number][] = [
    [10, 9600, 21.8, 1],
    [10, 19200, 43.6, 1],
    [10, 115200, 150, 0],
    [60, 9600, 6.2, 1],
    [60, 19200, 12.5, 1],
    [60, 115200, 61.7, 1],
  ];
  for (const [registers, baud, expected, decimals] of figures) {
    it(`allows at most ≈ ${expected} reads of ${registers} registers per second at ${baud} baud 8E1`, () => {
      expect(rtuTransactionLimitPerSecond(3, registers, line(baud)).toFixed(decimals)).toBe(expected.toFixed(decimals));
    });
  }

  it("never exceeds one transaction per (request + answer + two silences) of line time", () => {
    fc.assert(
      fc.property(fc.constantFrom(1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200), fc.integer({ min: 1, max: 125 }), (baud, n) => {
        const l = line(baud);
        const limit = rtuTransactionLimitPerSecond(3, n, l);
        const ms = frameTimeMs(8 + 5 + 2 * n, l) + 2 * interFrameSilenceMs(l);
        expect(limit).toBeCloseTo(1000 / ms, 9);
        expect(rtuTransactionLimitPerSecond(3, n, line(baud, "none"))).toBeGreaterThanOrEqual(limit); // 8N1 is faster
      }),
    );
  });
});
