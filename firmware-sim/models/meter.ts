// A simulated energy meter: its loads draw power while its supply (own relay, or a contactor on a relay module)
// is closed, and its cumulative registers rise with the energy. Also plays the field's tricks: a meter wired
// backwards (reverse flow), a bypass that feeds the pump around the meter, an opened terminal cover, a register
// that rolls over or is reset (meter swap), NaN in an energy register, and a jump.

import { VALUE_TYPES } from "../../protocols/codec/value-types.js";
import { encodeRaw } from "../../protocols/codec/word-codec.js";
import type { DeviceProfile, Point } from "../../protocols/profiles/schema.js";
import { scaleExponent, tableOf } from "../../protocols/profiles/schema.js";
import { ENERGY_UNIT_EXPONENT, type EnergyUnit } from "../../protocols/units.js";
import type { SimDevice, WriteOutcome } from "./device.js";
import { loadWatts, type LoadSpec } from "./loads.js";
import { gaussian, type Random } from "./random.js";
import { RegisterBank, type Table } from "./register-bank.js";

export interface MeterOptions {
  readonly id: string;
  readonly profile: DeviceProfile;
  readonly loads: readonly LoadSpec[];
  readonly initialImportWh?: number;
  readonly initialExportWh?: number;
  readonly voltageV?: number;
  readonly frequencyHz?: number;
  /** Where the register wraps to zero, in Wh (a 6-digit kWh display wraps at 1,000,000 kWh = 1e9 Wh). */
  readonly rolloverWh?: number;
  /** Whether the meter's own relay starts closed (power on). */
  readonly relayClosed?: boolean;
  readonly holesAreIllegal?: boolean;
  readonly random: Random;
}

/** Longest physics step; larger advances are split so schedules and the relay are honoured minute by minute. */
const MAX_STEP_MS = 60_000;

export class MeterModel implements SimDevice {
  readonly bank: RegisterBank;
  readonly profile: DeviceProfile;
  readonly id: string;
  loads: LoadSpec[];
  /** Energy through the meter since it was made (true physics, never wraps). */
  importWh: number;
  exportWh: number;
  /** Energy that reached the load around the meter (bypass): what an illegal tap steals. */
  unmeteredWh = 0;
  relayClosed: boolean;
  coverOpen = false;
  reverseFlow = false;
  bypassW = 0;
  /** Register value = (true energy − offset) mod rollover; a reset (meter swap) moves the offset. */
  private importOffsetWh = 0;
  private readonly rolloverWh: number | undefined;
  /** While set, the import register holds NaN (a failing meter). */
  nanImport = false;
  /** External supply switch (a contactor on a relay module); undefined = no contactor. */
  contactorClosed: (() => boolean) | undefined;
  private powerW = 0;
  private readonly voltageV: number;
  private readonly frequencyHz: number;
  private readonly random: Random;
  private readonly relayPoint: Point | undefined;

  constructor(opts: MeterOptions) {
    this.id = opts.id;
    this.profile = opts.profile;
    this.bank = new RegisterBank(opts.profile, opts.holesAreIllegal ?? false);
    this.loads = [...opts.loads];
    this.importWh = opts.initialImportWh ?? 0;
    this.exportWh = opts.initialExportWh ?? 0;
    this.voltageV = opts.voltageV ?? 230;
    this.frequencyHz = opts.frequencyHz ?? 50;
    this.rolloverWh = opts.rolloverWh;
    this.relayClosed = opts.relayClosed ?? true;
    this.random = opts.random;
    this.relayPoint = this.bank.pointByRole("relay_state");
    this.publish();
  }

  /** Power actually flowing to the loads through the meter, in W (negative when wired backwards). */
  get meteredPowerW(): number {
    return this.powerW;
  }

  supplyClosed(): boolean {
    return this.relayClosed && (this.contactorClosed ? this.contactorClosed() : true);
  }

  demandW(nowMs: number): number {
    return this.loads.reduce((sum, l) => sum + loadWatts(l, nowMs), 0);
  }

  step(dtMs: number, nowMs: number): void {
    let t = nowMs - dtMs;
    while (t < nowMs) {
      const dt = Math.min(MAX_STEP_MS, nowMs - t);
      const mid = t + dt / 2;
      const demand = this.demandW(mid);
      // A bypass feeds the load around the meter, so the pump keeps running even with the relay open.
      const bypassed = Math.min(this.bypassW, demand);
      const metered = this.supplyClosed() ? demand - bypassed : 0;
      this.unmeteredWh += (bypassed * dt) / 3_600_000;
      const wh = (metered * dt) / 3_600_000;
      if (this.reverseFlow) this.exportWh += wh;
      else this.importWh += wh;
      this.powerW = this.reverseFlow ? -metered : metered;
      t += dt;
    }
    this.publish();
  }

  /** Register value of import energy in Wh, as the meter shows it (after resets and rollover). */
  get importRegisterWh(): number {
    const shown = this.importWh - this.importOffsetWh;
    return this.rolloverWh ? shown % this.rolloverWh : shown;
  }

  /** Meter swapped or register cleared: the register restarts from zero, the physics go on. */
  resetRegister(): void {
    this.importOffsetWh = this.importWh;
  }

  /** Make the register jump by `wh` (positive: a corrupted read; negative: a register that goes backwards). */
  jumpRegister(wh: number): void {
    this.importOffsetWh -= wh;
  }

  write(table: Extract<Table, "coil" | "holding">, address: number, values: readonly number[]): WriteOutcome {
    const target = this.profile.writes.find((w) => w.role === "relay" && tableOf(w.fc) === table && w.address === address);
    if (!target || values.length !== 1) return { exception: 2 };
    const v = values[0];
    if (v === target.openValue) this.relayClosed = false;
    else if (v === target.closedValue) this.relayClosed = true;
    else return { exception: 3 };
    this.publish();
    return {};
  }

  private setEnergy(point: Point | undefined, wh: number): void {
    if (!point) return;
    const table = tableOf(point.fc);
    if (table !== "holding" && table !== "input") return;
    const unitExp = ENERGY_UNIT_EXPONENT[point.unit as EnergyUnit];
    const kind = VALUE_TYPES[point.type].kind;
    if (kind === "float") {
      this.bank.setWords(table, point.address, encodeRaw(point.type, point.wordOrder, wh / 10 ** unitExp));
      return;
    }
    // Integer registers count whole steps (0.01 kWh = 10 Wh for DDS238) and wrap at their capacity.
    const stepExp = (scaleExponent(point.scale) ?? 0) + unitExp;
    const capacity = 2 ** VALUE_TYPES[point.type].bits;
    const raw = Math.floor(wh / 10 ** stepExp) % capacity;
    this.bank.setWords(table, point.address, encodeRaw(point.type, point.wordOrder, raw));
  }

  private publish(): void {
    const bank = this.bank;
    const v = this.voltageV + gaussian(this.random, 0.8);
    const phases = this.profile.phases ?? 1;
    const p = this.powerW;
    const perPhaseW = p / phases;
    const current = Math.abs(perPhaseW) / v;
    for (const point of this.profile.points) {
      const table = tableOf(point.fc);
      if (table === "coil" || table === "discrete") continue;
      const kw = point.unit === "kW" || point.unit === "kvar" || point.unit === "kVA";
      switch (point.role) {
        case "voltage":
          bank.set(point.id, v);
          break;
        case "current":
          bank.set(point.id, point.channel === "N" ? 0 : current);
          break;
        case "active_power": {
          const watts = point.channel === undefined || point.channel === "total" ? p : perPhaseW;
          bank.set(point.id, kw ? watts / 1000 : watts);
          break;
        }
        case "apparent_power":
          bank.set(point.id, Math.abs(p) / 0.95 / (kw ? 1000 : 1));
          break;
        case "reactive_power":
          bank.set(point.id, (Math.abs(p) * 0.33) / (kw ? 1000 : 1));
          break;
        case "power_factor":
          bank.set(point.id, p === 0 ? 1 : 0.95);
          break;
        case "frequency":
          bank.set(point.id, this.frequencyHz + gaussian(this.random, 0.01));
          break;
        case "import_energy":
          if (this.nanImport && point.type === "f32") bank.setWords(table, point.address, [0x7fc0, 0x0000]);
          else this.setEnergy(point, this.importRegisterWh);
          break;
        case "export_energy":
          this.setEnergy(point, this.exportWh);
          break;
        case "total_energy":
          this.setEnergy(point, this.importRegisterWh + this.exportWh);
          break;
        case "relay_state":
          bank.set(point.id, this.relayClosed ? 1 : 0);
          break;
        default:
          break;
      }
    }
  }

  describe(): Record<string, unknown> {
    return {
      id: this.id,
      kind: "meter",
      profile: this.profile.id,
      powerW: Math.round(this.powerW),
      importWh: Math.floor(this.importWh),
      importRegisterWh: Math.floor(this.importRegisterWh),
      exportWh: Math.floor(this.exportWh),
      unmeteredWh: Math.floor(this.unmeteredWh),
      relayClosed: this.relayClosed,
      supplyClosed: this.supplyClosed(),
      hasOwnRelay: this.relayPoint !== undefined,
      coverOpen: this.coverOpen,
      reverseFlow: this.reverseFlow,
      bypassW: this.bypassW,
      nanImport: this.nanImport,
      loads: this.loads,
    };
  }
}
