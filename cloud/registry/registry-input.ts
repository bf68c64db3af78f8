// The registry's input checks that both engines (SQLite registry.ts + land.ts, PostgreSQL postgres-registry.ts +
// postgres-land.ts) run before touching a table, so a bad value is refused the same way, with the same code and the
// field named, whichever database is behind the port. Pure: zod and the error class only.

import { z } from "zod";
import { deviceIdSchema, friendlyPeriodSchema, gatewayIdSchema, warnAtWhSchema } from "../../protocols/mqtt/messages.js";
import { issuesToText } from "../../protocols/validation.js";
import { RegistryError, REGISTRY_ERROR_CODES as C } from "./errors.js";

/** `input` parsed by `schema`, or REGISTRY_INVALID_INPUT listing every issue with its path. */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown, what: string): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw new RegistryError(C.INVALID, `${what} is invalid:\n${issuesToText(result.error.issues)}`);
  return result.data;
}

const epochMsSchema = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
const whSchema = z.int().min(0).max(Number.MAX_SAFE_INTEGER);

/** A grant as the prepaid service hands it over, before the registry gives it its sequence number. */
export const newGrantSchema = z.strictObject({
  meterId: deviceIdSchema,
  limitWh: whSchema,
  registerWh: whSchema,
  commandId: z.string().min(1).max(64),
  gatewayId: gatewayIdSchema,
  issuedAtMs: epochMsSchema,
  expiresAtMs: epochMsSchema,
  friendlyPeriods: z.array(friendlyPeriodSchema).max(16).optional(),
  warnAtWh: warnAtWhSchema.optional(),
});

export const commandAckInputSchema = z.strictObject({
  commandId: z.string().min(1).max(64),
  status: z.string().min(1).max(32),
  reason: z.string().max(1000).optional(),
  atMs: epochMsSchema,
});

export const topUpNoticeInputSchema = z.strictObject({
  householdId: deviceIdSchema,
  postingId: z.int().min(1).max(Number.MAX_SAFE_INTEGER),
  atMs: epochMsSchema,
});

export const uplinkInputSchema = z.strictObject({
  gatewayId: gatewayIdSchema,
  kind: z.string().min(1).max(32),
  seq: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  atMs: epochMsSchema,
});

export const gatewayStatusInputSchema = z.strictObject({
  gatewayId: gatewayIdSchema,
  state: z.string().min(1).max(32),
  at: z.string().max(64).optional(),
  reason: z.string().max(1000).optional(),
  atMs: epochMsSchema,
});

/** A topUpNoticesAfter cursor: 0 for "from the start". */
export const noticeCursorSchema = z.int().min(0).max(Number.MAX_SAFE_INTEGER);

export const cropFromMsSchema = epochMsSchema;
export const recordedBySchema = z.string().min(1).max(64);
export const litresPerKwhSchema = z.int().min(1).max(10_000_000);
