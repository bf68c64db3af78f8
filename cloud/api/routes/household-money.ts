// What an officer does to a household's money over HTTP (issue #4): a cash top-up, a refund of credit paid back in
// cash, a correction — each a NEW posting (invariant 3), each idempotent on a key the client supplies, each written
// to the audit log BEFORE it is posted so that no balance ever moves without a record of who, why and by how much.
//
// Idempotency: the first attempt stores (household, key) → the request and the atMs it posts with
// (household_money_requests); a retry must repeat the request exactly (else 409) and reuses that atMs, so the ledger
// sees identical content under the same posting key and answers "duplicate". A retry after a crash between the
// posting and the answer finds the posting in the ledger by its key and answers it, without re-checking a cap the
// first attempt already passed. A request refused before anything was posted frees its key, so the officer can
// correct it and send it again. Writes run on one serial queue per process, so two top-ups cannot both pass the cap.
//
// Several workers (a PostgreSQL payments store): the key is claimed in the shared store for one attempt at a time,
// with a lease (default 30 s) longer than an attempt takes. A retry that reaches another worker while the first
// attempt is still at work is answered 409 API_IDEMPOTENCY_IN_PROGRESS with Retry-After, and posts nothing; once the
// first has answered, a retry anywhere gets its answer; if the first attempt's worker died, its claim runs out and
// the next retry takes it over (finding the posting in the ledger if one was made). Only the attempt holding the
// claim can free the key. Not yet across workers: the serial queue that keeps two DIFFERENT requests for one
// household from both passing the cap (or the refund limit) is per process.

import { randomUUID } from "node:crypto";
import { checkTopUp } from "../../ledger/grants.js";
import { outstandingGrantFen } from "../../prepaid/next-grant.js";
import { LEDGER_STORE_ERROR_CODES, LedgerStoreError } from "../../ledger/store/store-errors.js";
import type { Ledger, PostingKind } from "../../ledger/store/ledger.js";
import { householdAccountId, openHouseholdAccount, villageCashAccountId } from "../../prepaid/accounts.js";
import { recordTopUp } from "../../prepaid/top-up.js";
import type { Household, Registry } from "../../registry/registry.js";
import type { PaymentsStore } from "../../payments/orders-store.js";
import { fenToYuan } from "../../../protocols/units.js";
import { HttpProblem } from "../problem.js";
import type { AuditSink } from "./audit-sink.js";

export const villageAdjustmentsAccountId = (villageId: string): string => `village:${villageId}:adjustments`;

export interface HouseholdMoneyDeps {
  readonly ledger: Ledger;
  readonly registry: Registry;
  readonly requests: Pick<PaymentsStore, "claimMoneyRequest" | "finishMoneyRequest" | "releaseMoneyRequest">;
  readonly audit: AuditSink;
  readonly prepaid: { regrantHousehold(householdId: string, why: string): Promise<void> };
  readonly now: () => number;
  /** Names this process's attempts in their claims; default randomUUID. */
  readonly newClaimToken?: () => string;
  /** How long an attempt's claim keeps other workers' retries out; default MONEY_REQUEST_LEASE_MS. */
  readonly claimLeaseMs?: number;
}

/** Longer than any attempt takes (a few ledger and registry round trips), short enough for a retry after a crash. */
export const MONEY_REQUEST_LEASE_MS = 30_000;

export type MoneyRequest =
  | { readonly kind: "top-up"; readonly amountFen: number; readonly receiptId: string; readonly reason: string }
  | { readonly kind: "refund"; readonly amountFen: number; readonly receiptId: string; readonly reason: string }
  | { readonly kind: "correction"; readonly amountFen: number; readonly reason: string };

export interface MoneyResult {
  readonly postingId: number;
  readonly duplicate: boolean;
  readonly balanceFen: number;
}

function ledgerKey(household: Household, idempotencyKey: string, request: MoneyRequest): string {
  // A cash top-up keeps top-up.ts's key (top-up/<household>/<receipt>), so the CLI and the API can never post one
  // paper receipt twice between them.
  if (request.kind === "top-up") return `top-up/${household.householdId}/${request.receiptId}`;
  return `${request.kind}/${household.householdId}/${idempotencyKey}`;
}

export function createHouseholdMoney(deps: HouseholdMoneyDeps) {
  const { ledger, registry, audit } = deps;
  let queue: Promise<unknown> = Promise.resolve();
  function serial<T>(work: () => Promise<T>): Promise<T> {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  }

  async function postedEarlier(accountId: string, key: string, atMs: number): Promise<number | undefined> {
    const statement = await ledger.statement(accountId, atMs, atMs + 1);
    return statement.entries.find((e) => e.idempotencyKey === key)?.postingId;
  }

  /**
   * What the household's meters may still draw under the grants their gateways may hold (invariant 4): the energy
   * between each meter's last charged register and the highest limit it may be enforcing, at the highest price.
   * Cash given back must leave that much on the balance, or a gateway that has not yet received a lowered grant
   * (offline, or not acknowledged) would let the farmer spend it twice. A correction is not capped: it fixes the
   * books (a mistyped top-up must come off even though a grant was sized from it); what the grant still allows then
   * shows as a negative balance, a debt on record, and the re-sized grant follows at once.
   */
  async function committedToGrantsFen(household: Household, atMs: number): Promise<number> {
    let committed = 0;
    for (const meter of await registry.metersOfHousehold(household.householdId)) {
      const limitWh = await registry.highestLimitInForceWh(meter.meterId);
      const charge = await ledger.loadChargeState(meter.meterId);
      if (limitWh === undefined || charge === undefined) continue;
      committed += outstandingGrantFen(limitWh, charge.state.lastRegisterWh, await registry.tariffSchedule(meter.tariffId), atMs);
    }
    return committed;
  }

  /** Refuses (422) what the village policy does not allow; the checks of a first attempt only. */
  async function check(household: Household, request: MoneyRequest, balanceFen: number, atMs: number, committedFen: number): Promise<void> {
    const policy = await registry.villagePolicyAt(household.villageId, atMs);
    if (request.kind === "top-up" || (request.kind === "correction" && request.amountFen > 0)) {
      const ok = checkTopUp(balanceFen, request.amountFen, policy.maxBalanceFen);
      if (!ok.ok) {
        throw new HttpProblem(422, "PREPAID_TOP_UP_REFUSED", `the balance would exceed the village's cap of ¥${fenToYuan(policy.maxBalanceFen)}; at most ¥${fenToYuan(ok.maxTopUpFen)} can be added now`);
      }
    }
    const returnableFen = Math.max(0, balanceFen - committedFen);
    if (request.kind === "refund" && request.amountFen > returnableFen) {
      throw new HttpProblem(
        422,
        "PREPAID_REFUND_REFUSED",
        `a refund can return at most ¥${fenToYuan(returnableFen)}: the balance ¥${fenToYuan(balanceFen)} less ¥${fenToYuan(committedFen)} the meters may still draw under the credit their gateways hold`,
      );
    }
  }

  async function post(household: Household, key: string, request: MoneyRequest, actor: string, atMs: number): Promise<number> {
    const accountId = householdAccountId(household.householdId);
    if (request.kind === "top-up") {
      const policy = await registry.villagePolicyAt(household.villageId, atMs);
      const result = await recordTopUp(ledger, registry, { householdId: household.householdId, amountFen: request.amountFen, officerId: actor, receiptId: request.receiptId, atMs, maxBalanceFen: policy.maxBalanceFen });
      // This request is new (its own retries were answered above), so a receipt already on the books means the same
      // paper receipt entered twice: refuse it, and the officer sees it was recorded before.
      if (result.duplicate) {
        throw new LedgerStoreError(LEDGER_STORE_ERROR_CODES.IDEMPOTENCY_CONFLICT, `receipt ${request.receiptId} was already recorded for ${household.householdId} as posting ${result.postingId}`);
      }
      return result.postingId;
    }
    const kind: PostingKind = request.kind;
    // A refund pays cash back out of the village's cash box; a correction moves money against the village's
    // adjustments account, so the box's count is never touched by a bookkeeping fix.
    let line: { counterAccount: string; amountFen: number; memo: string };
    if (request.kind === "refund") {
      line = { counterAccount: villageCashAccountId(household.villageId), amountFen: -request.amountFen, memo: `cash refund ¥${fenToYuan(request.amountFen)}, receipt ${request.receiptId}: ${request.reason}` };
    } else {
      const counterAccount = villageAdjustmentsAccountId(household.villageId);
      await ledger.openAccount({ accountId: counterAccount, kind: "adjustments", villageId: household.villageId });
      line = { counterAccount, amountFen: request.amountFen, memo: `correction ${request.amountFen > 0 ? "+" : "−"}¥${fenToYuan(Math.abs(request.amountFen))}: ${request.reason}` };
    }
    const lines = [
      { accountId, amountFen: line.amountFen },
      { accountId: line.counterAccount, amountFen: -line.amountFen },
    ];
    const result = await ledger.post({ idempotencyKey: key, kind, lines, memo: line.memo, actor: `officer:${actor}`, atMs });
    return result.postingId;
  }

  return {
    /** Apply one request for an officer; the household's scope was checked by the route. */
    apply(household: Household, idempotencyKey: string, request: MoneyRequest, actor: string): Promise<MoneyResult> {
      return serial(async () => {
        await openHouseholdAccount(ledger, household.villageId, household.householdId);
        const accountId = householdAccountId(household.householdId);
        const requestJson = JSON.stringify(request);
        const claimToken = (deps.newClaimToken ?? randomUUID)();
        const nowMs = deps.now();
        const claimed = await deps.requests.claimMoneyRequest({
          householdId: household.householdId,
          idempotencyKey,
          requestJson,
          atMs: nowMs,
          claimToken,
          leaseMs: deps.claimLeaseMs ?? MONEY_REQUEST_LEASE_MS,
        });
        if (claimed.outcome === "different-request") {
          throw new HttpProblem(409, "API_IDEMPOTENCY_CONFLICT", `idempotency key ${idempotencyKey} was used for a different request`);
        }
        if (claimed.outcome === "finished" && claimed.postingId !== undefined && claimed.balanceFen !== undefined) return { postingId: claimed.postingId, duplicate: true, balanceFen: claimed.balanceFen };
        if (claimed.outcome !== "claimed") {
          const retryAfterS = Math.max(1, Math.ceil(((claimed.claimedUntilMs ?? nowMs) - nowMs) / 1000));
          throw new HttpProblem(409, "API_IDEMPOTENCY_IN_PROGRESS", `a request with idempotency key ${idempotencyKey} is still being applied; retry in ${retryAfterS} s`, undefined, {
            "retry-after": String(retryAfterS),
          });
        }
        const release = () => deps.requests.releaseMoneyRequest(household.householdId, idempotencyKey, claimToken);
        const key = ledgerKey(household, idempotencyKey, request);
        let duplicate = true;
        // Under the household's lock, on every worker: a grant being sized from the balance before this refund (or
        // another top-up against the cap) finishes first, and its grant is then in committedToGrantsFen. The earlier
        // posting is looked for inside it too: an attempt whose lease this one took over may have posted meanwhile.
        const postingId = await registry.withHouseholdLock(household.householdId, async () => {
          const earlier = await postedEarlier(accountId, key, claimed.atMs);
          if (earlier !== undefined) return earlier;
          duplicate = false;
          // What the meters may still draw first, then the balance: a charge committing between the two reads
          // makes the check stricter, never looser.
          const committedFen = await committedToGrantsFen(household, claimed.atMs);
          const beforeFen = await ledger.balance(accountId);
          try {
            await check(household, request, beforeFen, claimed.atMs, committedFen);
          } catch (error) {
            await release();
            throw error;
          }
          const delta = request.kind === "refund" ? -request.amountFen : request.amountFen;
          await audit.record({
            actor,
            action: `ledger.${request.kind}`,
            entityType: "household",
            entityId: household.householdId,
            villageId: household.villageId,
            reason: request.reason,
            before: { balanceFen: beforeFen },
            after: { balanceFen: beforeFen + delta, amountFen: delta, idempotencyKey: key, ...(request.kind === "correction" ? {} : { receiptId: request.receiptId }) },
            atMs: deps.now(),
          });
          try {
            return await post(household, key, request, actor, claimed.atMs);
          } catch (error) {
            // The intent is on record; so is its refusal, so the trail never shows a change that did not happen.
            await audit.record({
              actor,
              action: `ledger.${request.kind}-refused`,
              entityType: "household",
              entityId: household.householdId,
              villageId: household.villageId,
              reason: error instanceof Error ? error.message.slice(0, 2000) : String(error),
              after: { idempotencyKey: key },
              atMs: deps.now(),
            });
            await release();
            throw error;
          }
        });
        const balanceFen = await ledger.balance(accountId);
        await deps.requests.finishMoneyRequest(household.householdId, idempotencyKey, postingId, balanceFen);
        if (request.kind === "top-up") await registry.noteTopUp(household.householdId, postingId, deps.now());
        await deps.prepaid.regrantHousehold(household.householdId, request.kind);
        return { postingId, duplicate, balanceFen };
      });
    },
  };
}

export type HouseholdMoney = ReturnType<typeof createHouseholdMoney>;
