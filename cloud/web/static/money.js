// Money in the console: the API speaks integer fen, and the page shows ¥ with two decimals. Formatting is done on
// the digits of the integer (never fen / 100 in floating point), so ¥0.29 + ¥0.01 shows ¥0.30 and a sum of a
// season's charges shows exactly what the ledger holds. Parsing an officer's typed amount goes the same way back.
// Pure: no DOM, no fetch; the vitest suite imports this file as it is served.

const YUAN_INPUT = /^\s*(\d{1,9})(?:[.．](\d{0,2}))?\s*$/;

/**
 * Digits grouped by thousands: "1234567" → "1,234,567".
 * @param {string} digits
 */
function groupThousands(digits) {
  let out = "";
  for (let i = 0; i < digits.length; i++) {
    if (i > 0 && (digits.length - i) % 3 === 0) out += ",";
    out += digits[i];
  }
  return out;
}

/**
 * "¥1,234.05" for 123405 fen; "-¥0.30" for -30. Throws on anything that is not a safe integer: a float reaching the
 * money display is a bug upstream and must not be rounded into something plausible.
 * @param {number} fen
 * @returns {string}
 */
export function formatFen(fen) {
  if (!Number.isSafeInteger(fen)) throw new TypeError(`formatFen needs an integer number of fen, got ${String(fen)}`);
  const negative = fen < 0;
  const digits = String(negative ? -fen : fen).padStart(3, "0");
  const yuan = digits.slice(0, -2);
  const cents = digits.slice(-2);
  return `${negative ? "-" : ""}¥${groupThousands(yuan)}.${cents}`;
}

/**
 * A signed amount for a statement line: "+¥50.00" for a credit, "-¥1.23" for a debit.
 * @param {number} fen
 */
export function formatSignedFen(fen) {
  return fen > 0 ? `+${formatFen(fen)}` : formatFen(fen);
}

/**
 * An officer's typed yuan amount ("50", "50.5", "50.05"; a Chinese IME's full-width point "．" too) as integer
 * fen, or undefined when it is not a plain amount with at most two decimals.
 * @param {string} text
 * @returns {number | undefined}
 */
export function parseYuanToFen(text) {
  const match = YUAN_INPUT.exec(text);
  if (match === null) return undefined;
  const yuan = match[1] ?? "0";
  const cents = (match[2] ?? "").padEnd(2, "0");
  const fen = Number(yuan) * 100 + Number(cents);
  return Number.isSafeInteger(fen) ? fen : undefined;
}

/**
 * The integer sum of fen amounts; throws rather than returning an unsafe or fractional total.
 * @param {readonly number[]} amounts
 */
export function sumFen(amounts) {
  let total = 0;
  for (const a of amounts) {
    if (!Number.isSafeInteger(a)) throw new TypeError(`sumFen needs integers, got ${String(a)}`);
    total += a;
    if (!Number.isSafeInteger(total)) throw new RangeError("sum of fen is beyond a safe integer");
  }
  return total;
}

/**
 * Watt-hours as kWh with up to three decimals ("12.345 kWh"), by the digits again.
 * @param {number} wh
 */
export function formatKwh(wh) {
  if (!Number.isSafeInteger(wh)) throw new TypeError(`formatKwh needs integer Wh, got ${String(wh)}`);
  const negative = wh < 0;
  const digits = String(negative ? -wh : wh).padStart(4, "0");
  const whole = groupThousands(digits.slice(0, -3));
  const frac = digits.slice(-3).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${frac === "" ? "" : `.${frac}`} kWh`;
}
