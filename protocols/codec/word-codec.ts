// Encode and decode typed values to and from 16-bit Modbus register words, for every value type and word order.
// Decoding never throws on device data: a NaN, an infinity or an integer beyond 2^53 comes back as a typed
// "not a number" result so that the caller decides (the edge turns it into a fault event, never a billing reading).

import { CODEC_ERROR_CODES, CodecError } from "./errors.js";
import { VALUE_TYPES, type ValueType, type WordOrder } from "./value-types.js";

export type DecodeResult =
  | { readonly ok: true; readonly value: number }
  | { readonly ok: false; readonly code: "NOT_A_NUMBER" | "INFINITE" | "UNSAFE_INTEGER" | "BAD_BCD"; readonly detail: string };

/**
 * Scratch space for decoding: the words are laid out in canonical big-endian order (A B C D ...) here and read
 * back with DataView. Decoding is synchronous and single-threaded, so one buffer serves every call without an
 * allocation per value (the edge decodes every register of every poll through this).
 */
const scratch = new DataView(new ArrayBuffer(8));

function toBigEndianScratch(words: ArrayLike<number>, order: WordOrder): DataView {
  const n = words.length;
  const reverseWords = order === "CDAB" || order === "DCBA";
  const swapBytes = order === "BADC" || order === "DCBA";
  for (let i = 0; i < n; i++) {
    const word = words[reverseWords ? n - 1 - i : i] as number;
    if (!Number.isInteger(word) || word < 0 || word > 0xffff) {
      throw new CodecError(CODEC_ERROR_CODES.BAD_WORD, `register word ${String(word)} is not an integer in 0..65535`);
    }
    scratch.setUint16(i * 2, swapBytes ? ((word & 0xff) << 8) | (word >>> 8) : word);
  }
  return scratch;
}

/** Inverse of toBigEndianBytes: canonical bytes → words in the device's order. */
function fromBigEndianBytes(bytes: Uint8Array, order: WordOrder): number[] {
  const n = bytes.length / 2;
  const reverseWords = order === "CDAB" || order === "DCBA";
  const swapBytes = order === "BADC" || order === "DCBA";
  const words = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const hi = bytes[i * 2] as number;
    const lo = bytes[i * 2 + 1] as number;
    words[reverseWords ? n - 1 - i : i] = swapBytes ? (lo << 8) | hi : (hi << 8) | lo;
  }
  return words;
}

function checkCount(type: ValueType, words: ArrayLike<number>): void {
  const want = VALUE_TYPES[type].words;
  if (want === 0) {
    throw new CodecError(CODEC_ERROR_CODES.WRONG_WORD_COUNT, `type ${type} lives in bits, not register words`);
  }
  if (words.length !== want) {
    throw new CodecError(CODEC_ERROR_CODES.WRONG_WORD_COUNT, `type ${type} needs ${want} words, got ${words.length}`);
  }
}

/**
 * Decode the raw number stored in `words` (no scaling). Throws CodecError only for caller mistakes
 * (wrong word count, words outside 0..65535); bad device data is a DecodeResult with ok=false.
 */
export function decodeRaw(type: ValueType, order: WordOrder, words: ArrayLike<number>): DecodeResult {
  checkCount(type, words);
  const view = toBigEndianScratch(words, order);
  switch (type) {
    case "u16":
      return { ok: true, value: view.getUint16(0) };
    case "i16":
      return { ok: true, value: view.getInt16(0) };
    case "u32":
      return { ok: true, value: view.getUint32(0) };
    case "i32":
      return { ok: true, value: view.getInt32(0) };
    case "u64":
    case "i64": {
      const big = type === "u64" ? view.getBigUint64(0) : view.getBigInt64(0);
      if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER)) {
        return { ok: false, code: "UNSAFE_INTEGER", detail: `${type} value ${big} is beyond 2^53` };
      }
      return { ok: true, value: Number(big) };
    }
    case "f32":
    case "f64": {
      const value = type === "f32" ? view.getFloat32(0) : view.getFloat64(0);
      if (Number.isNaN(value)) return { ok: false, code: "NOT_A_NUMBER", detail: `${type} register holds NaN` };
      if (!Number.isFinite(value)) return { ok: false, code: "INFINITE", detail: `${type} register holds ${value}` };
      return { ok: true, value };
    }
    case "bcd16": {
      const word = view.getUint16(0);
      let value = 0;
      for (let shift = 12; shift >= 0; shift -= 4) {
        const digit = (word >>> shift) & 0xf;
        if (digit > 9) return { ok: false, code: "BAD_BCD", detail: `0x${word.toString(16)} is not packed BCD` };
        value = value * 10 + digit;
      }
      return { ok: true, value };
    }
    case "bool":
      throw new CodecError(CODEC_ERROR_CODES.WRONG_WORD_COUNT, "bool lives in bits, not register words");
  }
}

const INTEGER_RANGES: Partial<Record<ValueType, readonly [number, number]>> = {
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
  u64: [0, Number.MAX_SAFE_INTEGER],
  i64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  bcd16: [0, 9999],
};

/**
 * Encode a raw number (already unscaled) into register words in the device's order.
 * Integers must be integral and in range; floats may be NaN or ±Infinity on purpose (the simulator
 * uses that to play a broken meter), but never silently: the caller passes them explicitly.
 */
export function encodeRaw(type: ValueType, order: WordOrder, value: number): number[] {
  const words = VALUE_TYPES[type].words;
  if (words === 0) throw new CodecError(CODEC_ERROR_CODES.WRONG_WORD_COUNT, "bool lives in bits, not register words");
  const bytes = new Uint8Array(words * 2);
  const view = new DataView(bytes.buffer);
  const range = INTEGER_RANGES[type];
  if (range) {
    if (!Number.isFinite(value)) throw new CodecError(CODEC_ERROR_CODES.NOT_FINITE, `${type} cannot hold ${value}`);
    if (!Number.isInteger(value)) throw new CodecError(CODEC_ERROR_CODES.NOT_AN_INTEGER, `${type} cannot hold ${value}`);
    if (value < range[0] || value > range[1]) {
      throw new CodecError(CODEC_ERROR_CODES.OUT_OF_RANGE, `${value} is outside ${type} range ${range[0]}..${range[1]}`);
    }
  }
  switch (type) {
    case "u16":
      view.setUint16(0, value);
      break;
    case "i16":
      view.setInt16(0, value);
      break;
    case "u32":
      view.setUint32(0, value);
      break;
    case "i32":
      view.setInt32(0, value);
      break;
    case "u64":
      view.setBigUint64(0, BigInt(value));
      break;
    case "i64":
      view.setBigInt64(0, BigInt(value));
      break;
    case "f32":
      view.setFloat32(0, value);
      break;
    case "f64":
      view.setFloat64(0, value);
      break;
    case "bcd16": {
      const digits = value.toString().padStart(4, "0");
      let word = 0;
      for (const ch of digits) word = (word << 4) | Number(ch);
      view.setUint16(0, word);
      break;
    }
  }
  return fromBigEndianBytes(bytes, order);
}
