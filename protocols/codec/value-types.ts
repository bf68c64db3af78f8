// Value types a Modbus device stores in its registers or bits, and how many 16-bit words each one occupies.
// The table is data so that profiles, the codec and the documentation all read one source.

export const VALUE_TYPES = {
  bool: { words: 0, bits: 1, kind: "bit", description: "one coil or discrete input (FC 01/02)" },
  u16: { words: 1, bits: 16, kind: "unsigned", description: "unsigned 16-bit integer" },
  i16: { words: 1, bits: 16, kind: "signed", description: "two's-complement 16-bit integer" },
  u32: { words: 2, bits: 32, kind: "unsigned", description: "unsigned 32-bit integer in two registers" },
  i32: { words: 2, bits: 32, kind: "signed", description: "two's-complement 32-bit integer in two registers" },
  u64: { words: 4, bits: 64, kind: "unsigned", description: "unsigned 64-bit integer in four registers (must stay below 2^53)" },
  i64: { words: 4, bits: 64, kind: "signed", description: "two's-complement 64-bit integer in four registers (|v| < 2^53)" },
  f32: { words: 2, bits: 32, kind: "float", description: "IEEE-754 binary32 in two registers" },
  f64: { words: 4, bits: 64, kind: "float", description: "IEEE-754 binary64 in four registers" },
  bcd16: { words: 1, bits: 16, kind: "bcd", description: "four packed BCD digits (0000-9999), as in DL/T 645 style meters" },
} as const;

export type ValueType = keyof typeof VALUE_TYPES;
export const VALUE_TYPE_NAMES = Object.keys(VALUE_TYPES) as [ValueType, ...ValueType[]];

/**
 * Word order for multi-register values, named by where the bytes of a big-endian value A B C D land.
 * ABCD: high word first, high byte first (Modbus "big-endian", Eastron, CHINT).
 * CDAB: low word first, bytes big-endian inside each word ("word swap", many PLCs).
 * BADC: high word first, bytes swapped inside each word.
 * DCBA: fully little-endian.
 * For 64-bit values the same rule extends to four words (ABCD → words 0..3 high first).
 */
export const WORD_ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"] as const;
export type WordOrder = (typeof WORD_ORDERS)[number];

export function wordsFor(type: ValueType): number {
  return VALUE_TYPES[type].words;
}
