// What the charge core consumes: billing readings of a meter's cumulative import register, and the explicit meter
// events that start a register epoch (installation, replacement, rollover). The zod schemas are the boundary check
// for ingest (readings from protocols/mqtt billingReadingSchema) and for the operator API (events).

import { z } from "zod";
import { deviceIdSchema } from "../../protocols/mqtt/messages.js";

const epochMs = z.int().nonnegative();
const wh = z.int().nonnegative();

/**
 * One reading of a meter's cumulative register. registerSeq is the gateway's per-meter billing chain (strictly
 * rising for the lifetime of the meterId, across meter replacements). `epoch`, when the sender knows it, names the
 * register epoch the reading belongs to (0 = since installation, +1 per replacement or rollover); without it the
 * reading is taken to belong to the epoch the ledger is in.
 */
export const meterReadingSchema = z.strictObject({
  meterId: deviceIdSchema,
  registerSeq: z.int().positive(),
  atMs: epochMs,
  registerWh: wh,
  epoch: z.int().nonnegative().optional(),
});

/** Commissioning: the register value from which the farmer pays. Nothing before it is charged. */
export const meterInstalledSchema = z.strictObject({
  type: z.literal("meter-installed"),
  meterId: deviceIdSchema,
  atMs: epochMs,
  initialWh: wh,
});

/** The meter behind meterId was swapped: the old one's last register, and the new one's first. */
export const meterReplacedSchema = z.strictObject({
  type: z.literal("meter-replaced"),
  meterId: deviceIdSchema,
  atMs: epochMs,
  oldFinalWh: wh,
  newInitialWh: wh,
});

/** The register wrapped: it counts modulo wrapWh (it shows 0..wrapWh−1), and passed wrapWh once since the last reading. */
export const rolloverSchema = z.strictObject({
  type: z.literal("rollover"),
  meterId: deviceIdSchema,
  atMs: epochMs,
  wrapWh: z.int().positive(),
});

export const meterEventSchema = z.discriminatedUnion("type", [meterInstalledSchema, meterReplacedSchema, rolloverSchema]);

export type MeterReading = z.infer<typeof meterReadingSchema>;
export type MeterInstalled = z.infer<typeof meterInstalledSchema>;
export type MeterReplaced = z.infer<typeof meterReplacedSchema>;
export type Rollover = z.infer<typeof rolloverSchema>;
export type MeterEvent = z.infer<typeof meterEventSchema>;
export type ChargeInput = MeterReading | MeterEvent;

export function isMeterEvent(input: ChargeInput): input is MeterEvent {
  return "type" in input;
}

/** Two events are the same event when every field is equal (a replay), whatever the key order of the JSON. */
export function sameEvent(a: MeterEvent, b: MeterEvent): boolean {
  switch (a.type) {
    case "meter-installed":
      return b.type === a.type && b.meterId === a.meterId && b.atMs === a.atMs && b.initialWh === a.initialWh;
    case "meter-replaced":
      return b.type === a.type && b.meterId === a.meterId && b.atMs === a.atMs && b.oldFinalWh === a.oldFinalWh && b.newInitialWh === a.newInitialWh;
    case "rollover":
      return b.type === a.type && b.meterId === a.meterId && b.atMs === a.atMs && b.wrapWh === a.wrapWh;
  }
}
