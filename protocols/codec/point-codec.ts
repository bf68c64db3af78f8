// Decode a profile point from the words (or bits) a device returned, and encode an engineering value back into
// words for the simulator. Scaling is by powers of ten and done by division where the exponent is negative, so
// 35 × 0.01 decodes to 0.35 and not 0.35000000000000003 (12345 → 123.45 either way).

import type { Point } from "../profiles/schema.js";
import { scaleExponent } from "../profiles/schema.js";
import { CODEC_ERROR_CODES, CodecError } from "./errors.js";
import { VALUE_TYPES } from "./value-types.js";
import { decodeRaw, encodeRaw, type DecodeResult } from "./word-codec.js";

export type PointReading =
  | { readonly ok: true; readonly pointId: string; readonly value: number; readonly raw: number; readonly words: readonly number[] }
  | { readonly ok: false; readonly pointId: string; readonly code: string; readonly detail: string; readonly words: readonly number[] };

export function applyScale(raw: number, scale: number): number {
  if (scale === 1) return raw;
  const k = scaleExponent(scale);
  if (k === undefined) throw new CodecError(CODEC_ERROR_CODES.OUT_OF_RANGE, `scale ${scale} is not a power of ten`);
  return k < 0 ? raw / 10 ** -k : raw * 10 ** k;
}

export function removeScale(value: number, scale: number): number {
  const k = scaleExponent(scale);
  if (k === undefined) throw new CodecError(CODEC_ERROR_CODES.OUT_OF_RANGE, `scale ${scale} is not a power of ten`);
  return k < 0 ? value * 10 ** -k : value / 10 ** k;
}

/** Number of 16-bit words (or bits, for bool points) the point occupies. */
export function pointSpan(point: Pick<Point, "type">): number {
  return Math.max(1, VALUE_TYPES[point.type].words);
}

/** Decode a register point from exactly its words. */
export function decodePointWords(point: Point, words: readonly number[]): PointReading {
  let result: DecodeResult;
  if (point.bit !== undefined) {
    const word = words[0];
    if (words.length !== 1 || word === undefined) {
      throw new CodecError(CODEC_ERROR_CODES.WRONG_WORD_COUNT, `bit point ${point.id} needs one word`);
    }
    // Same caller-mistake rule as decodeRaw: a word outside 0..65535 (-1, say) must not read as a set flag.
    if (!Number.isInteger(word) || word < 0 || word > 0xffff) {
      throw new CodecError(CODEC_ERROR_CODES.BAD_WORD, `register word ${String(word)} is not an integer in 0..65535`);
    }
    result = { ok: true, value: (word >>> point.bit) & 1 };
  } else {
    result = decodeRaw(point.type, point.wordOrder, words);
  }
  if (!result.ok) return { ok: false, pointId: point.id, code: result.code, detail: result.detail, words };
  return { ok: true, pointId: point.id, value: applyScale(result.value, point.scale), raw: result.value, words };
}

/** Decode a bit point (coil or discrete input). */
export function decodePointBit(point: Point, bit: boolean): PointReading {
  return { ok: true, pointId: point.id, value: bit ? 1 : 0, raw: bit ? 1 : 0, words: [] };
}

/**
 * Encode an engineering value into the point's words. Integer types round the unscaled value to the nearest
 * integer (the device would store no finer); NaN and infinities are only accepted by float types.
 */
export function encodePointValue(point: Point, value: number): number[] {
  if (point.type === "bool") throw new CodecError(CODEC_ERROR_CODES.WRONG_WORD_COUNT, "bool points are bits");
  if (point.bit !== undefined) throw new CodecError(CODEC_ERROR_CODES.WRONG_WORD_COUNT, "bit-field points are set with their register");
  const raw = removeScale(value, point.scale);
  const isFloat = VALUE_TYPES[point.type].kind === "float";
  return encodeRaw(point.type, point.wordOrder, isFloat ? raw : Math.round(raw));
}
