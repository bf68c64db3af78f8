// A village's subsidy programme (种粮电费补贴) as stored, versioned data: which crops count as grain, the refund rate,
// the season windows, the cap in kWh per mu per season, the night-use rule, an optional water quota (以电折水), and
// how long the notice stays up. A policy version is never edited: a change is the next version, and every statement
// keeps the exact policy it was settled under, so it can be reproduced years later. Pure (zod only).

import { z } from "zod";
import { cropSchema } from "../registry/land.js";
import { isLocalDay } from "./local-day.js";

const idSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "ids are 1..64 chars of A-Z, a-z, 0-9, '.', '_' and '-'");
const daySchema = z.string().refine(isLocalDay, "a day is YYYY-MM-DD");

export const seasonSchema = z
  .strictObject({
    seasonId: idSchema,
    name: z.string().min(1).max(100),
    /** Inclusive local days (Asia/Shanghai). */
    fromDay: daySchema,
    toDay: daySchema,
  })
  .refine((s) => s.fromDay <= s.toDay, { message: "a season ends on or after the day it begins", path: ["toDay"] });

export const refundRateSchema = z.discriminatedUnion("kind", [
  /** A share of what the household paid for the eligible kWh, in basis points (5000 = half). */
  z.strictObject({ kind: z.literal("share"), shareBp: z.int().min(1).max(10_000) }),
  /** A fixed amount per eligible kWh, in centi-fen per kWh (units.ts: ¥0.30/kWh = 3000). */
  z.strictObject({ kind: z.literal("per-kwh"), centiFenPerKwh: z.int().min(1).max(100_000) }),
]);

export const subsidyPolicyBodySchema = z
  .strictObject({
    name: z.string().min(1).max(200),
    grainCrops: z.array(cropSchema).min(1).max(50),
    refund: refundRateSchema,
    seasons: z.array(seasonSchema).min(1).max(12),
    /** Eligible energy per mu of grain land per season; refunds stop at capWhPerMu × grain mu. */
    capWhPerMu: z.int().min(0).max(100_000_000),
    /**
     * Night use that does not fit the crop: a line whose night share (energy of readings 22:00–06:00) is above
     * maxShareBp is flagged, unless its crop is one that is normally irrigated at night (exemptCrops).
     */
    night: z.strictObject({ maxShareBp: z.int().min(0).max(10_000), exemptCrops: z.array(cropSchema).max(50).default([]) }).optional(),
    /** 以电折水: water = litresPerKwh (the pump's, from the meter binding) × kWh; flagged above quota × grain mu. */
    waterQuotaM3PerMu: z.int().min(1).max(100_000).optional(),
    /** Days the public notice (公示) stays up before the statement can be paid. */
    noticeDays: z.int().min(1).max(60).default(7),
  })
  .refine((p) => new Set(p.seasons.map((s) => s.seasonId)).size === p.seasons.length, { message: "season ids must be unique", path: ["seasons"] });

export const subsidyPolicySchema = z.strictObject({
  villageId: idSchema,
  programmeId: idSchema,
  version: z.int().min(1),
  policy: subsidyPolicyBodySchema,
});

export type Season = z.output<typeof seasonSchema>;
export type RefundRate = z.output<typeof refundRateSchema>;
export type SubsidyPolicyBody = z.output<typeof subsidyPolicyBodySchema>;
export type SubsidyPolicy = z.output<typeof subsidyPolicySchema>;
export type SubsidyPolicyInput = z.input<typeof subsidyPolicySchema>;
