// Pure check of a cumulative energy register before it may become a billing reading (invariant 2 and 9): NaN,
// infinity, a negative value, a register that went backwards, or a rise larger than the meter's maximum power
// allows in the time since the last good reading becomes a tamper event instead — never a charge. The baseline
// always moves to the latest decodable value, so one corrupt read costs two suspect readings, not a stuck meter.

import type { PointReading } from "../../protocols/codec/point-codec.js";
import type { Point } from "../../protocols/profiles/schema.js";
import { scaleExponent } from "../../protocols/profiles/schema.js";
import { VALUE_TYPES } from "../../protocols/codec/value-types.js";
import { floatEnergyToWh, integerRegisterToWh, type EnergyUnit, type WhConversion } from "../../protocols/units.js";

export interface EnergyBaseline {
  readonly registerWh: number;
  readonly atMs: number;
}

export type EnergyVerdict =
  | { readonly kind: "billing"; readonly wh: number; readonly conversion: WhConversion; readonly baseline: EnergyBaseline }
  | {
      readonly kind: "tamper";
      readonly tamperKind: "not_a_number" | "energy_backwards" | "energy_jump";
      readonly detail: string;
      readonly registerWh: number | undefined;
      readonly baseline: EnergyBaseline | undefined;
    };

/** Energy in whole Wh from a decoded energy point: exact for integer registers, nearest Wh (reported) for floats. */
export function energyWhOf(point: Point, reading: Extract<PointReading, { ok: true }>): WhConversion {
  const unit = point.unit as EnergyUnit;
  if (VALUE_TYPES[point.type].kind === "float") return floatEnergyToWh(reading.value, unit, "nearest");
  return integerRegisterToWh(reading.raw, scaleExponent(point.scale) ?? 0, unit, "floor");
}

export interface EnergyCheckOptions {
  /** Meter's maximum power (profile maxPowerW): the register cannot rise faster than this. */
  readonly maxPowerW: number;
  /** Slack for register resolution and clock jitter, in Wh. */
  readonly slackWh?: number;
}

export function checkEnergy(point: Point, reading: PointReading, baseline: EnergyBaseline | undefined, atMs: number, opts: EnergyCheckOptions): EnergyVerdict {
  if (!reading.ok) {
    return { kind: "tamper", tamperKind: "not_a_number", detail: `${point.id}: ${reading.code} (${reading.detail})`, registerWh: undefined, baseline };
  }
  let conversion: WhConversion;
  try {
    conversion = energyWhOf(point, reading);
  } catch (err) {
    return { kind: "tamper", tamperKind: "not_a_number", detail: `${point.id}: ${(err as Error).message}`, registerWh: undefined, baseline };
  }
  const wh = conversion.wh;
  const next: EnergyBaseline = { registerWh: wh, atMs };
  if (wh < 0) return { kind: "tamper", tamperKind: "energy_backwards", detail: `${point.id} is negative (${wh} Wh)`, registerWh: wh, baseline: next };
  if (baseline) {
    if (wh < baseline.registerWh) {
      return { kind: "tamper", tamperKind: "energy_backwards", detail: `${point.id} fell from ${baseline.registerWh} to ${wh} Wh`, registerWh: wh, baseline: next };
    }
    const elapsedMs = Math.max(0, atMs - baseline.atMs);
    const step = VALUE_TYPES[point.type].kind === "float" ? 1 : 10 ** Math.max(0, (scaleExponent(point.scale) ?? 0) + (point.unit === "kWh" ? 3 : point.unit === "MWh" ? 6 : 0));
    const allowed = (opts.maxPowerW * 1.1 * elapsedMs) / 3_600_000 + step + (opts.slackWh ?? 10);
    if (wh - baseline.registerWh > allowed) {
      return {
        kind: "tamper",
        tamperKind: "energy_jump",
        detail: `${point.id} rose ${wh - baseline.registerWh} Wh in ${Math.round(elapsedMs / 1000)} s; ${Math.floor(allowed)} Wh is the most ${opts.maxPowerW} W allows`,
        registerWh: wh,
        baseline: next,
      };
    }
  }
  return { kind: "billing", wh, conversion, baseline: next };
}
