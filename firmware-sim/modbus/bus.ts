// One simulated bus: the devices on it by unit id, the faults each one plays, and counters. The transports (TCP,
// RTU on a pty) hand it a unit id and a request PDU and get back what to put on the wire — an answer, silence,
// a corrupted frame, or a dropped connection — so TCP and RTU behave alike.

import { answerPdu } from "./pdu-handler.js";
import { chooseFault, type Fault } from "./faults.js";
import type { SimDevice } from "../models/device.js";
import type { Random } from "../models/random.js";

export type Outcome =
  | { readonly kind: "silent" }
  | { readonly kind: "disconnect" }
  | {
      readonly kind: "answer";
      readonly unitId: number;
      readonly pdu: Uint8Array;
      readonly delayMs: number;
      /** How to damage the frame on the wire, if at all. */
      readonly damage: "bad-crc" | "truncated" | "garbage" | undefined;
    };

export interface BusCounters {
  requests: number;
  answers: number;
  exceptions: number;
  silent: number;
  faultsPlayed: number;
  broadcasts: number;
  framingErrors: number;
}

export class SimBus {
  private readonly devices = new Map<number, SimDevice>();
  private readonly faults = new Map<number, Fault[]>();
  private readonly dead = new Set<number>();
  readonly counters: BusCounters = { requests: 0, answers: 0, exceptions: 0, silent: 0, faultsPlayed: 0, broadcasts: 0, framingErrors: 0 };

  constructor(
    readonly id: string,
    private readonly random: Random,
    private readonly now: () => number,
  ) {}

  attach(unitId: number, device: SimDevice): void {
    if (this.devices.has(unitId)) throw new Error(`bus ${this.id}: unit ${unitId} already taken`);
    this.devices.set(unitId, device);
  }

  units(): [number, SimDevice][] {
    return [...this.devices.entries()];
  }

  unitOf(deviceId: string): number | undefined {
    for (const [unit, d] of this.devices) if (d.id === deviceId) return unit;
    return undefined;
  }

  setAlive(unitId: number, alive: boolean): void {
    if (alive) this.dead.delete(unitId);
    else this.dead.add(unitId);
  }

  isAlive(unitId: number): boolean {
    return !this.dead.has(unitId);
  }

  addFault(unitId: number, fault: Fault): void {
    this.faults.set(unitId, [...(this.faults.get(unitId) ?? []), fault]);
  }

  clearFaults(unitId: number): void {
    this.faults.delete(unitId);
  }

  faultsOf(unitId: number): readonly Fault[] {
    return this.faults.get(unitId) ?? [];
  }

  /** Decide what the bus answers to `pdu` addressed to `unitId`. */
  transact(unitId: number, pdu: Uint8Array): Outcome {
    this.counters.requests++;
    const nowMs = this.now();
    if (unitId === 0) {
      // Broadcast (Serial Line V1.02 §2.1): every device executes writes, none answers.
      this.counters.broadcasts++;
      const fc = pdu[0] ?? 0;
      if (fc === 5 || fc === 6 || fc === 15 || fc === 16) for (const [u, d] of this.devices) if (this.isAlive(u)) answerPdu(d, pdu, nowMs);
      return { kind: "silent" };
    }
    const device = this.devices.get(unitId);
    if (!device || this.dead.has(unitId)) {
      this.counters.silent++;
      return { kind: "silent" };
    }
    const { fault, remaining } = chooseFault(this.faults.get(unitId) ?? [], this.random);
    this.faults.set(unitId, remaining);
    if (fault) this.counters.faultsPlayed++;
    switch (fault?.kind) {
      case "no-answer":
        this.counters.silent++;
        return { kind: "silent" };
      case "disconnect":
        return { kind: "disconnect" };
      case "exception":
        this.counters.exceptions++;
        return { kind: "answer", unitId, pdu: Uint8Array.of(((pdu[0] ?? 0) | 0x80) & 0xff, fault.code), delayMs: 0, damage: undefined };
      default:
        break;
    }
    const answer = answerPdu(device, pdu, nowMs);
    if ((answer[0] ?? 0) & 0x80) this.counters.exceptions++;
    this.counters.answers++;
    return {
      kind: "answer",
      unitId: fault?.kind === "wrong-unit" ? fault.answerAs : unitId,
      pdu: answer,
      delayMs: fault?.kind === "slow" ? fault.delayMs : 0,
      damage: fault?.kind === "bad-crc" || fault?.kind === "truncated" || fault?.kind === "garbage" ? fault.kind : undefined,
    };
  }
}
