// The register codec, byte by byte: hand-written word fixtures for every value type in every word order, round-trip
// properties, device data that must come back as typed "not a number" results, and caller mistakes that must throw
// a CodecError with a stable code. Then the point codec on top: scaling, bit fields and every built-in profile point.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BUILT_IN_PROFILES } from "../profiles/index.js";
import { pointSchema, type Point, type PointInput } from "../profiles/schema.js";
import type { Role } from "../profiles/roles.js";
import { CODEC_ERROR_CODES, CodecError } from "./errors.js";
import { applyScale, decodePointBit, decodePointWords, encodePointValue, pointSpan, removeScale } from "./point-codec.js";
import { VALUE_TYPE_NAMES, VALUE_TYPES, WORD_ORDERS, type ValueType, type WordOrder } from "./value-types.js";
import { decodeRaw, encodeRaw } from "./word-codec.js";

function codecErrorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof CodecError ? error.code : `not a CodecError: ${String(error)}`;
  }
  return undefined;
}

const REGISTER_TYPES = VALUE_TYPE_NAMES.filter((t) => VALUE_TYPES[t].words > 0);
const INTEGER_TYPES = ["u16", "i16", "u32", "i32", "u64", "i64", "bcd16"] as const satisfies readonly ValueType[];

/** A fixture: the value, and the words a device in each order keeps it in — written out by hand. */
interface Fixture {
  readonly type: ValueType;
  readonly value: number;
  readonly what: string;
  readonly words: Readonly<Record<WordOrder, readonly number[]>>;
}

const FIXTURES: readonly Fixture[] = [
  {
    type: "u16",
    value: 0x1234, // 4660
    what: "u16 4660 = bytes 12 34",
    words: {
      ABCD: [0x1234], // A=12 B=34: high byte first
      CDAB: [0x1234], // one word: nothing to swap
      BADC: [0x3412], // bytes swapped inside the word
      DCBA: [0x3412], // fully little-endian
    },
  },
  {
    type: "u16",
    value: 5001,
    what: "u16 5001 = 0x1389, DDS238 frequency register (×0.01 Hz → 50.01 Hz)",
    words: { ABCD: [0x1389], CDAB: [0x1389], BADC: [0x8913], DCBA: [0x8913] },
  },
  {
    type: "i16",
    value: -123,
    what: "i16 -123 = 0xFF85, agri-fire-node temperature (×0.1 °C → -12.3 °C)",
    words: { ABCD: [0xff85], CDAB: [0xff85], BADC: [0x85ff], DCBA: [0x85ff] },
  },
  {
    type: "i16",
    value: -12345,
    what: "i16 -12345 = 0xCFC7",
    words: { ABCD: [0xcfc7], CDAB: [0xcfc7], BADC: [0xc7cf], DCBA: [0xc7cf] },
  },
  {
    type: "u32",
    value: 0x12345678, // 305419896
    what: "u32 305419896 = bytes 12 34 56 78",
    words: {
      ABCD: [0x1234, 0x5678], // high word first
      CDAB: [0x5678, 0x1234], // low word first ("word swap")
      BADC: [0x3412, 0x7856], // high word first, bytes swapped
      DCBA: [0x7856, 0x3412], // fully little-endian
    },
  },
  {
    type: "u32",
    value: 123456,
    what: "u32 123456 = 0x0001E240, DDS238 import energy ×0.01 kWh → 1234.56 kWh",
    words: { ABCD: [0x0001, 0xe240], CDAB: [0xe240, 0x0001], BADC: [0x0100, 0x40e2], DCBA: [0x40e2, 0x0100] },
  },
  {
    type: "i32",
    value: -123456789,
    what: "i32 -123456789 = 0xF8A432EB (two's complement of 0x075BCD15)",
    words: { ABCD: [0xf8a4, 0x32eb], CDAB: [0x32eb, 0xf8a4], BADC: [0xa4f8, 0xeb32], DCBA: [0xeb32, 0xa4f8] },
  },
  {
    type: "u64",
    value: 0x0012_3456_789a_bcde, // 5124095576030430, below 2^53
    what: "u64 5124095576030430 = bytes 00 12 34 56 78 9A BC DE",
    words: {
      ABCD: [0x0012, 0x3456, 0x789a, 0xbcde], // words 0..3 high first
      CDAB: [0xbcde, 0x789a, 0x3456, 0x0012], // words reversed
      BADC: [0x1200, 0x5634, 0x9a78, 0xdebc], // bytes swapped in each word
      DCBA: [0xdebc, 0x9a78, 0x5634, 0x1200], // fully little-endian
    },
  },
  {
    type: "i64",
    value: -0x0012_3456_789a_bcde,
    what: "i64 -5124095576030430 = 0xFFEDCBA987654322",
    words: {
      ABCD: [0xffed, 0xcba9, 0x8765, 0x4322],
      CDAB: [0x4322, 0x8765, 0xcba9, 0xffed],
      BADC: [0xedff, 0xa9cb, 0x6587, 0x2243],
      DCBA: [0x2243, 0x6587, 0xa9cb, 0xedff],
    },
  },
  {
    type: "f32",
    value: 1.5,
    what: "f32 1.5 = 0x3FC00000 (sign 0, exponent 127, fraction .1b)",
    words: { ABCD: [0x3fc0, 0x0000], CDAB: [0x0000, 0x3fc0], BADC: [0xc03f, 0x0000], DCBA: [0x0000, 0xc03f] },
  },
  {
    type: "f32",
    value: -2.5,
    what: "f32 -2.5 = 0xC0200000",
    words: { ABCD: [0xc020, 0x0000], CDAB: [0x0000, 0xc020], BADC: [0x20c0, 0x0000], DCBA: [0x0000, 0x20c0] },
  },
  {
    type: "f64",
    value: 230.2,
    what: "f64 230.2 = 0x406CC66666666666",
    words: {
      ABCD: [0x406c, 0xc666, 0x6666, 0x6666],
      CDAB: [0x6666, 0x6666, 0xc666, 0x406c],
      BADC: [0x6c40, 0x66c6, 0x6666, 0x6666],
      DCBA: [0x6666, 0x6666, 0x66c6, 0x6c40],
    },
  },
  {
    type: "f64",
    value: -1234.5678,
    what: "f64 -1234.5678 = 0xC0934A456D5CFAAD",
    words: {
      ABCD: [0xc093, 0x4a45, 0x6d5c, 0xfaad],
      CDAB: [0xfaad, 0x6d5c, 0x4a45, 0xc093],
      BADC: [0x93c0, 0x454a, 0x5c6d, 0xadfa],
      DCBA: [0xadfa, 0x5c6d, 0x454a, 0x93c0],
    },
  },
  {
    type: "bcd16",
    value: 1234,
    what: "bcd16 1234 = nibbles 1 2 3 4",
    words: { ABCD: [0x1234], CDAB: [0x1234], BADC: [0x3412], DCBA: [0x3412] },
  },
  {
    type: "bcd16",
    value: 907,
    what: "bcd16 0907 = nibbles 0 9 0 7",
    words: { ABCD: [0x0907], CDAB: [0x0907], BADC: [0x0709], DCBA: [0x0709] },
  },
];

describe("word fixtures, every type × every word order", () => {
  it("has at least one hand-written fixture for every register type", () => {
    expect(new Set(FIXTURES.map((f) => f.type))).toEqual(new Set(REGISTER_TYPES));
  });

  for (const f of FIXTURES) {
    for (const order of WORD_ORDERS) {
      const words = f.words[order];
      it(`decodes ${f.what} from ${order} words [${words.map((w) => `0x${w.toString(16).padStart(4, "0")}`).join(", ")}]`, () => {
        expect(decodeRaw(f.type, order, words)).toEqual({ ok: true, value: f.value });
      });
      it(`encodes ${f.what} into the same ${order} words`, () => {
        expect(encodeRaw(f.type, order, f.value)).toEqual(words);
      });
    }
  }

  // Eastron SDM120M Modbus Protocol V2.5 §1 example: the voltage registers read bytes 43 66 33 34, i.e. 230.2 V.
  const sdm120Voltage = {
    ABCD: [0x4366, 0x3334], // f32 ABCD 230.2 V, as the SDM120 sends it (high register first)
    CDAB: [0x3334, 0x4366], // the same value from a word-swapped device
    BADC: [0x6643, 0x3433], // byte-swapped inside each register
    DCBA: [0x3433, 0x6643], // fully little-endian
  } as const satisfies Record<WordOrder, readonly number[]>;
  for (const order of WORD_ORDERS) {
    it(`decodes the Eastron SDM120 V2.5 §1 example 43 66 33 34 in ${order} as 230.2 V within f32 precision`, () => {
      const r = decodeRaw("f32", order, sdm120Voltage[order]);
      expect(r.ok).toBe(true);
      if (r.ok) {
        expect(r.value).toBeCloseTo(230.2, 4);
        expect(r.value).toBe(230.20001220703125); // exactly what 0x43663334 is; f32 cannot hold 230.2
      }
    });
  }

  it("stores 230.2 in an f32 as Math.fround(230.2) = 0x43663333 (the device rounded up by one ulp)", () => {
    expect(encodeRaw("f32", "ABCD", 230.2)).toEqual([0x4366, 0x3333]);
    expect(decodeRaw("f32", "ABCD", [0x4366, 0x3333])).toEqual({ ok: true, value: Math.fround(230.2) });
  });

  it("decodes f32 and f64 negative zero with its sign", () => {
    const f32 = decodeRaw("f32", "ABCD", [0x8000, 0x0000]); // sign bit only
    const f64 = decodeRaw("f64", "DCBA", [0x0000, 0x0000, 0x0000, 0x0080]); // 80 00 .. 00 fully little-endian
    expect(f32.ok && Object.is(f32.value, -0)).toBe(true);
    expect(f64.ok && Object.is(f64.value, -0)).toBe(true);
    expect(encodeRaw("f32", "ABCD", -0)).toEqual([0x8000, 0x0000]);
  });

  it("decodes subnormals: the smallest f32 (2^-149) and the smallest f64 (2^-1074)", () => {
    expect(decodeRaw("f32", "ABCD", [0x0000, 0x0001])).toEqual({ ok: true, value: 2 ** -149 });
    expect(decodeRaw("f32", "CDAB", [0x0001, 0x0000])).toEqual({ ok: true, value: 2 ** -149 });
    expect(decodeRaw("f64", "ABCD", [0x0000, 0x0000, 0x0000, 0x0001])).toEqual({ ok: true, value: Number.MIN_VALUE });
    expect(decodeRaw("f64", "BADC", [0x0000, 0x0000, 0x0000, 0x0100])).toEqual({ ok: true, value: Number.MIN_VALUE });
  });

  it("decodes the integer extremes of each type", () => {
    expect(decodeRaw("u16", "ABCD", [0xffff])).toEqual({ ok: true, value: 65535 });
    expect(decodeRaw("i16", "ABCD", [0x8000])).toEqual({ ok: true, value: -32768 });
    expect(decodeRaw("i16", "ABCD", [0xffff])).toEqual({ ok: true, value: -1 });
    expect(decodeRaw("u32", "ABCD", [0xffff, 0xffff])).toEqual({ ok: true, value: 4294967295 });
    expect(decodeRaw("i32", "CDAB", [0x0000, 0x8000])).toEqual({ ok: true, value: -2147483648 });
    expect(decodeRaw("u64", "ABCD", [0x001f, 0xffff, 0xffff, 0xffff])).toEqual({ ok: true, value: Number.MAX_SAFE_INTEGER });
    expect(decodeRaw("i64", "ABCD", [0xffe0, 0x0000, 0x0000, 0x0001])).toEqual({ ok: true, value: Number.MIN_SAFE_INTEGER });
    expect(decodeRaw("bcd16", "ABCD", [0x9999])).toEqual({ ok: true, value: 9999 });
  });
});

// ─── round trips ──────────────────────────────────────────────────────────────────────────────────────────────────

const u32Values = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff })).map(([hi, lo]) => hi * 0x10000 + lo);
/** Finite f32 values, including -0 and subnormals (fast-check's fc.float yields only f32-representable numbers). */
const f32Values = fc.float({ noNaN: true, noDefaultInfinity: true });
const f64Values = fc.double({ noNaN: true, noDefaultInfinity: true });

const VALUES: Record<Exclude<ValueType, "bool">, fc.Arbitrary<number>> = {
  u16: fc.integer({ min: 0, max: 0xffff }),
  i16: fc.integer({ min: -0x8000, max: 0x7fff }),
  u32: u32Values,
  i32: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  u64: fc.maxSafeNat(),
  i64: fc.maxSafeInteger(),
  f32: fc.oneof(f32Values, fc.constantFrom(-0, 2 ** -149, 2 ** -126 - 2 ** -149, 3.4028234663852886e38)),
  f64: fc.oneof(f64Values, fc.constantFrom(-0, Number.MIN_VALUE, 2 ** -1022 - Number.MIN_VALUE, Number.MAX_VALUE)),
  bcd16: fc.integer({ min: 0, max: 9999 }),
};

describe("round trips, every type × every word order", () => {
  for (const type of REGISTER_TYPES) {
    if (type === "bool") continue;
    for (const order of WORD_ORDERS) {
      it(`decode(encode(v)) is v for ${type} ${order}, bit for bit (Object.is)`, () => {
        fc.assert(
          fc.property(VALUES[type], (value) => {
            const words = encodeRaw(type, order, value);
            expect(words).toHaveLength(VALUE_TYPES[type].words);
            for (const w of words) expect(Number.isInteger(w) && w >= 0 && w <= 0xffff).toBe(true);
            const back = decodeRaw(type, order, words);
            expect(back.ok).toBe(true);
            if (back.ok) expect(Object.is(back.value, value)).toBe(true);
          }),
        );
      });
    }
  }

  for (const order of WORD_ORDERS) {
    it(`stores Math.fround of any finite double in an f32 (${order}), or reports INFINITE when it overflows`, () => {
      fc.assert(
        fc.property(f64Values, (value) => {
          const back = decodeRaw("f32", order, encodeRaw("f32", order, value));
          const rounded = Math.fround(value);
          if (Number.isFinite(rounded)) expect(back).toEqual({ ok: true, value: rounded });
          else expect(back).toMatchObject({ ok: false, code: "INFINITE" });
        }),
      );
    });
  }

  it("is a different word layout for every order of a multi-word value with distinct bytes", () => {
    for (const type of ["u32", "u64", "f64"] as const) {
      const layouts = WORD_ORDERS.map((o) => JSON.stringify(encodeRaw(type, o, type === "f64" ? -1234.5678 : 0x0012_3456_789a_bcde % 2 ** VALUE_TYPES[type].bits)));
      expect(new Set(layouts).size).toBe(4);
    }
  });
});

// ─── device data that is not a number ─────────────────────────────────────────────────────────────────────────────

describe("bad device data decodes to a typed ok:false result, never a throw", () => {
  const notANumber: readonly [ValueType, WordOrder, readonly number[], string, string][] = [
    ["f32", "ABCD", [0x7fc0, 0x0000], "NOT_A_NUMBER", "quiet NaN 7FC00000"],
    ["f32", "ABCD", [0x7f80, 0x0001], "NOT_A_NUMBER", "signalling NaN 7F800001"],
    ["f32", "ABCD", [0xffff, 0xffff], "NOT_A_NUMBER", "all ones, as an unwired meter answers"],
    ["f32", "CDAB", [0x0000, 0x7fc0], "NOT_A_NUMBER", "quiet NaN, word-swapped"],
    ["f32", "ABCD", [0x7f80, 0x0000], "INFINITE", "+Infinity 7F800000"],
    ["f32", "DCBA", [0x0000, 0x80ff], "INFINITE", "-Infinity FF800000, little-endian"],
    ["f64", "ABCD", [0x7ff8, 0x0000, 0x0000, 0x0000], "NOT_A_NUMBER", "quiet NaN 7FF8…"],
    ["f64", "ABCD", [0x7ff0, 0x0000, 0x0000, 0x0000], "INFINITE", "+Infinity 7FF0…"],
    ["f64", "CDAB", [0x0000, 0x0000, 0x0000, 0xfff0], "INFINITE", "-Infinity FFF0…, words reversed"],
    ["u64", "ABCD", [0x0020, 0x0000, 0x0000, 0x0000], "UNSAFE_INTEGER", "2^53, one past MAX_SAFE_INTEGER"],
    ["u64", "ABCD", [0xffff, 0xffff, 0xffff, 0xffff], "UNSAFE_INTEGER", "2^64 - 1"],
    ["u64", "CDAB", [0x0000, 0x0000, 0x0000, 0x8000], "UNSAFE_INTEGER", "2^63, word-swapped"],
    ["i64", "ABCD", [0x0020, 0x0000, 0x0000, 0x0000], "UNSAFE_INTEGER", "+2^53"],
    ["i64", "ABCD", [0xffe0, 0x0000, 0x0000, 0x0000], "UNSAFE_INTEGER", "-2^53"],
    ["i64", "ABCD", [0x8000, 0x0000, 0x0000, 0x0000], "UNSAFE_INTEGER", "-2^63"],
    ["bcd16", "ABCD", [0x12a4], "BAD_BCD", "nibble A in 12A4"],
    ["bcd16", "ABCD", [0xf000], "BAD_BCD", "nibble F in F000"],
    ["bcd16", "BADC", [0x3f12], "BAD_BCD", "12 3F byte-swapped: nibble F"],
  ];
  for (const [type, order, words, code, what] of notANumber) {
    it(`${type} ${order} ${what} → ${code}`, () => {
      const r = decodeRaw(type, order, words);
      expect(r).toMatchObject({ ok: false, code });
      if (!r.ok) expect(r.detail.length).toBeGreaterThan(0);
    });
  }

  it("round-trips NaN and ±Infinity through encodeRaw for float types (the simulator plays a broken meter)", () => {
    for (const type of ["f32", "f64"] as const) {
      for (const order of WORD_ORDERS) {
        expect(decodeRaw(type, order, encodeRaw(type, order, Number.NaN))).toMatchObject({ ok: false, code: "NOT_A_NUMBER" });
        expect(decodeRaw(type, order, encodeRaw(type, order, Infinity))).toMatchObject({ ok: false, code: "INFINITE" });
        expect(decodeRaw(type, order, encodeRaw(type, order, -Infinity))).toMatchObject({ ok: false, code: "INFINITE" });
      }
    }
  });

  for (const type of REGISTER_TYPES) {
    if (type === "bool") continue;
    const n = VALUE_TYPES[type].words;
    it(`never throws on random ${n}-word arrays for ${type}, and re-encodes every value it accepts to the same words`, () => {
      fc.assert(
        fc.property(fc.constantFrom(...WORD_ORDERS), fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: n, maxLength: n }), (order, words) => {
          const r = decodeRaw(type, order, words);
          if (r.ok) {
            expect(Number.isFinite(r.value)).toBe(true);
            expect(encodeRaw(type, order, r.value)).toEqual(words);
          } else {
            expect(["NOT_A_NUMBER", "INFINITE", "UNSAFE_INTEGER", "BAD_BCD"]).toContain(r.code);
          }
        }),
      );
    });
  }
});

// ─── caller mistakes ──────────────────────────────────────────────────────────────────────────────────────────────

describe("caller mistakes throw a CodecError with a stable code", () => {
  it("refuses non-integers for every integer type (NOT_AN_INTEGER)", () => {
    for (const type of INTEGER_TYPES) {
      expect(codecErrorCode(() => encodeRaw(type, "ABCD", 1.5))).toBe(CODEC_ERROR_CODES.NOT_AN_INTEGER);
    }
    fc.assert(
      fc.property(fc.constantFrom(...INTEGER_TYPES), fc.double({ noNaN: true, noDefaultInfinity: true }).filter((v) => !Number.isInteger(v)), (type, value) => {
        expect(codecErrorCode(() => encodeRaw(type, "CDAB", value))).toBe(CODEC_ERROR_CODES.NOT_AN_INTEGER);
      }),
    );
  });

  it("refuses non-finite values for every integer type (NOT_FINITE)", () => {
    for (const type of INTEGER_TYPES) {
      for (const v of [Number.NaN, Infinity, -Infinity]) expect(codecErrorCode(() => encodeRaw(type, "ABCD", v))).toBe(CODEC_ERROR_CODES.NOT_FINITE);
    }
  });

  const outOfRange: readonly [ValueType, number][] = [
    ["u16", -1],
    ["u16", 65536],
    ["i16", -32769],
    ["i16", 32768],
    ["u32", -1],
    ["u32", 2 ** 32],
    ["i32", -(2 ** 31) - 1],
    ["i32", 2 ** 31],
    ["u64", -1],
    ["u64", 2 ** 53],
    ["i64", -(2 ** 53)],
    ["i64", 2 ** 53],
    ["bcd16", -1],
    ["bcd16", 10000],
  ];
  for (const [type, value] of outOfRange) {
    it(`refuses ${value} for ${type} (OUT_OF_RANGE)`, () => {
      expect(codecErrorCode(() => encodeRaw(type, "ABCD", value))).toBe(CODEC_ERROR_CODES.OUT_OF_RANGE);
    });
  }

  it("refuses to encode or decode bool as register words (WRONG_WORD_COUNT)", () => {
    expect(codecErrorCode(() => encodeRaw("bool", "ABCD", 1))).toBe(CODEC_ERROR_CODES.WRONG_WORD_COUNT);
    expect(codecErrorCode(() => decodeRaw("bool", "ABCD", [1]))).toBe(CODEC_ERROR_CODES.WRONG_WORD_COUNT);
    expect(codecErrorCode(() => decodeRaw("bool", "ABCD", []))).toBe(CODEC_ERROR_CODES.WRONG_WORD_COUNT);
  });

  it("refuses a word count that does not match the type (WRONG_WORD_COUNT)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...REGISTER_TYPES),
        fc.constantFrom(...WORD_ORDERS),
        fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 9 }),
        (type, order, words) => {
          fc.pre(words.length !== VALUE_TYPES[type].words);
          expect(codecErrorCode(() => decodeRaw(type, order, words))).toBe(CODEC_ERROR_CODES.WRONG_WORD_COUNT);
        },
      ),
    );
  });

  const badWords: readonly (readonly number[])[] = [[-1], [65536], [1.5], [Number.NaN], [Infinity]];
  for (const bad of badWords) {
    it(`refuses the word ${String(bad[0])} in every order (BAD_WORD)`, () => {
      for (const order of WORD_ORDERS) {
        expect(codecErrorCode(() => decodeRaw("u16", order, bad))).toBe(CODEC_ERROR_CODES.BAD_WORD);
        expect(codecErrorCode(() => decodeRaw("f32", order, [0x4366, ...bad]))).toBe(CODEC_ERROR_CODES.BAD_WORD);
      }
    });
  }

  it("refuses any word outside 0..65535 anywhere in the array (BAD_WORD)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...WORD_ORDERS),
        fc.integer({ min: 0, max: 3 }),
        fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 0x10000 }), fc.double({ min: 0, max: 0xffff }).filter((v) => !Number.isInteger(v))),
        (order, at, bad) => {
          const words = [0x0012, 0x3456, 0x789a, 0xbcde];
          words[at] = bad;
          expect(codecErrorCode(() => decodeRaw("u64", order, words))).toBe(CODEC_ERROR_CODES.BAD_WORD);
        },
      ),
    );
  });
});

// ─── point codec ──────────────────────────────────────────────────────────────────────────────────────────────────

function point(input: Omit<PointInput, "description"> & { description?: string }): Point {
  return pointSchema.parse({ description: "test point", ...input });
}

describe("point codec: scaling", () => {
  it("scales 12345 × 0.01 to exactly 123.45 (division, not multiplication by 0.01)", () => {
    expect(applyScale(12345, 0.01)).toBe(123.45);
  });

  it("scales 35 × 0.01 to 0.35, where multiplying would give 0.35000000000000003", () => {
    expect(35 * 0.01).not.toBe(0.35); // why the codec divides by 10^k instead of multiplying by the scale
    expect(applyScale(35, 0.01)).toBe(0.35);
  });

  it("scales any integer by 10^-k to the double nearest the decimal number (raw / 10^k is correctly rounded)", () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), fc.integer({ min: 1, max: 6 }), (raw, k) => {
        expect(applyScale(raw, 10 ** -k)).toBe(Number(`${raw}e-${k}`));
      }),
    );
  });

  it("scales up by multiplication and leaves scale 1 alone", () => {
    expect(applyScale(123, 1)).toBe(123);
    expect(applyScale(123, 1000)).toBe(123000);
    expect(removeScale(123.45, 0.01)).toBeCloseTo(12345, 9);
    expect(removeScale(123000, 1000)).toBe(123);
  });

  it("refuses a scale that is not a power of ten (OUT_OF_RANGE)", () => {
    expect(codecErrorCode(() => applyScale(1, 0.3))).toBe(CODEC_ERROR_CODES.OUT_OF_RANGE);
    expect(codecErrorCode(() => removeScale(1, 0.3))).toBe(CODEC_ERROR_CODES.OUT_OF_RANGE);
  });

  it("decodes the DDS238 import register 00 01 E2 40 (u32 ×0.01 kWh) to 1234.56 kWh, keeping raw and words", () => {
    const p = point({ id: "importEnergy", role: "import_energy", fc: 3, type: "u32", address: 0x000a, scale: 0.01, unit: "kWh" });
    expect(decodePointWords(p, [0x0001, 0xe240])).toEqual({ ok: true, pointId: "importEnergy", value: 1234.56, raw: 123456, words: [0x0001, 0xe240] });
  });

  it("passes a NaN register through as ok:false with the point id and the words, for the edge to report", () => {
    const p = point({ id: "importEnergy", role: "import_energy", fc: 4, type: "f32", address: 0x0048, unit: "kWh" });
    expect(decodePointWords(p, [0x7fc0, 0x0000])).toMatchObject({ ok: false, pointId: "importEnergy", code: "NOT_A_NUMBER", words: [0x7fc0, 0x0000] });
  });
});

describe("point codec: bit-field points", () => {
  const flag = (bit: number): Point => point({ id: `flag${bit}`, role: "fault", channel: String(bit), fc: 3, type: "u16", address: 0x0010, bit, unit: "1" });

  it("reads bit 3 of 0x0008 as 1 and of 0xFFF7 as 0 (bit 0 = least significant)", () => {
    expect(decodePointWords(flag(3), [0x0008])).toMatchObject({ ok: true, value: 1, raw: 1 });
    expect(decodePointWords(flag(3), [0xfff7])).toMatchObject({ ok: true, value: 0, raw: 0 });
  });

  it("reads bit 15 of 0x8000 as 1 and bit 0 of 0x8000 as 0", () => {
    expect(decodePointWords(flag(15), [0x8000])).toMatchObject({ ok: true, value: 1 });
    expect(decodePointWords(flag(0), [0x8000])).toMatchObject({ ok: true, value: 0 });
  });

  it("agrees with (word >> bit) & 1 for every word and bit", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 15 }), (word, bit) => {
        expect(decodePointWords(flag(bit), [word])).toMatchObject({ ok: true, value: (word >> bit) & 1 });
      }),
    );
  });

  it("refuses anything but exactly one word (WRONG_WORD_COUNT) and a word outside 0..65535 (BAD_WORD)", () => {
    expect(codecErrorCode(() => decodePointWords(flag(1), []))).toBe(CODEC_ERROR_CODES.WRONG_WORD_COUNT);
    expect(codecErrorCode(() => decodePointWords(flag(1), [1, 2]))).toBe(CODEC_ERROR_CODES.WRONG_WORD_COUNT);
    expect(codecErrorCode(() => decodePointWords(flag(1), [-1]))).toBe(CODEC_ERROR_CODES.BAD_WORD);
    expect(codecErrorCode(() => decodePointWords(flag(1), [0x10002]))).toBe(CODEC_ERROR_CODES.BAD_WORD);
  });

  it("refuses to encode a bit-field point on its own (its register holds other flags)", () => {
    expect(codecErrorCode(() => encodePointValue(flag(2), 1))).toBe(CODEC_ERROR_CODES.WRONG_WORD_COUNT);
  });

  it("decodes coil and discrete-input points from their bit, and refuses to encode them as words", () => {
    const coil = point({ id: "relay1", role: "relay_state", fc: 1, type: "bool", address: 0, unit: "1" });
    expect(decodePointBit(coil, true)).toEqual({ ok: true, pointId: "relay1", value: 1, raw: 1, words: [] });
    expect(decodePointBit(coil, false)).toMatchObject({ value: 0 });
    expect(codecErrorCode(() => encodePointValue(coil, 1))).toBe(CODEC_ERROR_CODES.WRONG_WORD_COUNT);
  });
});

/** A value a real device of this kind could report, at a resolution every built-in profile can store. */
const REALISTIC: Partial<Record<Role, Partial<Record<string, number>>>> = {
  voltage: { V: 230.2 },
  current: { A: 12.34 },
  active_power: { W: 2840, kW: 2.84 },
  reactive_power: { var: 321, kvar: 0.321 },
  apparent_power: { VA: 2950 },
  power_factor: { "1": 0.95 },
  frequency: { Hz: 50.01 },
  import_energy: { kWh: 1234.56 },
  export_energy: { kWh: 12.34 },
  total_energy: { kWh: 1246.9 },
  relay_state: { "1": 1 },
  smoke_density: { "dB/m": 0.05 },
  alarm_threshold: { "dB/m": 0.05 },
  temperature: { "°C": -12.3 },
  humidity: { "%RH": 65.4 },
  battery: { mV: 3712 },
  fault: { "1": 2 },
  uptime: { s: 86_400 * 30 + 17 },
  ct_ratio: { "1": 40 },
};

function realisticValue(p: Point): number {
  const v = REALISTIC[p.role]?.[p.unit];
  if (v === undefined) throw new Error(`no realistic value for ${p.role} in ${p.unit}: add one to REALISTIC`);
  return v;
}

describe("point codec: every point of every built-in profile", () => {
  for (const profile of BUILT_IN_PROFILES) {
    for (const p of profile.points) {
      if (p.type === "bool") {
        it(`${profile.id}.${p.id} (${p.type} FC ${p.fc}) decodes both bit states`, () => {
          expect(decodePointBit(p, true)).toMatchObject({ ok: true, pointId: p.id, value: 1 });
          expect(decodePointBit(p, false)).toMatchObject({ ok: true, pointId: p.id, value: 0 });
        });
        continue;
      }
      it(`${profile.id}.${p.id} (${p.type} ${p.wordOrder} ×${p.scale} ${p.unit}) round-trips a realistic value`, () => {
        const value = realisticValue(p);
        const words = encodePointValue(p, value);
        expect(words).toHaveLength(pointSpan(p));
        const back = decodePointWords(p, words);
        expect(back.ok).toBe(true);
        if (!back.ok) return;
        if (VALUE_TYPES[p.type].kind === "float") expect(Math.abs(back.value - value)).toBeLessThanOrEqual(Math.abs(value) * 2 ** -23);
        else expect(back.value).toBe(value); // integer registers at the point's own resolution: exact
      });
    }
  }
});
