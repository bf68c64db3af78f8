// The memory image of one simulated device: its coils, discrete inputs, holding and input registers, laid out by
// its profile. Models write engineering values through the profile's codec; the Modbus handler reads raw words.
// Reads of addresses the profile does not define answer ILLEGAL DATA ADDRESS unless they fall inside a gap the
// device fills with zeros (most meters do; `holesAreIllegal` models those that refuse bridged gaps).

import { encodePointValue, pointSpan } from "../../protocols/codec/point-codec.js";
import type { DeviceProfile, Point } from "../../protocols/profiles/schema.js";
import { tableOf } from "../../protocols/profiles/schema.js";

export type Table = "coil" | "discrete" | "holding" | "input";

export class RegisterBank {
  private readonly words: Record<"holding" | "input", Map<number, number>> = { holding: new Map(), input: new Map() };
  private readonly bits: Record<"coil" | "discrete", Map<number, boolean>> = { coil: new Map(), discrete: new Map() };
  private readonly extent: Record<Table, { min: number; max: number } | undefined> = { coil: undefined, discrete: undefined, holding: undefined, input: undefined };
  private readonly pointsById: Map<string, Point>;

  constructor(
    readonly profile: DeviceProfile,
    private readonly holesAreIllegal = false,
  ) {
    this.pointsById = new Map(profile.points.map((p) => [p.id, p]));
    for (const p of profile.points) this.define(tableOf(p.fc), p.address, pointSpan(p));
    for (const w of profile.writes) this.define(tableOf(w.fc), w.address, 1);
  }

  private define(table: Table, address: number, span: number): void {
    for (let a = address; a < address + span; a++) {
      if (table === "coil" || table === "discrete") {
        if (!this.bits[table].has(a)) this.bits[table].set(a, false);
      } else if (!this.words[table].has(a)) this.words[table].set(a, 0);
    }
    const e = this.extent[table];
    this.extent[table] = { min: Math.min(e?.min ?? address, address), max: Math.max(e?.max ?? address + span - 1, address + span - 1) };
  }

  point(id: string): Point {
    const p = this.pointsById.get(id);
    if (!p) throw new Error(`profile ${this.profile.id} has no point ${id}`);
    return p;
  }

  pointByRole(role: Point["role"], channel?: string): Point | undefined {
    return this.profile.points.find((p) => p.role === role && (channel === undefined || p.channel === channel));
  }

  /** Store an engineering value in a point (through the profile's type, word order and scale). */
  set(id: string, value: number): void {
    const p = this.point(id);
    const table = tableOf(p.fc);
    if (table === "coil" || table === "discrete") {
      this.bits[table].set(p.address, value !== 0);
      return;
    }
    if (p.bit !== undefined) {
      const old = this.words[table].get(p.address) ?? 0;
      this.words[table].set(p.address, value ? old | (1 << p.bit) : old & ~(1 << p.bit));
      return;
    }
    encodePointValue(p, value).forEach((w, i) => this.words[table].set(p.address + i, w));
  }

  /** Store raw words (used to play NaN, garbage or rolled-over registers). */
  setWords(table: "holding" | "input", address: number, words: readonly number[]): void {
    words.forEach((w, i) => this.words[table].set(address + i, w & 0xffff));
  }

  bit(table: "coil" | "discrete", address: number): boolean {
    return this.bits[table].get(address) ?? false;
  }

  setBit(table: "coil" | "discrete", address: number, value: boolean): void {
    this.bits[table].set(address, value);
  }

  word(table: "holding" | "input", address: number): number {
    return this.words[table].get(address) ?? 0;
  }

  /** Whether every address of [address, address+count) may be read; false → exception 02. */
  readable(table: Table, address: number, count: number): boolean {
    const e = this.extent[table];
    if (!e || address < e.min || address + count - 1 > e.max) return false;
    if (!this.holesAreIllegal) return true;
    const map = table === "coil" || table === "discrete" ? this.bits[table] : this.words[table];
    for (let a = address; a < address + count; a++) if (!map.has(a)) return false;
    return true;
  }

  readWords(table: "holding" | "input", address: number, count: number): number[] {
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) out[i] = this.words[table].get(address + i) ?? 0;
    return out;
  }

  readBits(table: "coil" | "discrete", address: number, count: number): boolean[] {
    const out = new Array<boolean>(count);
    for (let i = 0; i < count; i++) out[i] = this.bits[table].get(address + i) ?? false;
    return out;
  }
}
