// Renders the reference tables of protocols/README.md from the code itself — profiles, topics, message schemas,
// value types, roles, units and error codes — so the document a third party implements against cannot drift from
// what the gateway and the cloud actually enforce. The hand-written prose above the generated block is kept as is.
//
//   tsx protocols/docs/generate-readme.ts --write   rewrite protocols/README.md
//   tsx protocols/docs/generate-readme.ts --check   exit 1 if protocols/README.md differs from what would be written

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { z } from "zod";
import { CODEC_ERROR_CODES } from "../codec/errors.js";
import { VALUE_TYPE_NAMES, VALUE_TYPES, WORD_ORDERS, type WordOrder } from "../codec/value-types.js";
import { encodeRaw, type DecodeResult } from "../codec/word-codec.js";
import { MBAP_HEADER_LENGTH, MAX_PDU_LENGTH, RTU_MAX_FRAME, interFrameSilenceMs, rtuTransactionLimitPerSecond, type SerialLine } from "../modbus/frames.js";
import { EXCEPTION_CODES, FUNCTION_CODES, QUANTITY_LIMITS, type ResponseFailure } from "../modbus/pdu.js";
import { MESSAGE_NAMES, MESSAGE_SCHEMAS, MESSAGE_VERSION } from "../mqtt/messages.js";
import { TOPIC_ERROR_CODES, TOPIC_NAMES, TOPIC_NAMESPACE, TOPIC_PARAM_PATTERNS, TOPICS, subscriptionFilter } from "../mqtt/topics.js";
import { BUILT_IN_PROFILES } from "../profiles/index.js";
import { CUMULATIVE_ROLES, ROLE_NAMES, ROLES, UNIT_NAMES, UNITS, WRITE_ROLES } from "../profiles/roles.js";
import { READ_FUNCTION_CODES, tableOf, type DeviceProfile, type Point, type WriteTarget } from "../profiles/schema.js";
import {
  UNIT_ERROR_CODES,
  energyAffordableWh,
  energyCostFen,
  fenToYuan,
  floatEnergyToWh,
  integerRegisterToWh,
  yuanPerKwhToPrice,
  yuanToFen,
} from "../units.js";

export const GENERATED_START = "<!-- generated:start -->";
export const GENERATED_END = "<!-- generated:end -->";
export const README_PATH = fileURLToPath(new URL("../README.md", import.meta.url));

// ─── markdown helpers ─────────────────────────────────────────────────────────────────────────────────────────────

/** A table cell: pipes escaped (GFM splits on them even inside code spans), no line breaks. */
function cell(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

/** An inline code span that survives backticks in the text (CommonMark §6.1). */
function code(text: string): string {
  return text.includes("`") ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** Code span for a table cell: the backslashes of a regex are literal inside a code span, pipes still split. */
function codeCell(text: string): string {
  return code(text.replace(/\|/g, "\\|"));
}

function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n");
}

function hex16(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(4, "0")}`;
}

function words(ws: readonly number[]): string {
  return ws.map(hex16).join(" ");
}

// ─── Modbus ───────────────────────────────────────────────────────────────────────────────────────────────────────

const FUNCTION_CODE_LIMITS: Record<number, string> = {
  5: "1 coil (0x0000 or 0xFF00)",
  6: "1 register",
};

function renderModbus(): string {
  const fcRows = Object.entries(FUNCTION_CODES).map(([name, fc]) => {
    const limit = fc in QUANTITY_LIMITS ? `1..${QUANTITY_LIMITS[fc as keyof typeof QUANTITY_LIMITS]}` : (FUNCTION_CODE_LIMITS[fc] ?? "");
    return [`${fc} (0x${fc.toString(16).toUpperCase().padStart(2, "0")})`, name.toLowerCase().replace(/_/g, " "), tableOf(fc), limit];
  });
  const exceptionRows = Object.entries(EXCEPTION_CODES).map(([name, n]) => [`0${n.toString(16).toUpperCase()}`.slice(-2), name.toLowerCase().replace(/_/g, " ")]);
  const lines: readonly [string, SerialLine][] = [
    ["9600 8E1", { baud: 9600, parity: "even", stopBits: 1 }],
    ["19200 8E1", { baud: 19200, parity: "even", stopBits: 1 }],
    ["115200 8E1", { baud: 115200, parity: "even", stopBits: 1 }],
    ["9600 8N1", { baud: 9600, parity: "none", stopBits: 1 }],
  ];
  const lineRows = lines.map(([name, line]) => [
    name,
    `${interFrameSilenceMs(line).toFixed(2)} ms`,
    rtuTransactionLimitPerSecond(3, 10, line).toFixed(1),
    rtuTransactionLimitPerSecond(3, 60, line).toFixed(1),
    rtuTransactionLimitPerSecond(3, 125, line).toFixed(1),
  ]);
  return [
    "### Modbus function codes and request limits",
    "",
    "Modbus Application Protocol V1.1b3 §6; a server answers a request outside these limits with exception 03 (quantity) or 02 (address + quantity past 65535).",
    "",
    table(["FC", "function", "table", "quantity per request"], fcRows),
    "",
    table(["exception", "meaning (§7)"], exceptionRows),
    "",
    `Frame sizes: an RTU ADU is at most ${RTU_MAX_FRAME} bytes (unit id + PDU + CRC), a PDU at most ${MAX_PDU_LENGTH} bytes, the MBAP header ${MBAP_HEADER_LENGTH} bytes.`,
    "",
    "Best-case RTU read rate (FC 03, zero device turnaround: request + silence + answer + silence), from `rtuTransactionLimitPerSecond`:",
    "",
    table(["line", "inter-frame silence", "10 registers/s", "60 registers/s", "125 registers/s"], lineRows),
  ].join("\n");
}

// ─── value types, word orders ─────────────────────────────────────────────────────────────────────────────────────

const WORD_ORDER_MEANING: Record<WordOrder, string> = {
  ABCD: "high word first, high byte first (Modbus big-endian; Eastron, CHINT)",
  CDAB: "low word first, bytes big-endian inside each word (word swap, many PLCs)",
  BADC: "high word first, bytes swapped inside each word",
  DCBA: "fully little-endian",
};

function renderValueTypes(): string {
  const typeRows = VALUE_TYPE_NAMES.map((t) => {
    const v = VALUE_TYPES[t];
    return [code(t), v.words === 0 ? "1 bit" : String(v.words), v.kind, cell(v.description)];
  });
  const orderRows = WORD_ORDERS.map((o) => [code(o), words(encodeRaw("u32", o, 0x12345678)), words(encodeRaw("f32", o, 230.2)), words(encodeRaw("u64", o, 0x0012_3456_789a_bcde)), cell(WORD_ORDER_MEANING[o])]);
  return [
    "### Value types",
    "",
    table(["type", "registers", "kind", "description"], typeRows),
    "",
    "### Word orders",
    "",
    "Named by where the bytes of a big-endian value A B C D land; the same rule extends to four-word values. Register words as they travel on the wire:",
    "",
    table(["order", "u32 0x12345678", "f32 230.2", "u64 0x00123456789ABCDE", "meaning"], orderRows),
  ].join("\n");
}

// ─── roles and units ──────────────────────────────────────────────────────────────────────────────────────────────

function renderRoles(): string {
  const roleRows = ROLE_NAMES.map((r) => [code(r), ROLES[r].units.map(code).join(", "), CUMULATIVE_ROLES.includes(r) ? "yes" : "", cell(ROLES[r].description)]);
  const unitRows = UNIT_NAMES.map((u) => [code(u), cell(UNITS[u])]);
  return [
    "### Roles",
    "",
    "What a point means to the rest of the system, and the units it may be expressed in (profileSchema refuses any other). Cumulative roles are counters the edge treats as a chain that never goes backwards.",
    "",
    table(["role", "units", "cumulative", "description"], roleRows),
    "",
    `Write targets drive one of: ${WRITE_ROLES.map(code).join(", ")}.`,
    "",
    "### Units",
    "",
    table(["unit", "meaning"], unitRows),
  ].join("\n");
}

function renderMoney(): string {
  const price = yuanPerKwhToPrice("0.5283");
  const energy = integerRegisterToWh(123456, -2, "kWh", "exact");
  const cost = energyCostFen(price, energy.wh, "half-up");
  const floatEnergy = floatEnergyToWh(1234.5678, "kWh", "nearest");
  const balance = yuanToFen("50.00");
  const rows = [
    ["energy", "watt-hour (Wh)", "safe integer", `DDS238 register 123456 × 0.01 kWh → ${energy.wh} Wh (exact)`],
    ["energy from a float register", "watt-hour (Wh)", "safe integer, rounded to nearest", `f32 1234.5678 kWh → ${floatEnergy.wh} Wh, droppedWh ${floatEnergy.droppedWh.toFixed(1)}`],
    ["money", "fen (分, 1/100 yuan)", "safe integer", `"12.34" yuan → ${yuanToFen("12.34")} fen; ${balance} fen → "${fenToYuan(balance)}"`],
    ["price", "centi-fen per kWh (1/10000 yuan per kWh)", "safe integer", `¥0.5283/kWh → ${price}`],
    ["cost", "fen", "price × Wh / 100000, rounded as asked", `${price} × ${energy.wh} Wh → ${cost.numerator} / ${cost.denominator} → ${cost.fen} fen (half-up)`],
    ["credit", "Wh", "balance × 100000 / price, rounded down", `${balance} fen at ${price} → ${energyAffordableWh(balance, price)} Wh`],
  ];
  return [
    "### Units of energy and money",
    "",
    "No float touches the ledger. The examples below are computed by protocols/units.ts when this file is generated.",
    "",
    table(["quantity", "unit", "representation", "example"], rows.map((r) => r.map(cell))),
  ].join("\n");
}

// ─── device profiles ──────────────────────────────────────────────────────────────────────────────────────────────

function serialText(p: DeviceProfile): string {
  const parity = { none: "N", even: "E", odd: "O" }[p.serial.parity];
  return `${p.serial.baud} ${p.serial.dataBits}${parity}${p.serial.stopBits}, unit ${p.serial.unitId}`;
}

function pointRow(pt: Point): string[] {
  const type = pt.bit === undefined ? pt.type : `${pt.type} bit ${pt.bit}`;
  const description = pt.poll ? pt.description : `${pt.description} (not polled)`;
  return [
    code(pt.id),
    code(pt.role),
    pt.channel === undefined ? "" : cell(pt.channel),
    String(pt.fc).padStart(2, "0"),
    hex16(pt.address),
    code(type),
    pt.type === "bool" ? "—" : pt.wordOrder,
    String(pt.scale),
    code(pt.unit),
    cell(description),
  ];
}

function writeValues(w: WriteTarget): string {
  const v = (n: number | undefined): string => (n === undefined ? "?" : `${n} (${hex16(n)})`);
  if (w.role === "relay") return `open (cut) = ${v(w.openValue)}, closed = ${v(w.closedValue)}`;
  return `write ${v(w.commandValue)}`;
}

function renderProfile(p: DeviceProfile): string {
  const l = p.limits;
  const facts = [
    `- Kind: ${p.kind}; confidence: ${p.confidence}${p.variantOf === undefined ? "" : `; variant of ${code(p.variantOf)}`}`,
    `- Serial defaults: ${serialText(p)}`,
    `- Limits: ≤ ${l.maxRegistersPerRead} registers and ≤ ${l.maxBitsPerRead} bits per read; ≤ ${l.maxWriteRegisters} registers per write; ` +
      `${l.evenAlignment ? "register pairs only (even start and count)" : "any alignment"}; bridge gaps of ≤ ${l.maxBridgeGap} unused registers`,
  ];
  if (p.kind === "meter") {
    const phases = p.phases === undefined ? "phases not given" : p.phases === 1 ? "single-phase" : "three-phase";
    facts.push(`- Meter: ${phases}, at most ${p.maxPowerW ?? "?"} W (used to reject impossible energy jumps)`);
  }
  const parts = [
    `#### ${code(p.id)} — ${cell(p.manufacturer)} ${cell(p.model)}`,
    "",
    cell(p.description),
    "",
    ...facts,
    "",
    table(["point", "role", "channel", "FC", "address", "type", "word order", "scale", "unit", "description"], p.points.map(pointRow)),
    "",
  ];
  if (p.writes.length > 0) {
    const rows = p.writes.map((w) => [code(w.role), w.channel === undefined ? "" : cell(w.channel), String(w.fc).padStart(2, "0"), hex16(w.address), cell(writeValues(w)), w.readBack === undefined ? "" : code(w.readBack), cell(w.description)]);
    parts.push("Write targets:", "", table(["role", "channel", "FC", "address", "values", "read back", "description"], rows), "");
  } else {
    parts.push("Write targets: none.", "");
  }
  parts.push("Sources:", "", ...p.sources.map((s) => `- ${s}`));
  return parts.join("\n");
}

function renderProfiles(): string {
  const summary = BUILT_IN_PROFILES.map((p) => [code(p.id), cell(p.manufacturer), cell(p.model), p.kind, p.confidence, serialText(p), String(p.points.length), p.variantOf === undefined ? "" : code(p.variantOf)]);
  const fcRows = Object.entries(READ_FUNCTION_CODES).map(([fc, info]) => [fc.padStart(2, "0"), info.table, info.bits ? "bits (type bool)" : "16-bit registers", String(info.maxCount)]);
  return [
    "### Device profiles",
    "",
    "Addresses are 0-based PDU addresses (Modicon 30001 = input register 0x0000, 40001 = holding register 0x0000). A value is raw × scale in the unit shown.",
    "",
    table(["read FC", "table", "reads", "max per request"], fcRows),
    "",
    table(["profile", "manufacturer", "model", "kind", "confidence", "serial defaults", "points", "variant of"], summary),
    "",
    BUILT_IN_PROFILES.map(renderProfile).join("\n\n"),
  ].join("\n");
}

// ─── MQTT topics ──────────────────────────────────────────────────────────────────────────────────────────────────

function renderTopics(): string {
  const rows = TOPIC_NAMES.map((n) => {
    const t = TOPICS[n];
    return [code(n), code(t.pattern), t.direction, String(t.qos), t.retain ? "yes" : "no", code(t.payload), code(subscriptionFilter(n)), cell(t.description)];
  });
  const params = Object.entries(TOPIC_PARAM_PATTERNS).map(([name, re]) => [code(`{${name}}`), codeCell(re.source)]);
  return [
    "### MQTT topics",
    "",
    `Namespace ${code(TOPIC_NAMESPACE)}. Uplink = gateway → cloud, downlink = cloud → gateway. The filter column is what the cloud subscribes to.`,
    "",
    table(["name", "pattern", "direction", "QoS", "retain", "payload", "cloud filter", "description"], rows),
    "",
    table(["parameter", "must match"], params),
  ].join("\n");
}

// ─── message schemas ──────────────────────────────────────────────────────────────────────────────────────────────

type JsonSchema = z.core.JSONSchema.JSONSchema;
type JsonSchemaLike = z.core.JSONSchema._JSONSchema;

interface FieldRow {
  readonly path: string;
  readonly type: string;
  readonly required: boolean;
}
interface Variant {
  readonly title: string;
  readonly rows: FieldRow[];
}

const ROLE_SET = new Set<string>(ROLE_NAMES);
const UNIT_SET = new Set<string>(UNIT_NAMES);

function asSchema(s: JsonSchemaLike | readonly JsonSchemaLike[] | undefined): JsonSchema {
  if (s === undefined || typeof s === "boolean" || Array.isArray(s)) return {};
  return s as JsonSchema;
}

function unionOf(s: JsonSchema): JsonSchema[] | undefined {
  return s.oneOf ?? s.anyOf;
}

function isObjectSchema(s: JsonSchema): boolean {
  return s.type === "object" && s.properties !== undefined;
}

function isObjectUnion(s: JsonSchema): boolean {
  const u = unionOf(s);
  return u !== undefined && u.length > 0 && u.every(isObjectSchema);
}

function rangeText(s: JsonSchema, integer: boolean): string {
  const lo = s.minimum !== undefined ? { v: s.minimum, incl: true } : typeof s.exclusiveMinimum === "number" ? { v: s.exclusiveMinimum, incl: false } : undefined;
  const maxIsSafe = integer && s.maximum === Number.MAX_SAFE_INTEGER;
  const hi = s.maximum !== undefined && !maxIsSafe ? { v: s.maximum, incl: true } : typeof s.exclusiveMaximum === "number" ? { v: s.exclusiveMaximum, incl: false } : undefined;
  if (lo?.incl && hi?.incl) return ` ${lo.v}..${hi.v}`;
  const parts: string[] = [];
  if (lo) parts.push(`${lo.incl ? "≥" : ">"} ${lo.v}`);
  if (hi) parts.push(`${hi.incl ? "≤" : "<"} ${hi.v}`);
  return parts.length > 0 ? ` ${parts.join(", ")}` : "";
}

function countText(min: number | undefined, max: number | undefined, what: string): string {
  if (min !== undefined && max !== undefined) return `${min}..${max} ${what}`;
  if (max !== undefined) return `≤ ${max} ${what}`;
  if (min !== undefined) return `≥ ${min} ${what}`;
  return "";
}

function variantTag(s: JsonSchema, index: number): string {
  const tag = asSchema(s.properties?.type);
  if (tag.const !== undefined && tag.const !== null) return String(tag.const);
  if (tag.enum !== undefined) return tag.enum.map(String).join(" / ");
  return `variant ${index + 1}`;
}

/** One line of type text for a JSON Schema node (zod 4's z.toJSONSchema output). */
function typeText(s: JsonSchema): string {
  if (s.$ref !== undefined) return "any JSON value";
  if (s.const !== undefined) return code(JSON.stringify(s.const));
  if (s.enum !== undefined) {
    const values = s.enum.map(String);
    if (values.length === ROLE_SET.size && values.every((v) => ROLE_SET.has(v))) return "a role (see Roles)";
    if (values.length === UNIT_SET.size && values.every((v) => UNIT_SET.has(v))) return "a unit (see Units)";
    return `one of ${values.map((v) => codeCell(v)).join(", ")}`;
  }
  const union = unionOf(s);
  if (union !== undefined) {
    if (isObjectUnion(s)) return `object, one of: ${union.map((v, i) => code(variantTag(v, i))).join(", ")}`;
    return union.map(typeText).join(" or ");
  }
  switch (s.type) {
    case "string": {
      const bits = ["string"];
      if (s.format === "date-time") bits.push("ISO 8601 date-time with offset");
      else if (s.pattern !== undefined) bits.push(`matching ${codeCell(s.pattern)}`);
      const len = countText(s.minLength, s.maxLength, "chars");
      if (len !== "") bits.push(len);
      return bits.join(", ");
    }
    case "integer":
      return `integer${rangeText(s, true)}`;
    case "number":
      return `number${rangeText(s, false)}`;
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array": {
      // A fixed tuple (z.tuple): name each position, since "array of any" would hide what goes where.
      if (s.prefixItems !== undefined) return `array of exactly ${s.prefixItems.length}: [${s.prefixItems.map((p) => typeText(asSchema(p))).join(", ")}]`;
      const count = countText(s.minItems, s.maxItems, "items");
      const items = asSchema(s.items);
      const of = isObjectSchema(items) ? "objects" : isObjectUnion(items) ? "objects (see variants)" : typeText(items);
      return `array${count === "" ? "" : ` (${count})`} of ${of}`;
    }
    case "object": {
      if (s.properties !== undefined) return "object";
      const keys = asSchema(s.propertyNames);
      const keyText = keys.maxLength === undefined ? "string keys" : `string keys ≤ ${keys.maxLength} chars`;
      return `object: ${keyText} → ${typeText(asSchema(s.additionalProperties))}`;
    }
    default:
      return "any";
  }
}

/** Flatten an object schema into dotted field paths; unions of objects become separate variant tables. */
function walkObject(s: JsonSchema, prefix: string, rows: FieldRow[], variants: Variant[]): void {
  const required = new Set(s.required ?? []);
  for (const [name, raw] of Object.entries(s.properties ?? {})) {
    const prop = asSchema(raw);
    const path = `${prefix}${name}`;
    rows.push({ path, type: typeText(prop), required: required.has(name) });
    if (isObjectSchema(prop)) walkObject(prop, `${path}.`, rows, variants);
    else if (isObjectUnion(prop)) walkVariants(prop, path, variants);
    else if (prop.type === "array") {
      const items = asSchema(prop.items);
      if (isObjectSchema(items)) walkObject(items, `${path}[].`, rows, variants);
      else if (isObjectUnion(items)) walkVariants(items, `${path}[]`, variants);
    }
  }
}

function walkVariants(s: JsonSchema, path: string, variants: Variant[]): void {
  (unionOf(s) ?? []).forEach((v, i) => {
    const rows: FieldRow[] = [];
    const title = `${code(path)} with ${code("type")} = ${variantTag(v, i).split(" / ").map(code).join(" or ")}`;
    const entry: Variant = { title, rows };
    variants.push(entry);
    walkObject(v, "", rows, variants);
  });
}

function fieldTable(rows: readonly FieldRow[]): string {
  return table(["field", "type", "required"], rows.map((r) => [code(r.path), r.type, r.required ? "yes" : "no"]));
}

function renderMessages(): string {
  const sections = MESSAGE_NAMES.map((name) => {
    const json = z.toJSONSchema(MESSAGE_SCHEMAS[name], { io: "input", unrepresentable: "any" }) as JsonSchema;
    const rows: FieldRow[] = [];
    const variants: Variant[] = [];
    walkObject(json, "", rows, variants);
    const topics = TOPIC_NAMES.filter((t) => TOPICS[t].payload === name);
    const carried = topics.length === 0 ? "no topic" : topics.map((t) => `${code(t)} (${code(TOPICS[t].pattern)})`).join(", ");
    const parts = [`#### ${code(name)}`, "", `Carried on: ${carried}.`, "", fieldTable(rows)];
    for (const v of variants) parts.push("", `${v.title}:`, "", fieldTable(v.rows));
    return parts.join("\n");
  });
  return [
    "### Message schemas",
    "",
    `JSON payloads, message version ${code(`v: ${MESSAGE_VERSION}`)}. Every object is strict: a key not listed here is refused. ` +
      "The tables are the structure; cross-field rules (expiresAt after issuedAt, a rejected ack needs a reason, no reading twice in one batch, a sample's unit must suit its role) are in protocols/mqtt/messages.ts.",
    "",
    sections.join("\n\n"),
  ].join("\n");
}

// ─── error codes ──────────────────────────────────────────────────────────────────────────────────────────────────

// Keyed by the code tables' own keys, so a new code without an explanation here fails to compile.
const CODEC_ERROR_HELP: Record<keyof typeof CODEC_ERROR_CODES, string> = {
  WRONG_WORD_COUNT: "A value was decoded from the wrong number of words, or a bool/bit-field point was treated as words. Fix the caller: read exactly the point's span.",
  OUT_OF_RANGE: "An integer does not fit its type, or a scale is not a power of ten. Fix the value or the profile.",
  NOT_AN_INTEGER: "An integer register was asked to hold a fraction. Round (encodePointValue does) or use a float type.",
  NOT_FINITE: "An integer register was asked to hold NaN or ±Infinity. Only f32/f64 can carry those.",
  BAD_WORD: "A register word outside 0..65535 reached the codec: a transport or caller bug.",
  BAD_BCD: "Reserved for BCD a caller asks to encode; a bad nibble in device data is the BAD_BCD decode result below, not a throw.",
};

const DECODE_RESULT_HELP: Record<Extract<DecodeResult, { ok: false }>["code"], string> = {
  NOT_A_NUMBER: "A float register holds NaN (0xFFFF 0xFFFF, say). Never billed; the edge reports it as a tamper event of kind not_a_number.",
  INFINITE: "A float register holds ±Infinity. Treated like NOT_A_NUMBER.",
  UNSAFE_INTEGER: "A 64-bit register holds a value beyond 2^53, which a JavaScript number cannot hold exactly.",
  BAD_BCD: "A packed-BCD register holds a nibble A-F.",
};

const UNIT_ERROR_HELP: Record<keyof typeof UNIT_ERROR_CODES, string> = {
  NOT_INTEGER: "A quantity that must be a safe integer (Wh, fen, a price) is not, or a price is not positive.",
  INEXACT: "An exact conversion was asked for but a fraction of a Wh would be dropped. Use floor/nearest and carry droppedWh.",
  BAD_DECIMAL: "A yuan amount or price string has the wrong form or too many decimals (2 for yuan, 4 for yuan per kWh).",
  UNSAFE: "A result would pass 2^53 and lose precision; it is refused instead of rounded.",
};

const TOPIC_ERROR_HELP: Record<keyof typeof TOPIC_ERROR_CODES, string> = {
  UNKNOWN_TOPIC: "No topic of that name in TOPICS (a name from JSON or a CLI flag).",
  BAD_PARAM: "A parameter (gatewayId) does not match its pattern; it could otherwise widen a topic or an ACL.",
  MISSING_PARAM: "A parameter the pattern names was not given.",
  EXTRA_PARAM: "A parameter the pattern does not name was given.",
};

const RESPONSE_FAILURE_HELP: Record<ResponseFailure["code"], string> = {
  MALFORMED: "The answer's length disagrees with its own byte count or function code.",
  MISMATCH: "A well-formed answer to a different request (function code, byte count, echoed address, value or quantity).",
};

function renderErrors(): string {
  const codeRows = <K extends string>(codes: Record<K, string>, help: Record<K, string>, cls: string): string[][] =>
    (Object.keys(codes) as K[]).map((k) => [code(codes[k]), cls, cell(help[k])]);
  const resultRows = (Object.keys(DECODE_RESULT_HELP) as (keyof typeof DECODE_RESULT_HELP)[]).map((k) => [code(k), "decodeRaw / decodePointWords result", cell(DECODE_RESULT_HELP[k])]);
  const responseRows = (Object.keys(RESPONSE_FAILURE_HELP) as (keyof typeof RESPONSE_FAILURE_HELP)[]).map((k) => [code(k), "decodeResponse result", cell(RESPONSE_FAILURE_HELP[k])]);
  return [
    "### Error codes",
    "",
    "Thrown errors carry a stable `code` and `retryable: false` (each is a caller or data mistake that retrying cannot fix). Device data that cannot be decoded is returned as a result with a code, never thrown.",
    "",
    table(
      ["code", "raised by", "cause and fix"],
      [
        ...codeRows(CODEC_ERROR_CODES, CODEC_ERROR_HELP, "CodecError"),
        ...resultRows,
        ...codeRows(UNIT_ERROR_CODES, UNIT_ERROR_HELP, "UnitError"),
        ...codeRows(TOPIC_ERROR_CODES, TOPIC_ERROR_HELP, "TopicError"),
        ...responseRows,
      ],
    ),
  ].join("\n");
}

// ─── the document ─────────────────────────────────────────────────────────────────────────────────────────────────

/** The generated block's content (without the markers). Deterministic: the same code renders the same text. */
export function renderGenerated(): string {
  return [
    "<!-- Everything up to the end marker is rendered by protocols/docs/generate-readme.ts: edit the code and run `npm run docs`. -->",
    "",
    "## Reference (generated from the code)",
    "",
    renderProfiles(),
    "",
    renderTopics(),
    "",
    renderMessages(),
    "",
    renderValueTypes(),
    "",
    renderRoles(),
    "",
    renderMoney(),
    "",
    renderModbus(),
    "",
    renderErrors(),
  ].join("\n");
}

/** The README with its generated block replaced (or appended when the file has none); prose outside it is kept. */
export function renderReadme(existing: string): string {
  const block = `${GENERATED_START}\n${renderGenerated()}\n${GENERATED_END}`;
  const start = existing.indexOf(GENERATED_START);
  const end = existing.indexOf(GENERATED_END);
  if (start === -1 && end === -1) return `${existing.trimEnd()}\n\n${block}\n`;
  if (start === -1 || end === -1 || end < start || existing.indexOf(GENERATED_START, start + 1) !== -1) {
    throw new Error(`protocols/README.md must contain exactly one ${GENERATED_START} followed by one ${GENERATED_END}`);
  }
  return existing.slice(0, start) + block + existing.slice(end + GENERATED_END.length);
}

function firstDifferentLine(a: string, b: string): number {
  const al = a.split("\n");
  const bl = b.split("\n");
  for (let i = 0; i < Math.max(al.length, bl.length); i++) if (al[i] !== bl[i]) return i + 1;
  return 0;
}

export function main(argv: readonly string[]): number {
  const write = argv.includes("--write");
  const check = argv.includes("--check");
  if (write === check) {
    console.error("usage: tsx protocols/docs/generate-readme.ts --write | --check");
    return 2;
  }
  const existing = existsSync(README_PATH) ? readFileSync(README_PATH, "utf8") : "# protocols/\n";
  const next = renderReadme(existing);
  if (write) {
    if (next !== existing) writeFileSync(README_PATH, next);
    console.log(next === existing ? "protocols/README.md is up to date" : "protocols/README.md rewritten");
    return 0;
  }
  if (next === existing) return 0;
  console.error(
    `protocols/README.md differs from the code from line ${firstDifferentLine(existing, next)} on: run \`npm run docs\` (tsx protocols/docs/generate-readme.ts --write) and commit the result`,
  );
  return 1;
}

const invokedAs = process.argv[1];
if (invokedAs !== undefined && import.meta.url === pathToFileURL(invokedAs).href) process.exitCode = main(process.argv.slice(2));
