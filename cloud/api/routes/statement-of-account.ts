// A household's statement of account for a date range (issue #4): the ledger's statement of its prepaid account
// (opening balance, every top-up / charge / refund / correction line with the balance after it, closing balance —
// opening + Σ lines = closing, to the fen, because both come from the same postings), totals per kind, and the
// energy each of its meters drew per day (daily-energy.ts says which source and why).

import type { Ledger, PostingKind } from "../../ledger/store/ledger.js";
import { householdAccountId, openHouseholdAccount } from "../../prepaid/accounts.js";
import type { Household, Registry } from "../../registry/registry.js";
import type { TelemetryStore } from "../../telemetry/sink.js";
import { dailyEnergyFromCharges, dailyEnergyFromRegister, DAY_MS, type DailyEnergy } from "./daily-energy.js";

export interface EnergySeriesOptions {
  /** The telemetry point of a meter's import-energy register; default "importEnergy" (every meter profile's id). */
  readonly pointId?: string;
  /** The unit that point is stored in; default "kWh" (what every meter profile reports). */
  readonly unit?: "Wh" | "kWh";
}

export interface StatementLine {
  readonly postingId: number;
  readonly kind: PostingKind;
  readonly atMs: number;
  readonly amountFen: number;
  readonly balanceAfterFen: number;
  readonly memo: string;
  readonly actor: string;
}

export interface MeterEnergy {
  readonly meterId: string;
  readonly source: "telemetry" | "charges" | "none";
  readonly days: DailyEnergy[];
}

export interface StatementOfAccount {
  readonly householdId: string;
  readonly villageId: string;
  readonly fromMs: number;
  readonly toMs: number;
  readonly openingBalanceFen: number;
  readonly closingBalanceFen: number;
  readonly totals: Record<PostingKind, number>;
  readonly lines: StatementLine[];
  readonly energy: MeterEnergy[];
}

const HOUR_MS = 3_600_000;

export async function statementOfAccount(
  deps: { ledger: Ledger; registry: Registry; telemetry?: Pick<TelemetryStore, "query"> | undefined; energy?: EnergySeriesOptions | undefined },
  household: Household,
  fromMs: number,
  toMs: number,
): Promise<StatementOfAccount> {
  await openHouseholdAccount(deps.ledger, household.villageId, household.householdId);
  const statement = await deps.ledger.statement(householdAccountId(household.householdId), fromMs, toMs);
  const totals: Record<PostingKind, number> = { "top-up": 0, charge: 0, refund: 0, correction: 0, subsidy: 0 };
  for (const e of statement.entries) totals[e.kind] += e.amountFen;
  const pointId = deps.energy?.pointId ?? "importEnergy";
  const toWh = deps.energy?.unit === "Wh" ? (v: number) => Math.round(v) : (v: number) => Math.round(v * 1000);
  const energy: MeterEnergy[] = [];
  for (const meter of await deps.registry.metersOfHousehold(household.householdId)) {
    let series: DailyEnergy[] = [];
    if (deps.telemetry !== undefined) {
      // One day before the range, so the first day has a baseline; hourly buckets keep the query ≤ 24 points a day.
      // min is the bucket's first register: the register only rises within an epoch.
      const points = await deps.telemetry.query({ deviceId: meter.meterId, pointId, gatewayId: meter.gatewayId, fromMs: Math.max(0, fromMs - DAY_MS), toMs, everyMs: HOUR_MS });
      if (points.length > 0) {
        series = dailyEnergyFromRegister(points.map((p) => ({ atMs: p.atMs, firstWh: toWh(p.min), lastWh: toWh(p.last) })), fromMs, toMs);
        energy.push({ meterId: meter.meterId, source: "telemetry", days: series });
        continue;
      }
    }
    series = dailyEnergyFromCharges(statement.entries, meter.meterId);
    energy.push({ meterId: meter.meterId, source: series.length > 0 ? "charges" : "none", days: series });
  }
  return {
    householdId: household.householdId,
    villageId: household.villageId,
    fromMs,
    toMs,
    openingBalanceFen: statement.openingBalanceFen,
    closingBalanceFen: statement.closingBalanceFen,
    totals,
    lines: statement.entries.map((e) => ({ postingId: e.postingId, kind: e.kind, atMs: e.atMs, amountFen: e.amountFen, balanceAfterFen: e.balanceAfterFen, memo: e.memo, actor: e.actor })),
    energy,
  };
}
