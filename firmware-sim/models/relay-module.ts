// A simulated Modbus relay board: coils switched by FC 05/15, read back by FC 01. Meters bound to a channel see
// their supply follow the coil (a normally-open contactor: coil on = supply closed).

import type { DeviceProfile } from "../../protocols/profiles/schema.js";
import type { SimDevice, WriteOutcome } from "./device.js";
import { RegisterBank, type Table } from "./register-bank.js";

export class RelayModuleModel implements SimDevice {
  readonly bank: RegisterBank;
  /** Every switching, for tests and the control surface: (sim time, channel address, new state). */
  readonly switchLog: { atMs: number; address: number; on: boolean }[] = [];

  constructor(
    readonly id: string,
    readonly profile: DeviceProfile,
    initiallyOn = true,
  ) {
    this.bank = new RegisterBank(profile);
    for (const p of profile.points) if (p.fc === 1) this.bank.setBit("coil", p.address, initiallyOn);
  }

  step(): void {}

  coil(address: number): boolean {
    return this.bank.bit("coil", address);
  }

  write(table: Extract<Table, "coil" | "holding">, address: number, values: readonly number[], nowMs: number): WriteOutcome {
    if (table !== "coil" || !this.bank.readable("coil", address, values.length)) return { exception: 2 };
    values.forEach((v, i) => {
      const on = v !== 0;
      if (this.coil(address + i) !== on) this.switchLog.push({ atMs: nowMs, address: address + i, on });
      this.bank.setBit("coil", address + i, on);
    });
    if (this.switchLog.length > 1000) this.switchLog.splice(0, this.switchLog.length - 1000);
    return {};
  }

  describe(): Record<string, unknown> {
    const coils = this.profile.points.filter((p) => p.fc === 1).map((p) => this.coil(p.address));
    return { id: this.id, kind: "relay-module", profile: this.profile.id, coils };
  }
}
