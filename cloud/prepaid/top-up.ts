// Recording a cash top-up taken by a village officer: one balanced posting (village cash box → household prepaid
// account) with the idempotency key top-up/<householdId>/<receiptId>, checked against the stored-credit cap, and a
// notice row so a serving cloud re-grants the household's meters even when the top-up came from another process.

import { AgriError } from "../../protocols/errors.js";
import { fenToYuan } from "../../protocols/units.js";
import { checkTopUp } from "../ledger/grants.js";
import type { Ledger } from "../ledger/store/ledger.js";
import { LEDGER_STORE_ERROR_CODES, LedgerStoreError } from "../ledger/store/store-errors.js";
import type { Registry } from "../registry/registry.js";
import { householdAccountId, openHouseholdAccount, villageCashAccountId } from "./accounts.js";
import { DEFAULT_MAX_BALANCE_FEN } from "./village-policy.js";

export const PREPAID_ERROR_CODES = {
  UNKNOWN_HOUSEHOLD: "PREPAID_UNKNOWN_HOUSEHOLD",
  TOP_UP_REFUSED: "PREPAID_TOP_UP_REFUSED",
} as const;

export class PrepaidError extends AgriError {
  constructor(code: (typeof PREPAID_ERROR_CODES)[keyof typeof PREPAID_ERROR_CODES], message: string) {
    super(code, false, message);
  }
}

export { DEFAULT_MAX_BALANCE_FEN };

export interface TopUpRequest {
  readonly householdId: string;
  readonly amountFen: number;
  readonly officerId: string;
  /** The paper receipt's number (or any id unique per household): a retry with the same id posts nothing twice. */
  readonly receiptId: string;
  readonly atMs: number;
  readonly maxBalanceFen?: number;
}

export interface TopUpResult {
  readonly postingId: number;
  readonly duplicate: boolean;
  readonly balanceFen: number;
}

export async function recordTopUp(ledger: Ledger, registry: Registry, request: TopUpRequest): Promise<TopUpResult> {
  const household = await registry.getHousehold(request.householdId);
  if (household === undefined) throw new PrepaidError(PREPAID_ERROR_CODES.UNKNOWN_HOUSEHOLD, `no household ${request.householdId}`);
  await openHouseholdAccount(ledger, household.villageId, household.householdId);
  const accountId = householdAccountId(household.householdId);
  const idempotencyKey = `top-up/${household.householdId}/${request.receiptId}`;
  // A retry of the same receipt (the same amount, by anyone, at any later time) is the top-up already recorded,
  // even when the balance is now near the cap; the same receipt with another amount is refused as a conflict.
  const replay = async (): Promise<TopUpResult | undefined> => {
    const earlier = await findPosting(ledger, accountId, idempotencyKey);
    if (earlier === undefined) return undefined;
    if (earlier.amountFen !== request.amountFen) {
      throw new LedgerStoreError(LEDGER_STORE_ERROR_CODES.IDEMPOTENCY_CONFLICT, `${idempotencyKey} was posted as posting ${earlier.postingId} for ¥${fenToYuan(earlier.amountFen)}, not ¥${fenToYuan(request.amountFen)}`);
    }
    return { postingId: earlier.postingId, duplicate: true, balanceFen: await ledger.balance(accountId) };
  };
  const before = await ledger.balance(accountId);
  const check = checkTopUp(before, request.amountFen, request.maxBalanceFen ?? DEFAULT_MAX_BALANCE_FEN);
  if (!check.ok) {
    const earlier = await replay();
    if (earlier !== undefined) return earlier;
    throw new PrepaidError(
      PREPAID_ERROR_CODES.TOP_UP_REFUSED,
      check.reason === "not-positive" ? "a top-up must be more than ¥0.00" : `the balance would exceed the cap; at most ¥${fenToYuan(check.maxTopUpFen)} can be added now`,
    );
  }
  let result;
  try {
    result = await ledger.post({
      idempotencyKey,
      kind: "top-up",
      lines: [
        { accountId, amountFen: request.amountFen },
        { accountId: villageCashAccountId(household.villageId), amountFen: -request.amountFen },
      ],
      memo: `cash top-up ¥${fenToYuan(request.amountFen)}, receipt ${request.receiptId}`,
      actor: `officer:${request.officerId}`,
      atMs: request.atMs,
    });
  } catch (error) {
    if (error instanceof LedgerStoreError && error.code === LEDGER_STORE_ERROR_CODES.IDEMPOTENCY_CONFLICT) {
      const earlier = await replay();
      if (earlier !== undefined) return earlier;
    }
    throw error;
  }
  await registry.noteTopUp(household.householdId, result.postingId, request.atMs);
  return { ...result, balanceFen: await ledger.balance(accountId) };
}

/** The household account's statement entry posted under `idempotencyKey` (a scan; only retries come here). */
async function findPosting(ledger: Ledger, accountId: string, idempotencyKey: string): Promise<{ postingId: number; amountFen: number } | undefined> {
  const statement = await ledger.statement(accountId, 0, Number.MAX_SAFE_INTEGER);
  const entry = statement.entries.find((e) => e.idempotencyKey === idempotencyKey);
  return entry === undefined ? undefined : { postingId: entry.postingId, amountFen: entry.amountFen };
}
