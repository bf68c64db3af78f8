// Maps the charge core's postings (charges.ts) to double-entry ledger entries: the household's prepaid account pays
// the village's electricity revenue account. Pure; the accounts come from whoever knows which meter is whose.

import type { ChargePosting } from "../charges.js";
import type { LedgerEntry } from "./ledger.js";

export interface ChargeAccounts {
  readonly householdAccountId: string;
  readonly revenueAccountId: string;
}

export const CHARGE_ACTOR = "system:charges";

export function chargeEntry(posting: ChargePosting, accounts: ChargeAccounts): LedgerEntry {
  return {
    idempotencyKey: posting.idempotencyKey,
    kind: "charge",
    lines: [
      { accountId: accounts.householdAccountId, amountFen: -posting.amountFen },
      { accountId: accounts.revenueAccountId, amountFen: posting.amountFen },
    ],
    memo: `${posting.meterId} seq ${posting.registerSeq} epoch ${posting.epoch}: ${posting.energyWh} Wh at ${posting.priceCentiFenPerKwh} centi-fen/kWh (${posting.segmentKey})`,
    actor: CHARGE_ACTOR,
    atMs: posting.atMs,
  };
}
