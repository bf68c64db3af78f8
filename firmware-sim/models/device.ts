// What every simulated device offers the Modbus servers and the field: a register bank, a physics step, and a
// write hook that may refuse a write with a Modbus exception code.

import type { DeviceProfile } from "../../protocols/profiles/schema.js";
import type { RegisterBank, Table } from "./register-bank.js";

export interface WriteOutcome {
  /** Modbus exception to answer instead of the echo (e.g. 2 illegal address, 3 illegal value, 4 device failure). */
  readonly exception?: number;
}

export interface SimDevice {
  readonly id: string;
  readonly profile: DeviceProfile;
  readonly bank: RegisterBank;
  /** Advance the device's physics by dtMs of simulated time ending at nowMs (epoch ms, simulated clock). */
  step(dtMs: number, nowMs: number): void;
  /** A master wrote coils or registers; the device updates its state or refuses. */
  write(table: Extract<Table, "coil" | "holding">, address: number, values: readonly number[], nowMs: number): WriteOutcome;
  /** A snapshot for the control surface and tests. */
  describe(): Record<string, unknown>;
}
