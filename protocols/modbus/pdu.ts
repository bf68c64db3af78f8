// Modbus PDUs (function code + data) for the function codes this project speaks: 01, 02, 03, 04 (reads),
// 05, 06, 15, 16 (writes), and exception responses. Encoding and decoding are pure and total: a malformed PDU
// decodes to a typed failure carrying the Modbus exception code a server should answer, never to a throw.
// Limits from the Modbus Application Protocol Specification V1.1b3 §6.1-§6.12.

export const FUNCTION_CODES = {
  READ_COILS: 1,
  READ_DISCRETE_INPUTS: 2,
  READ_HOLDING_REGISTERS: 3,
  READ_INPUT_REGISTERS: 4,
  WRITE_SINGLE_COIL: 5,
  WRITE_SINGLE_REGISTER: 6,
  WRITE_MULTIPLE_COILS: 15,
  WRITE_MULTIPLE_REGISTERS: 16,
} as const;

/** §7 exception codes. */
export const EXCEPTION_CODES = {
  ILLEGAL_FUNCTION: 1,
  ILLEGAL_DATA_ADDRESS: 2,
  ILLEGAL_DATA_VALUE: 3,
  SERVER_DEVICE_FAILURE: 4,
  ACKNOWLEDGE: 5,
  SERVER_DEVICE_BUSY: 6,
  GATEWAY_PATH_UNAVAILABLE: 10,
  GATEWAY_TARGET_FAILED: 11,
} as const;
export type ExceptionCode = (typeof EXCEPTION_CODES)[keyof typeof EXCEPTION_CODES];

export const QUANTITY_LIMITS = {
  1: 2000, // §6.1 read coils 1..2000
  2: 2000, // §6.2 read discrete inputs 1..2000
  3: 125, // §6.3 read holding registers 1..125
  4: 125, // §6.4 read input registers 1..125
  15: 0x7b0, // §6.11 write multiple coils 1..1968
  16: 0x7b, // §6.12 write multiple registers 1..123
} as const;

export type ReadRequest = { readonly fc: 1 | 2 | 3 | 4; readonly address: number; readonly quantity: number };
export type WriteCoilRequest = { readonly fc: 5; readonly address: number; readonly value: boolean };
export type WriteRegisterRequest = { readonly fc: 6; readonly address: number; readonly value: number };
export type WriteCoilsRequest = { readonly fc: 15; readonly address: number; readonly values: readonly boolean[] };
export type WriteRegistersRequest = { readonly fc: 16; readonly address: number; readonly values: readonly number[] };
export type ModbusRequest = ReadRequest | WriteCoilRequest | WriteRegisterRequest | WriteCoilsRequest | WriteRegistersRequest;

export type BitsResponse = { readonly fc: 1 | 2; readonly bits: readonly boolean[] };
export type RegistersResponse = { readonly fc: 3 | 4; readonly words: readonly number[] };
export type WriteSingleResponse = { readonly fc: 5 | 6; readonly address: number; readonly value: number };
export type WriteMultipleResponse = { readonly fc: 15 | 16; readonly address: number; readonly quantity: number };
export type ExceptionResponse = { readonly fc: number; readonly exception: number };
export type ModbusResponse = BitsResponse | RegistersResponse | WriteSingleResponse | WriteMultipleResponse | ExceptionResponse;

export type DecodeFailure = { readonly ok: false; readonly exception: ExceptionCode; readonly reason: string };
export type Decoded<T> = { readonly ok: true; readonly value: T } | DecodeFailure;

function fail(exception: ExceptionCode, reason: string): DecodeFailure {
  return { ok: false, exception, reason };
}

function u16(b: Uint8Array, i: number): number {
  return ((b[i] as number) << 8) | (b[i + 1] as number);
}

/** Bits are packed LSB-first, first bit in the lowest bit of the first byte (§6.1). */
export function packBits(bits: readonly boolean[]): Uint8Array {
  const out = new Uint8Array(Math.ceil(bits.length / 8));
  bits.forEach((bit, i) => {
    if (bit) out[i >> 3] = (out[i >> 3] as number) | (1 << (i & 7));
  });
  return out;
}

export function unpackBits(bytes: Uint8Array, count: number, offset = 0): boolean[] {
  const bits = new Array<boolean>(count);
  for (let i = 0; i < count; i++) bits[i] = (((bytes[offset + (i >> 3)] as number) >> (i & 7)) & 1) === 1;
  return bits;
}

export function encodeRequest(req: ModbusRequest): Uint8Array {
  switch (req.fc) {
    case 1:
    case 2:
    case 3:
    case 4:
      return Uint8Array.of(req.fc, req.address >> 8, req.address & 0xff, req.quantity >> 8, req.quantity & 0xff);
    case 5:
      return Uint8Array.of(5, req.address >> 8, req.address & 0xff, req.value ? 0xff : 0x00, 0x00);
    case 6:
      return Uint8Array.of(6, req.address >> 8, req.address & 0xff, req.value >> 8, req.value & 0xff);
    case 15: {
      const packed = packBits(req.values);
      const n = req.values.length;
      return Uint8Array.of(15, req.address >> 8, req.address & 0xff, n >> 8, n & 0xff, packed.length, ...packed);
    }
    case 16: {
      const out = new Uint8Array(6 + req.values.length * 2);
      out.set([16, req.address >> 8, req.address & 0xff, req.values.length >> 8, req.values.length & 0xff, req.values.length * 2]);
      req.values.forEach((w, i) => {
        out[6 + i * 2] = w >> 8;
        out[7 + i * 2] = w & 0xff;
      });
      return out;
    }
  }
}

/** Decode a request PDU as a server must (§6 and the state diagrams of §6.x): typed failure = exception to answer. */
export function decodeRequest(pdu: Uint8Array): Decoded<ModbusRequest> {
  const fc = pdu[0];
  if (fc === undefined) return fail(EXCEPTION_CODES.ILLEGAL_FUNCTION, "empty PDU");
  switch (fc) {
    case 1:
    case 2:
    case 3:
    case 4: {
      if (pdu.length !== 5) return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, `FC ${fc} request must be 5 bytes, got ${pdu.length}`);
      const address = u16(pdu, 1);
      const quantity = u16(pdu, 3);
      if (quantity < 1 || quantity > QUANTITY_LIMITS[fc]) return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, `quantity ${quantity} outside 1..${QUANTITY_LIMITS[fc]}`);
      if (address + quantity > 0x10000) return fail(EXCEPTION_CODES.ILLEGAL_DATA_ADDRESS, `address ${address} + ${quantity} past 65535`);
      return { ok: true, value: { fc, address, quantity } };
    }
    case 5: {
      if (pdu.length !== 5) return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, `FC 5 request must be 5 bytes, got ${pdu.length}`);
      const raw = u16(pdu, 3);
      if (raw !== 0x0000 && raw !== 0xff00) return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, `coil value 0x${raw.toString(16)} is neither 0x0000 nor 0xFF00`);
      return { ok: true, value: { fc: 5, address: u16(pdu, 1), value: raw === 0xff00 } };
    }
    case 6:
      if (pdu.length !== 5) return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, `FC 6 request must be 5 bytes, got ${pdu.length}`);
      return { ok: true, value: { fc: 6, address: u16(pdu, 1), value: u16(pdu, 3) } };
    case 15: {
      if (pdu.length < 7) return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, "FC 15 request too short");
      const address = u16(pdu, 1);
      const quantity = u16(pdu, 3);
      const byteCount = pdu[5] as number;
      if (quantity < 1 || quantity > QUANTITY_LIMITS[15] || byteCount !== Math.ceil(quantity / 8)) {
        return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, `FC 15 quantity ${quantity} / byte count ${byteCount} inconsistent`);
      }
      if (pdu.length !== 6 + byteCount) return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, "FC 15 length does not match byte count");
      if (address + quantity > 0x10000) return fail(EXCEPTION_CODES.ILLEGAL_DATA_ADDRESS, "FC 15 past 65535");
      return { ok: true, value: { fc: 15, address, values: unpackBits(pdu, quantity, 6) } };
    }
    case 16: {
      if (pdu.length < 6) return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, "FC 16 request too short");
      const address = u16(pdu, 1);
      const quantity = u16(pdu, 3);
      const byteCount = pdu[5] as number;
      if (quantity < 1 || quantity > QUANTITY_LIMITS[16] || byteCount !== quantity * 2) {
        return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, `FC 16 quantity ${quantity} / byte count ${byteCount} inconsistent`);
      }
      if (pdu.length !== 6 + byteCount) return fail(EXCEPTION_CODES.ILLEGAL_DATA_VALUE, "FC 16 length does not match byte count");
      if (address + quantity > 0x10000) return fail(EXCEPTION_CODES.ILLEGAL_DATA_ADDRESS, "FC 16 past 65535");
      const values: number[] = [];
      for (let i = 0; i < quantity; i++) values.push(u16(pdu, 6 + i * 2));
      return { ok: true, value: { fc: 16, address, values } };
    }
    default:
      return fail(EXCEPTION_CODES.ILLEGAL_FUNCTION, `function code ${fc} not supported`);
  }
}

export function encodeResponse(resp: ModbusResponse): Uint8Array {
  if ("exception" in resp) return Uint8Array.of((resp.fc | 0x80) & 0xff, resp.exception);
  switch (resp.fc) {
    case 1:
    case 2: {
      const packed = packBits(resp.bits);
      return Uint8Array.of(resp.fc, packed.length, ...packed);
    }
    case 3:
    case 4: {
      const out = new Uint8Array(2 + resp.words.length * 2);
      out[0] = resp.fc;
      out[1] = resp.words.length * 2;
      resp.words.forEach((w, i) => {
        out[2 + i * 2] = (w >> 8) & 0xff;
        out[3 + i * 2] = w & 0xff;
      });
      return out;
    }
    case 5:
    case 6:
      return Uint8Array.of(resp.fc, resp.address >> 8, resp.address & 0xff, resp.value >> 8, resp.value & 0xff);
    case 15:
    case 16:
      return Uint8Array.of(resp.fc, resp.address >> 8, resp.address & 0xff, resp.quantity >> 8, resp.quantity & 0xff);
  }
}

export type ResponseFailure = { readonly ok: false; readonly code: "MALFORMED" | "MISMATCH"; readonly reason: string };

/**
 * Decode a response PDU as a client must: checked against the request it answers (function code, byte count,
 * echoed address and quantity). An exception response decodes successfully as an ExceptionResponse.
 */
export function decodeResponse(pdu: Uint8Array, req: ModbusRequest): { readonly ok: true; readonly value: ModbusResponse } | ResponseFailure {
  const fc = pdu[0];
  const bad = (code: "MALFORMED" | "MISMATCH", reason: string): ResponseFailure => ({ ok: false, code, reason });
  if (fc === undefined) return bad("MALFORMED", "empty response");
  if (fc === (req.fc | 0x80)) {
    if (pdu.length !== 2) return bad("MALFORMED", "exception response must be 2 bytes");
    return { ok: true, value: { fc: req.fc, exception: pdu[1] as number } };
  }
  if (fc !== req.fc) return bad("MISMATCH", `answer has function code ${fc}, request had ${req.fc}`);
  switch (req.fc) {
    case 1:
    case 2: {
      const n = pdu[1];
      if (n === undefined || pdu.length !== 2 + n) return bad("MALFORMED", "byte count does not match length");
      if (n !== Math.ceil(req.quantity / 8)) return bad("MISMATCH", `asked ${req.quantity} bits, got ${n} bytes`);
      return { ok: true, value: { fc: req.fc, bits: unpackBits(pdu, req.quantity, 2) } };
    }
    case 3:
    case 4: {
      const n = pdu[1];
      if (n === undefined || pdu.length !== 2 + n) return bad("MALFORMED", "byte count does not match length");
      if (n !== req.quantity * 2) return bad("MISMATCH", `asked ${req.quantity} registers, got ${n} bytes`);
      const words: number[] = [];
      for (let i = 0; i < req.quantity; i++) words.push(u16(pdu, 2 + i * 2));
      return { ok: true, value: { fc: req.fc, words } };
    }
    case 5:
    case 6: {
      if (pdu.length !== 5) return bad("MALFORMED", "write echo must be 5 bytes");
      const address = u16(pdu, 1);
      const value = u16(pdu, 3);
      const want = req.fc === 5 ? (req.value ? 0xff00 : 0) : req.value;
      if (address !== req.address || value !== want) return bad("MISMATCH", "write echo differs from request");
      return { ok: true, value: { fc: req.fc, address, value } };
    }
    case 15:
    case 16: {
      if (pdu.length !== 5) return bad("MALFORMED", "write-multiple answer must be 5 bytes");
      const address = u16(pdu, 1);
      const quantity = u16(pdu, 3);
      if (address !== req.address || quantity !== req.values.length) return bad("MISMATCH", "write-multiple answer differs from request");
      return { ok: true, value: { fc: req.fc, address, quantity } };
    }
  }
}
