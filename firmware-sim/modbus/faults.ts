// Faults as data: what a simulated device does wrong on the wire. A fault may apply to a share of requests
// (probability, drawn from the scenario's seeded PRNG) and a limited number of times (count). Choosing the fault
// for a request is a pure function so tests can check it without sockets.

import { z } from "zod";
import type { Random } from "../models/random.js";

const common = {
  /** Share of requests the fault applies to (1 = all). */
  probability: z.number().min(0).max(1).default(1),
  /** Apply this many times, then forget the fault. Omit for "until cleared". */
  count: z.number().int().positive().optional(),
};

export const faultSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("no-answer"), ...common }).strict(),
  z.object({ kind: z.literal("exception"), code: z.union([z.literal(2), z.literal(4), z.literal(6)]), ...common }).strict(),
  z.object({ kind: z.literal("bad-crc"), ...common }).strict(),
  z.object({ kind: z.literal("truncated"), ...common }).strict(),
  z.object({ kind: z.literal("garbage"), ...common }).strict(),
  z.object({ kind: z.literal("slow"), delayMs: z.number().int().min(1).max(60_000), ...common }).strict(),
  z.object({ kind: z.literal("disconnect"), ...common }).strict(),
  z.object({ kind: z.literal("wrong-unit"), answerAs: z.number().int().min(1).max(247), ...common }).strict(),
]);
export type Fault = z.output<typeof faultSchema>;
export type FaultInput = z.input<typeof faultSchema>;

export const FAULT_KINDS = faultSchema.options.map((o) => o.shape.kind.value);

/**
 * Pick the fault that applies to this request (the first whose dice roll succeeds) and consume one of its
 * counts; returns the remaining fault list too.
 */
export function chooseFault(faults: readonly Fault[], random: Random): { fault: Fault | undefined; remaining: Fault[] } {
  const remaining = [...faults];
  for (let i = 0; i < remaining.length; i++) {
    const f = remaining[i] as Fault;
    if (f.probability < 1 && random() >= f.probability) continue;
    if (f.count !== undefined) {
      if (f.count <= 1) remaining.splice(i, 1);
      else remaining[i] = { ...f, count: f.count - 1 };
    }
    return { fault: f, remaining };
  }
  return { fault: undefined, remaining };
}
