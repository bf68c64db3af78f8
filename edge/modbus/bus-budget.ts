// The bus budget: what a poll plan costs one RS-485 line in time, checked when the configuration is loaded, so a
// plan the line cannot carry is refused (or warned about) before it runs instead of showing up as timeouts. Also
// the least number of requests a profile's limits allow, against which the planner is benchmarked. Pure.
//
// Timing model (Modbus over Serial Line V1.02 §2.5.1.1): a transaction is the request frame, the 3.5-character
// silence that ends it, the device's turnaround, the answer frame and the silence that ends the answer. The line
// is half duplex, so transactions of all devices on it add up.

import type { DeviceProfile, Point, ReadFunctionCode } from "../../protocols/profiles/schema.js";
import { READ_FUNCTION_CODES } from "../../protocols/profiles/schema.js";
import { frameTimeMs, interFrameSilenceMs, rtuReadFrameSizes, type SerialLine } from "../../protocols/modbus/frames.js";
import { readTables, type PlanOptions, type ReadRequest, type ReadTable } from "./read-planner.js";

export interface BusLine extends SerialLine {
  /** Time the slowest device takes between the end of a request and the start of its answer. */
  readonly turnaroundMs: number;
}

export interface DevicePollPlan {
  readonly deviceId: string;
  readonly requests: readonly Pick<ReadRequest, "fc" | "address" | "quantity">[];
  readonly pollIntervalMs: number;
}

export interface TransactionCost {
  readonly fc: ReadFunctionCode;
  readonly address: number;
  readonly quantity: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** request + silence + turnaround + response + silence. */
  readonly timeMs: number;
}

export interface DeviceBudget {
  readonly deviceId: string;
  readonly pollIntervalMs: number;
  readonly transactions: readonly TransactionCost[];
  /** Line time one poll cycle of this device takes. */
  readonly cycleMs: number;
  readonly busyMsPerSecond: number;
  readonly utilisation: number;
}

export interface BusBudget {
  /** False when the plan needs more line time than there is: the configuration must be refused. */
  readonly ok: boolean;
  /** Busy time per second of line time: 0.5 = half the line; above 1 the plan cannot keep its intervals. */
  readonly utilisation: number;
  readonly busyMsPerSecond: number;
  readonly perDevice: readonly DeviceBudget[];
  readonly warnings: readonly string[];
  /** Why the plan is refused, present exactly when ok is false. */
  readonly refusal?: string;
}

/**
 * Above 70 % the line has too little room left for retries (each timed-out request costs its whole timeout) and
 * for commands; above 100 % the devices cannot all be polled at their intervals at all.
 */
export const BUS_UTILISATION_LIMITS = { warnAbove: 0.7, refuseAbove: 1.0 } as const;

/** Inputs that cannot describe a real line or plan: a caller mistake, never worth retrying. */
export class BusBudgetError extends Error {
  readonly code = "EDGE_BUS_BUDGET_INVALID";
  readonly retryable = false;
  constructor(message: string) {
    super(message);
    this.name = "BusBudgetError";
  }
}

function checkLine(line: BusLine): void {
  if (!Number.isFinite(line.baud) || line.baud <= 0) throw new BusBudgetError(`baud ${line.baud} is not a positive number`);
  if (!Number.isFinite(line.turnaroundMs) || line.turnaroundMs < 0) throw new BusBudgetError(`turnaroundMs ${line.turnaroundMs} is not ≥ 0`);
}

/** The cost of one read transaction on the line. */
export function transactionCost(req: Pick<ReadRequest, "fc" | "address" | "quantity">, line: BusLine): TransactionCost {
  checkLine(line);
  const spec = READ_FUNCTION_CODES[req.fc];
  // Modbus Application Protocol V1.1b3 §6.1-6.4: quantity 1..2000 bits or 1..125 registers; anything else has no
  // frame, so it has no cost either.
  if (!Number.isInteger(req.quantity) || req.quantity < 1 || req.quantity > spec.maxCount) {
    throw new BusBudgetError(`FC ${req.fc} quantity ${req.quantity} is outside 1..${spec.maxCount}`);
  }
  const { request, response } = rtuReadFrameSizes(req.fc, req.quantity);
  const silenceMs = interFrameSilenceMs(line);
  const timeMs = frameTimeMs(request, line) + silenceMs + line.turnaroundMs + frameTimeMs(response, line) + silenceMs;
  return { fc: req.fc, address: req.address, quantity: req.quantity, requestBytes: request, responseBytes: response, timeMs };
}

function frameName(line: SerialLine): string {
  return `8${line.parity === "none" ? "N" : line.parity === "even" ? "E" : "O"}${line.stopBits}`;
}

/** A duration for people: whole milliseconds below a second, else seconds with at most two decimals (1.3 s). */
function duration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(2))} s`;
}

/** Line time of every device's poll cycle, summed over the line, with a verdict. */
export function busBudget(line: BusLine, devices: readonly DevicePollPlan[]): BusBudget {
  checkLine(line);
  const perDevice = devices.map((d): DeviceBudget => {
    if (!Number.isFinite(d.pollIntervalMs) || d.pollIntervalMs <= 0) throw new BusBudgetError(`device ${d.deviceId}: pollIntervalMs ${d.pollIntervalMs} is not positive`);
    const transactions = d.requests.map((r) => transactionCost(r, line));
    const cycleMs = transactions.reduce((sum, t) => sum + t.timeMs, 0);
    const busyMsPerSecond = (cycleMs * 1000) / d.pollIntervalMs;
    return { deviceId: d.deviceId, pollIntervalMs: d.pollIntervalMs, transactions, cycleMs, busyMsPerSecond, utilisation: busyMsPerSecond / 1000 };
  });
  const busyMsPerSecond = perDevice.reduce((sum, d) => sum + d.busyMsPerSecond, 0);
  const utilisation = busyMsPerSecond / 1000;
  const where = `at ${line.baud} baud ${frameName(line)}, turnaround ${line.turnaroundMs} ms`;

  const warnings: string[] = [];
  for (const d of perDevice) {
    if (d.cycleMs > d.pollIntervalMs) {
      warnings.push(`device ${d.deviceId} needs ${duration(d.cycleMs)} of line time per cycle but is polled every ${duration(d.pollIntervalMs)}`);
    }
  }
  if (utilisation > BUS_UTILISATION_LIMITS.refuseAbove) {
    const refusal = `poll plan needs ${duration(busyMsPerSecond)} of line time per second ${where}: poll less often, raise the baud rate or split the bus`;
    return { ok: false, utilisation, busyMsPerSecond, perDevice, warnings, refusal };
  }
  if (utilisation > BUS_UTILISATION_LIMITS.warnAbove) {
    warnings.push(`poll plan uses ${Math.round(utilisation * 100)} % of the line ${where}: little room left for retries and commands`);
  }
  return { ok: true, utilisation, busyMsPerSecond, perDevice, warnings };
}

/** Exact minimum number of requests for one table, by dynamic programming over prefixes of its clusters. */
function minimumRequests(table: ReadTable): number {
  const { clusters, maxUnits, maxGapUnits } = table;
  // fewest[j] = fewest requests covering clusters 0..j-1; a request covers a run i..j-1 whose window and gaps fit.
  const fewest: number[] = [0];
  for (let j = 1; j <= clusters.length; j++) {
    let best = Number.POSITIVE_INFINITY;
    const last = clusters[j - 1];
    for (let i = j - 1; i >= 0 && last !== undefined; i--) {
      const first = clusters[i];
      const next = clusters[i + 1];
      if (first === undefined || last.endUnit - first.startUnit + 1 > maxUnits) break;
      if (i < j - 1 && next !== undefined && next.startUnit - first.endUnit - 1 > maxGapUnits) break;
      best = Math.min(best, (fewest[i] ?? Number.POSITIVE_INFINITY) + 1);
    }
    fewest.push(best);
  }
  return fewest[clusters.length] ?? 0;
}

/**
 * The least number of read requests that can cover `points` under the profile's limits (request size, register
 * pairs, bridgeable gap, no split point), computed without the planner's greedy choice: a poll cycle's request
 * count divided by this is the planner's overhead (1 when it is optimal). Throws PlanError when no plan exists.
 */
export function requestsLowerBound(profile: Pick<DeviceProfile, "limits">, points: readonly Point[], opts: PlanOptions = {}): number {
  return readTables(profile, points, opts).reduce((sum, table) => sum + minimumRequests(table), 0);
}
