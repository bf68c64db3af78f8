// The zod pieces the domain routes share, so every route refuses the same bad input the same way: ids as the
// registry spells them, money as a positive integer of fen with a ceiling (a typo of extra zeros is a 400, not a
// posting), epoch-millisecond query parameters that must be plain digits, and a reason that says something.

import { z } from "zod";
import { deviceIdSchema } from "../../../protocols/mqtt/messages.js";

export const entityIdSchema = deviceIdSchema;

/** ¥1,000,000: above any village's cap, so the cap (422, saying how much fits) is what normally refuses. */
export const MAX_AMOUNT_FEN = 100_000_000;
export const amountFenSchema = z.int().min(1).max(MAX_AMOUNT_FEN);
export const signedAmountFenSchema = z
  .int()
  .min(-MAX_AMOUNT_FEN)
  .max(MAX_AMOUNT_FEN)
  .refine((n) => n !== 0, "a correction of 0 fen changes nothing");

export const idempotencyKeySchema = z.string().regex(/^[A-Za-z0-9_.:-]{8,100}$/, "an idempotency key is 8..100 chars of A-Z, a-z, 0-9, '_', '.', ':' and '-' (a UUID fits)");
export const receiptIdSchema = z.string().regex(/^[A-Za-z0-9_.:/-]{1,64}$/, "a receipt id is 1..64 chars of A-Z, a-z, 0-9 and _ . : / -");
export const reasonSchema = z.string().trim().min(3, "say why, in at least 3 characters").max(500);

/** An epoch-ms query parameter: digits only (no "1e3", no "", no negative). */
export const epochMsQuerySchema = z
  .string()
  .regex(/^\d{1,15}$/, "epoch milliseconds, digits only")
  .transform(Number);

export const householdParamsSchema = z.strictObject({ householdId: entityIdSchema });
export const villageParamsSchema = z.strictObject({ villageId: entityIdSchema });
export const meterParamsSchema = z.strictObject({ meterId: entityIdSchema });
