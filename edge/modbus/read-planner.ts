// The read planner: turns the points a poll wants into the fewest Modbus read requests the device's limits allow,
// and routes each answer back to its points. Pure: the bus scheduler sends the requests, the guards get readings.
//
// The problem, stated once. Each read function code addresses its own table (Modbus Application Protocol V1.1b3
// §6.1-6.4: coils, discrete inputs, holding registers, input registers), so each FC is planned alone. A request
// reads one contiguous window of that table and must satisfy:
//   - quantity ≤ the device's limit and ≤ the spec maximum (§6.1/6.2: 1..2000 bits; §6.3/6.4: 1..125 registers);
//   - evenAlignment (Eastron: "read/write in register pairs"): start address and quantity both even;
//   - a point is never split across requests (a float read half now and half next poll is garbage);
//   - a run of registers no point needs is read through only when it is ≤ limits.maxBridgeGap (bridgeGaps on).
// Devices that answer exception 02 (ILLEGAL DATA ADDRESS, §7) to a bridged gap are planned with bridgeGaps: false.

import type { PointReading } from "../../protocols/codec/point-codec.js";
import { decodePointBit, decodePointWords, pointSpan } from "../../protocols/codec/point-codec.js";
import type { DeviceProfile, Point, ReadFunctionCode } from "../../protocols/profiles/schema.js";
import { READ_FUNCTION_CODES } from "../../protocols/profiles/schema.js";

export interface PlannedPoint {
  readonly point: Point;
  /** Position of the point's first word (FC 03/04) or bit (FC 01/02) in the request's answer. */
  readonly offset: number;
}

export interface ReadRequest {
  readonly fc: ReadFunctionCode;
  readonly address: number;
  readonly quantity: number;
  readonly points: readonly PlannedPoint[];
}

export interface PlanOptions {
  /**
   * Read through unused registers up to limits.maxBridgeGap (default true). False never reads an address no point
   * covers, except the other half of a register pair on an even-aligned device.
   */
  readonly bridgeGaps?: boolean;
}

export const PLAN_ERROR_CODES = {
  POINT_TOO_LARGE: "EDGE_PLAN_POINT_TOO_LARGE",
  POINT_MISALIGNED: "EDGE_PLAN_POINT_MISALIGNED",
  POINT_OUT_OF_RANGE: "EDGE_PLAN_POINT_OUT_OF_RANGE",
  POINTS_OVERLAP: "EDGE_PLAN_POINTS_OVERLAP",
  DUPLICATE_POINT: "EDGE_PLAN_DUPLICATE_POINT",
  TYPE_MISMATCH: "EDGE_PLAN_TYPE_MISMATCH",
  BAD_LIMITS: "EDGE_PLAN_BAD_LIMITS",
  RESULT_MISMATCH: "EDGE_PLAN_RESULT_MISMATCH",
} as const;
export type PlanErrorCode = (typeof PLAN_ERROR_CODES)[keyof typeof PLAN_ERROR_CODES];

export const PLAN_ERROR_TABLE = [
  { code: PLAN_ERROR_CODES.POINT_TOO_LARGE, cause: "a point spans more registers or bits than one request may read", fix: "raise the profile's maxRegistersPerRead (an even-aligned device needs ≥ 2) or drop the point" },
  { code: PLAN_ERROR_CODES.POINT_MISALIGNED, cause: "a multi-register point starts at an odd address on a device that reads register pairs", fix: "check the address against the manual (Eastron values start at even PDU addresses)" },
  { code: PLAN_ERROR_CODES.POINT_OUT_OF_RANGE, cause: "a point runs past address 65535", fix: "fix the point's address or type" },
  { code: PLAN_ERROR_CODES.POINTS_OVERLAP, cause: "two points share registers without being bit flags of the same register", fix: "fix the profile; the profile schema rejects this too" },
  { code: PLAN_ERROR_CODES.DUPLICATE_POINT, cause: "the same point id was asked for twice", fix: "list each point once" },
  { code: PLAN_ERROR_CODES.TYPE_MISMATCH, cause: "a bool point on a register FC, or a register type on a bit FC", fix: "FC 01/02 read bool points, FC 03/04 read register types" },
  { code: PLAN_ERROR_CODES.BAD_LIMITS, cause: "the device limits are not positive integers", fix: "validate the profile with profileSchema" },
  { code: PLAN_ERROR_CODES.RESULT_MISMATCH, cause: "an answer's length or kind does not match its request", fix: "a transport bug: it must check byte counts before decoding" },
] as const;

/** An impossible plan or a mismatched answer: a configuration or caller mistake, never worth retrying. */
export class PlanError extends Error {
  readonly retryable = false;
  constructor(
    readonly code: PlanErrorCode,
    message: string,
    readonly pointId?: string,
  ) {
    super(message);
    this.name = "PlanError";
  }
}

/**
 * The unit requests are counted in. An even-aligned device reads register pairs, so its table is planned in pairs:
 * a pad register is then simply the other half of a pair a point touches, and never counts as a bridged gap.
 */
export type PlanUnit = "bit" | "register" | "pair";

/** Points that occupy the same units (bit flags of one u16; two u16 in one pair), read together or not at all. */
export interface PointCluster {
  readonly startUnit: number;
  readonly endUnit: number;
  readonly points: readonly Point[];
}

/** The planning problem of one function code, as data: sorted disjoint clusters and the limits in units. */
export interface ReadTable {
  readonly fc: ReadFunctionCode;
  readonly unit: PlanUnit;
  readonly maxUnits: number;
  readonly maxGapUnits: number;
  readonly clusters: readonly PointCluster[];
}

type Limits = DeviceProfile["limits"];

const REGISTERS_PER_UNIT = { bit: 1, register: 1, pair: 2 } as const satisfies Record<PlanUnit, number>;

function checkLimits(limits: Limits): void {
  const positive = [limits.maxRegistersPerRead, limits.maxBitsPerRead];
  if (!positive.every((n) => Number.isInteger(n) && n >= 1) || !Number.isInteger(limits.maxBridgeGap) || limits.maxBridgeGap < 0) {
    throw new PlanError(PLAN_ERROR_CODES.BAD_LIMITS, `limits must be positive integers (gap ≥ 0): ${JSON.stringify(limits)}`);
  }
}

interface Located {
  readonly point: Point;
  readonly index: number;
  readonly first: number;
  readonly last: number;
}

/** Where a point lives in its table (first and last register or bit), after checking it can be read at all. */
function locate(point: Point, index: number, even: boolean): Located {
  const bitFc = READ_FUNCTION_CODES[point.fc].bits;
  if (bitFc !== (point.type === "bool")) {
    throw new PlanError(PLAN_ERROR_CODES.TYPE_MISMATCH, `point ${point.id}: FC ${point.fc} cannot read type ${point.type}`, point.id);
  }
  const span = bitFc ? 1 : pointSpan(point);
  const last = point.address + span - 1;
  if (!Number.isInteger(point.address) || point.address < 0 || last > 0xffff) {
    throw new PlanError(PLAN_ERROR_CODES.POINT_OUT_OF_RANGE, `point ${point.id} (${point.address}..${last}) is outside 0..65535`, point.id);
  }
  // A value that starts in the second half of a pair straddles two of the device's pairs; Eastron answers such a
  // read with values split across pairs (if at all), so it is a profile error rather than something to pad.
  if (even && !bitFc && span > 1 && point.address % 2 !== 0) {
    throw new PlanError(PLAN_ERROR_CODES.POINT_MISALIGNED, `point ${point.id} (${span} registers at ${point.address}) starts at an odd address on a device that reads register pairs`, point.id);
  }
  return { point, index, first: point.address, last };
}

/**
 * Build the planning problem for each function code present. Exported for the bus budget's independent lower
 * bound and for tests; planReads is the normal entry.
 */
export function readTables(profile: Pick<DeviceProfile, "limits">, points: readonly Point[], opts: PlanOptions = {}): ReadTable[] {
  const limits = profile.limits;
  checkLimits(limits);
  const bridgeGaps = opts.bridgeGaps ?? true;
  const ids = new Set<string>();
  for (const p of points) {
    if (ids.has(p.id)) throw new PlanError(PLAN_ERROR_CODES.DUPLICATE_POINT, `point ${p.id} is listed twice`, p.id);
    ids.add(p.id);
  }

  const tables: ReadTable[] = [];
  for (const fc of [1, 2, 3, 4] as const) {
    const spec = READ_FUNCTION_CODES[fc];
    const unit: PlanUnit = spec.bits ? "bit" : limits.evenAlignment ? "pair" : "register";
    const even = unit === "pair";
    const located = points.flatMap((p, i) => (p.fc === fc ? [locate(p, i, even)] : []));
    if (located.length === 0) continue;

    const perUnit = REGISTERS_PER_UNIT[unit];
    const maxRead = Math.min(spec.bits ? limits.maxBitsPerRead : limits.maxRegistersPerRead, spec.maxCount);
    const maxUnits = Math.floor(maxRead / perUnit);
    // On a pair device a gap is made of whole pairs; g pairs bridged cost 2g registers read for nothing.
    const maxGapUnits = bridgeGaps ? Math.floor(limits.maxBridgeGap / perUnit) : 0;

    located.sort((a, b) => a.first - b.first || a.last - b.last || (a.point.bit ?? -1) - (b.point.bit ?? -1) || a.index - b.index);
    const clusters: { startUnit: number; endUnit: number; points: Point[] }[] = [];
    let previous: Located | undefined;
    for (const loc of located) {
      const same = previous !== undefined && previous.first === loc.first && previous.last === loc.last;
      if (previous !== undefined && !same && loc.first <= previous.last) {
        throw new PlanError(PLAN_ERROR_CODES.POINTS_OVERLAP, `points ${previous.point.id} and ${loc.point.id} (FC ${fc}) share registers`, loc.point.id);
      }
      const startUnit = Math.floor(loc.first / perUnit);
      const endUnit = Math.floor(loc.last / perUnit);
      if (endUnit - startUnit + 1 > maxUnits) {
        throw new PlanError(
          PLAN_ERROR_CODES.POINT_TOO_LARGE,
          `point ${loc.point.id} needs ${(endUnit - startUnit + 1) * perUnit} ${spec.bits ? "bits" : "registers"} in one request; the device allows ${maxRead}${even ? " in register pairs" : ""}`,
          loc.point.id,
        );
      }
      const top = clusters.at(-1);
      // Disjoint register intervals map to disjoint or identical units: a multi-register point on a pair device
      // covers whole pairs, so only two single registers can land in one pair.
      if (top !== undefined && top.startUnit === startUnit && top.endUnit === endUnit) top.points.push(loc.point);
      else clusters.push({ startUnit, endUnit, points: [loc.point] });
      previous = loc;
    }
    tables.push({ fc, unit, maxUnits, maxGapUnits, clusters });
  }
  return tables;
}

// Why the greedy below is minimal. Let c1 < … < cn be a table's clusters (disjoint unit intervals [s, e]). Call a
// run ci..cj feasible when e_j − s_i + 1 ≤ maxUnits and every gap s_{k+1} − e_k − 1 (i ≤ k < j) ≤ maxGapUnits.
// (a) Every subrun of a feasible run is feasible (shorter, and its gaps are a subset).
// (b) Any valid request, whatever points it holds, turns into a feasible run: if ca and cb are its lowest and
//     highest clusters, its window holds [s_a, e_b], so e_b − s_a + 1 ≤ maxUnits; and each unread stretch between
//     two of its consecutive members contains every gap of ca..cb lying between them, so each of those gaps is
//     ≤ maxGapUnits. Hence a plan of k requests gives k feasible runs whose union is 1..n.
// (c) Greedy takes g1 = the largest j with c1..cj feasible, then g2 = the largest j with c(g1+1)..cj feasible,
//     and so on. Take any k feasible runs covering 1..n, sorted by left end, and let B_t be the highest index the
//     first t of them reach. B_1 ≤ g1, since the first run starts at 1 and greedy's run is the longest from 1.
//     If B_t ≤ g_t and B_t < n, the next run starts at ≤ B_t + 1 ≤ g_t + 1 (else index B_t + 1 is uncovered),
//     so by (a) its part from g_t + 1 on is feasible and by greedy's choice it ends at ≤ g_{t+1}: B_{t+1} ≤ g_{t+1}.
//     So B_k = n forces g_k ≥ n: greedy never needs more than k requests. Feasibility of ci..cj is monotone in j
//     (adding a cluster only lengthens the window and adds a gap), so extending until the first failure finds g.
function planTable(table: ReadTable): ReadRequest[] {
  const { clusters, maxUnits, maxGapUnits } = table;
  const requests: ReadRequest[] = [];
  let run: PointCluster[] = [];
  for (const cluster of clusters) {
    const first = run[0];
    const last = run.at(-1);
    if (first !== undefined && last !== undefined && (cluster.endUnit - first.startUnit + 1 > maxUnits || cluster.startUnit - last.endUnit - 1 > maxGapUnits)) {
      requests.push(toRequest(table, run));
      run = [];
    }
    run.push(cluster);
  }
  if (run.length > 0) requests.push(toRequest(table, run));
  return requests;
}

function toRequest(table: ReadTable, run: readonly PointCluster[]): ReadRequest {
  const perUnit = REGISTERS_PER_UNIT[table.unit];
  const startUnit = run[0]?.startUnit ?? 0;
  const endUnit = run.at(-1)?.endUnit ?? startUnit;
  const address = startUnit * perUnit;
  const points = run
    .flatMap((c) => c.points)
    .map((point) => ({ point, offset: point.address - address }))
    .sort((a, b) => a.offset - b.offset || (a.point.bit ?? -1) - (b.point.bit ?? -1));
  return { fc: table.fc, address, quantity: (endUnit - startUnit + 1) * perUnit, points };
}

/**
 * The fewest read requests that cover `points` under the device's limits, ordered by function code, then address.
 * Requests never overlap and each point appears in exactly one. Throws PlanError when no plan exists.
 */
export function planReads(profile: Pick<DeviceProfile, "limits">, points: readonly Point[], opts: PlanOptions = {}): ReadRequest[] {
  return readTables(profile, points, opts).flatMap(planTable);
}

/**
 * Decode a device's answer to a planned request: one reading per planned point, in the request's order. Register
 * reads take exactly `quantity` words; bit reads take `quantity` bits, or up to the whole last byte (§6.1: the
 * final data byte is padded with zeros), as unpacked by the transport.
 */
export function decodeReadResult(req: ReadRequest, data: readonly number[] | readonly boolean[]): PointReading[] {
  if (READ_FUNCTION_CODES[req.fc].bits) {
    const bits = data.filter((d): d is boolean => typeof d === "boolean");
    if (bits.length !== data.length || bits.length < req.quantity || bits.length > Math.ceil(req.quantity / 8) * 8) {
      throw new PlanError(PLAN_ERROR_CODES.RESULT_MISMATCH, `FC ${req.fc} read of ${req.quantity} bits at ${req.address} got ${data.length} values, expected ${req.quantity} booleans`);
    }
    return req.points.map(({ point, offset }) => decodePointBit(point, bits[offset] === true));
  }
  const words = data.filter((d): d is number => typeof d === "number");
  if (words.length !== data.length || words.length !== req.quantity) {
    throw new PlanError(PLAN_ERROR_CODES.RESULT_MISMATCH, `FC ${req.fc} read of ${req.quantity} registers at ${req.address} got ${data.length} values, expected ${req.quantity} words`);
  }
  return req.points.map(({ point, offset }) => decodePointWords(point, words.slice(offset, offset + pointSpan(point))));
}
