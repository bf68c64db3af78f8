// The prepaid shell: billing readings → charges (chargesFor + applyCharges: household debited, revenue credited, in
// one transaction with the meter's charge state) → grant re-sized (next-grant.ts) → when due, a credit.grant
// command persisted (registry_grants: fresh commandId, rising grantSeq, expiresAt) and only then published. A
// top-up re-grants the household's meters at once; command acks are recorded against their grant.
//
// Every step runs on one serial queue, so a grant is always sized from a balance and a register of the same
// moment. Billing comes in group-commit batches from the ingest (onBillingBatch): all the meters of a batch are
// charged in ONE ledger transaction (applyChargesBatch: one fsync), then each household touched is re-granted once,
// still on the queue, so the grant sees exactly the charges that transaction committed. The billing step throws when the ledger refuses it, so the ingest leaves the message unacknowledged and
// it comes back (charges are idempotent on charge/<meterId>/<registerSeq>). Publishing is not awaited by the sink:
// the grant is already stored, and a grant that is not acknowledged before it expires is re-sent with a new sequence.

import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { BillingReadings, Command, CommandAck } from "../../protocols/mqtt/messages.js";
import { chargesFor, emptyChargeState, type ChargeState } from "../ledger/charges.js";
import type { ChargeInput, MeterReading } from "../ledger/charge-inputs.js";
import { chargeEntry } from "../ledger/store/charge-entries.js";
import type { ApplyChargesBatchItem, Ledger } from "../ledger/store/ledger.js";
import type { GrantRecord, Meter, Registry } from "../registry/registry.js";
import { meterDayDeltas } from "../subsidy/meter-days.js";
import { householdAccountId, openHouseholdAccount, villageRevenueAccountId } from "./accounts.js";
import { forEachBounded } from "./bounded-concurrency.js";
import { decideGrant, grantBody, outstandingGrantFen, type CreditGrantBody } from "./next-grant.js";
import { recordTopUp, type TopUpRequest, type TopUpResult } from "./top-up.js";

export type PrepaidLog = Pick<Logger, "info" | "warn" | "error" | "debug">;

export interface PrepaidDeps {
  readonly ledger: Ledger;
  readonly registry: Registry;
  /** Publish one command to a gateway's command topic (QoS 1); resolves on the broker's PUBACK. */
  readonly publishCommand: (gatewayId: string, command: Command) => Promise<void>;
  readonly log: PrepaidLog;
  readonly now?: () => number;
  readonly newCommandId?: () => string;
  /** How long a grant command is valid; default 10 min. */
  readonly commandTtlMs?: number;
  /** Held back from every grant for the overshoot of one poll (next-grant.ts); default 10 fen. */
  readonly cutReserveFen?: number;
  readonly maxBalanceFen?: number;
  /** How many meters (and households) of one billing batch are read and granted at once; default 8. */
  readonly storeConcurrency?: number;
}

/** One billing message and the gateway it came from (the ingest's BillingItem). */
export interface BillingItem {
  readonly readings: BillingReadings;
  readonly gatewayId: string;
}

export interface PrepaidCounters {
  readingsCharged: number;
  postings: number;
  held: number;
  unknownMeter: number;
  grantsSent: number;
  grantsResent: number;
  publishFailures: number;
  acks: number;
}

export interface PrepaidService {
  readonly counters: Readonly<PrepaidCounters>;
  /** The ingest's billing sink, one message; throws when it was not charged (so it is redelivered). */
  onBilling(readings: BillingReadings, gatewayId: string): Promise<void>;
  /** The ingest's group-commit billing sink: one outcome per message, null when charged (see billingBatchNow). */
  onBillingBatch(items: readonly BillingItem[]): Promise<(Error | null)[]>;
  onCommandAck(ack: CommandAck, gatewayId: string): Promise<void>;
  /** Record an officer's cash top-up and re-grant the household's meters at once. */
  topUp(request: Omit<TopUpRequest, "atMs" | "maxBalanceFen"> & { atMs?: number }): Promise<TopUpResult>;
  /** Re-size (and send when due) every grant of one household. */
  regrantHousehold(householdId: string, why: string): Promise<void>;
  balanceFen(householdId: string): Promise<number>;
  /** Resolves when everything queued so far has run. */
  idle(): Promise<void>;
}

export function createPrepaidService(deps: PrepaidDeps): PrepaidService {
  const { ledger, registry, log } = deps;
  const now = deps.now ?? Date.now;
  const newCommandId = deps.newCommandId ?? randomUUID;
  const ttlMs = deps.commandTtlMs ?? 10 * 60_000;
  const cutReserveFen = deps.cutReserveFen ?? 10;
  const concurrency = deps.storeConcurrency ?? 8;
  const counters: PrepaidCounters = { readingsCharged: 0, postings: 0, held: 0, unknownMeter: 0, grantsSent: 0, grantsResent: 0, publishFailures: 0, acks: 0 };
  const opened = new Set<string>();
  let queue: Promise<unknown> = Promise.resolve();

  function serial<T>(work: () => Promise<T>): Promise<T> {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  }

  async function ensureAccounts(householdId: string): Promise<{ villageId: string; overdraftFen: number }> {
    const household = await registry.getHousehold(householdId);
    if (household === undefined) throw new Error(`meter's household ${householdId} is not in the registry`);
    if (!opened.has(householdId)) {
      await openHouseholdAccount(ledger, household.villageId, householdId);
      opened.add(householdId);
    }
    return household;
  }

  /** The applyCharges step for one meter's readings (in registerSeq order), or undefined when nothing changes. */
  async function planCharge(meter: Meter, readings: readonly MeterReading[]): Promise<ApplyChargesBatchItem | undefined> {
    const { villageId } = await ensureAccounts(meter.householdId);
    const loaded = await ledger.loadChargeState(meter.meterId);
    const state: ChargeState = loaded === undefined ? emptyChargeState() : { meters: { [meter.meterId]: loaded.state } };
    const first = readings[0];
    const inputs: ChargeInput[] = [];
    if (loaded === undefined && first !== undefined) {
      // Commissioning: the registered initial register, or else the first reading the cloud ever sees.
      inputs.push({ type: "meter-installed", meterId: meter.meterId, atMs: first.atMs, initialWh: meter.initialWh ?? first.registerWh });
      log.info({ meterId: meter.meterId, initialWh: meter.initialWh ?? first.registerWh }, "prepaid: meter commissioned for charging");
    }
    inputs.push(...readings);
    const tariffs = await registry.tariffSchedule(meter.tariffId);
    const result = chargesFor(state, inputs, tariffs);
    for (const h of result.held) {
      counters.held++;
      log.warn({ meterId: meter.meterId, reason: h.reason, detail: h.detail }, "prepaid: billing input held for review");
    }
    const next = result.state.meters[meter.meterId];
    if (next === undefined || next === loaded?.state) return undefined;
    const accounts = { householdAccountId: householdAccountId(meter.householdId), revenueAccountId: villageRevenueAccountId(villageId) };
    // The day rows come from the same step (its inputs include the commissioning event), and are written in the
    // ledger's charge transaction: settlement's usage never diverges from what was charged.
    const meterDays = meterDayDeltas({ meterId: meter.meterId, before: loaded?.state, inputs, result });
    return { meterId: meter.meterId, input: { expectedRevision: loaded?.revision ?? 0, state: next, entries: result.postings.map((p) => chargeEntry(p, accounts)), meterDays } };
  }

  /**
   * A group-commit batch of billing messages: every meter's readings of the whole batch in one chargesFor step (in
   * registerSeq order, so the same meter in two messages is charged as if they came one after the other), all meters
   * in ONE ledger transaction (applyChargesBatch), then each touched household re-granted once, from the balance and
   * registers that transaction left. Outcomes per message: a message fails when a meter it carries failed.
   */
  async function billingBatchNow(items: readonly BillingItem[]): Promise<(Error | null)[]> {
    const outcome: (Error | null)[] = items.map(() => null);
    const fail = (indexes: Iterable<number>, error: unknown): void => {
      for (const i of indexes) outcome[i] ??= error instanceof Error ? error : new Error(String(error));
    };
    const meters = new Map<string, Meter | undefined>();
    const byMeter = new Map<string, { meter: Meter; readings: MeterReading[]; items: Set<number> }>();
    // The edge guard limits the import register, so that is the register charged and granted on.
    const meterIds = new Set(items.flatMap(({ readings: batch }) => batch.readings.filter((r) => r.role === "import_energy").map((r) => r.meterId)));
    await forEachBounded(meterIds, concurrency, async (meterId) => {
      meters.set(meterId, await registry.getMeter(meterId));
    });
    for (const [index, { readings: batch, gatewayId }] of items.entries()) {
      for (const r of batch.readings) {
        if (r.role !== "import_energy") continue;
        const meter = meters.get(r.meterId);
        if (meter?.gatewayId !== gatewayId) {
          counters.unknownMeter++;
          log.warn({ meterId: r.meterId, gatewayId, registeredGateway: meter?.gatewayId ?? null }, "prepaid: billing for a meter not registered to this gateway; not charged");
          continue;
        }
        let group = byMeter.get(meter.meterId);
        if (group === undefined) {
          group = { meter, readings: [], items: new Set() };
          byMeter.set(meter.meterId, group);
        }
        group.readings.push({ meterId: r.meterId, registerSeq: r.registerSeq, atMs: Date.parse(r.at), registerWh: r.energyWh });
        group.items.add(index);
      }
    }
    const planned: { group: { meter: Meter; readings: MeterReading[]; items: Set<number> }; item: ApplyChargesBatchItem }[] = [];
    const households = new Map<string, Set<number>>();
    const touch = (householdId: string, indexes: Iterable<number>): void => {
      const set = households.get(householdId) ?? new Set<number>();
      for (const i of indexes) set.add(i);
      households.set(householdId, set);
    };
    await forEachBounded(byMeter.values(), concurrency, async (group) => {
      try {
        const item = await planCharge(group.meter, group.readings.sort((a, b) => a.registerSeq - b.registerSeq));
        if (item === undefined) touch(group.meter.householdId, group.items);
        else planned.push({ group, item });
      } catch (error) {
        fail(group.items, error);
      }
    });
    // One transaction whatever order the plans finished in; the meters' order keeps its locks in a stable order.
    planned.sort((x, y) => (x.item.meterId < y.item.meterId ? -1 : x.item.meterId > y.item.meterId ? 1 : 0));
    // Rejects only when the transaction as a whole could not commit: then every message comes back.
    const results = planned.length === 0 ? [] : await ledger.applyChargesBatch(planned.map((p) => p.item));
    planned.forEach(({ group, item }, k) => {
      const result = results[k];
      if (result?.ok !== true) {
        fail(group.items, result?.error ?? new Error(`applyChargesBatch returned no result for meter ${item.meterId}`));
        return;
      }
      counters.readingsCharged += group.readings.length;
      counters.postings += result.results.length;
      touch(group.meter.householdId, group.items);
    });
    // Households are independent; a household's meters are granted one after another (regrantHouseholdNow), since
    // each meter's grant holds back what the others may draw.
    await forEachBounded(households, concurrency, async ([householdId, indexes]) => {
      try {
        await regrantHouseholdNow(householdId, "billing");
      } catch (error) {
        fail(indexes, error);
      }
    });
    return outcome;
  }

  function publish(grant: GrantRecord, body: CreditGrantBody): void {
    const command: Command = {
      v: 1,
      commandId: grant.commandId,
      issuedAt: new Date(grant.issuedAtMs).toISOString(),
      expiresAt: new Date(grant.expiresAtMs).toISOString(),
      command: body,
    };
    deps.publishCommand(grant.gatewayId, command).catch((error: unknown) => {
      counters.publishFailures++;
      log.warn({ err: error, meterId: grant.meterId, grantSeq: grant.grantSeq }, "prepaid: grant publish failed; it is re-sent once it expires unacknowledged");
    });
  }

  function needsResend(last: GrantRecord, nowMs: number): boolean {
    if (last.ackStatus === "done" || last.ackStatus === "accepted") return false;
    // Re-sent (with a new sequence) only when sending again can help: it expired on the way, or the gateway holds a
    // newer sequence than this registry (restored from an older backup). "No guarded meter" will not change by itself.
    if (last.ackStatus === "rejected") return last.ackReason === "stale_sequence" || (last.ackReason?.startsWith("expired") ?? false);
    if (last.ackStatus === "failed") return true;
    return nowMs >= last.expiresAtMs;
  }

  async function regrantMeter(meter: Meter, why: string): Promise<void> {
    const household = await ensureAccounts(meter.householdId);
    const charge = await ledger.loadChargeState(meter.meterId);
    // No charged reading yet: the register the grant would be a limit on is unknown; the first reading grants.
    if (charge === undefined) return;
    const nowMs = now();
    const tariffs = await registry.tariffSchedule(meter.tariffId);
    let otherGrantsFen = 0;
    for (const other of await registry.metersOfHousehold(meter.householdId)) {
      if (other.meterId === meter.meterId) continue;
      // The highest limit the other meter's gateway may be enforcing, not merely the last one sent: a lowered grant
      // that has not reached an offline gateway leaves the higher one in force there.
      const otherLimitWh = await registry.highestLimitInForceWh(other.meterId);
      const otherCharge = await ledger.loadChargeState(other.meterId);
      if (otherLimitWh === undefined || otherCharge === undefined) continue;
      otherGrantsFen += outstandingGrantFen(otherLimitWh, otherCharge.state.lastRegisterWh, await registry.tariffSchedule(other.tariffId), nowMs);
    }
    const balanceFen = await ledger.balance(householdAccountId(meter.householdId));
    const last = await registry.lastGrant(meter.meterId);
    // The village's friendly periods and low-credit stages ride on every grant, so the edge keeps power on in the
    // periods and warns at the village's stages even offline.
    const policy = await registry.villagePolicyAt(household.villageId, nowMs);
    const friendlyPeriods = policy.friendlyPeriods;
    const decision = decideGrant({
      meterId: meter.meterId,
      balanceFen,
      overdraftFen: household.overdraftFen,
      registerWh: charge.state.lastRegisterWh,
      tariffs,
      nowMs,
      lastGrant: last,
      reconnect: meter.reconnect,
      otherGrantsFen,
      cutReserveFen,
      friendlyPeriods,
      lowCredit: policy.lowCredit,
    });
    let body: CreditGrantBody;
    if (decision.send) {
      body = decision.grant;
    } else if (decision.reason === "unchanged" && last !== undefined && needsResend(last, nowMs)) {
      counters.grantsResent++;
      body = grantBody(meter.meterId, last.grantSeq + 1, decision.limitWh, meter.reconnect, friendlyPeriods, decision.warnAtWh);
    } else {
      if (decision.reason === "no-tariff") log.warn({ meterId: meter.meterId, tariffId: meter.tariffId }, "prepaid: no tariff in force; no credit granted");
      return;
    }
    // Stored first: a grant that was published is always one the cloud knows it sent.
    const record = await registry.recordGrant({
      meterId: meter.meterId,
      limitWh: body.limitWh,
      registerWh: charge.state.lastRegisterWh,
      commandId: newCommandId(),
      gatewayId: meter.gatewayId,
      issuedAtMs: nowMs,
      expiresAtMs: nowMs + ttlMs,
      friendlyPeriods: body.friendlyPeriods ?? [],
      ...(body.warnAtWh === undefined ? {} : { warnAtWh: body.warnAtWh }),
    });
    counters.grantsSent++;
    log.info(
      { meterId: meter.meterId, householdId: meter.householdId, grantSeq: record.grantSeq, limitWh: record.limitWh, registerWh: record.registerWh, balanceFen, why },
      "prepaid: credit grant issued",
    );
    publish(record, { ...body, grantSeq: record.grantSeq });
  }

  /** Under the household's lock: each meter's grant holds back what the others may draw, and a refund being checked
   * on another worker must see the grants this stores (registry/household-lock.ts). */
  function regrantHouseholdNow(householdId: string, why: string): Promise<void> {
    return registry.withHouseholdLock(householdId, async () => {
      for (const meter of await registry.metersOfHousehold(householdId)) await regrantMeter(meter, why);
    });
  }

  return {
    counters,
    onBilling(batch, gatewayId) {
      return serial(async () => {
        const [error] = await billingBatchNow([{ readings: batch, gatewayId }]);
        if (error !== null && error !== undefined) throw error;
      });
    },
    onBillingBatch(items) {
      return serial(() => billingBatchNow(items));
    },
    onCommandAck(ack, gatewayId) {
      return serial(async () => {
        counters.acks++;
        const grant = await registry.recordCommandAck(ack.commandId, ack.status, ack.reason, now());
        const fields = { gatewayId, commandId: ack.commandId, status: ack.status, reason: ack.reason ?? null, meterId: grant?.meterId ?? null, grantSeq: grant?.grantSeq ?? null };
        if (ack.status === "rejected" || ack.status === "failed") log.warn(fields, "prepaid: command refused by the gateway");
        else log.info(fields, "prepaid: command ack");
      });
    },
    topUp(request) {
      return serial(async () => {
        // The cap is checked against the balance under the household's lock, so two top-ups on two workers cannot
        // both pass it.
        const result = await registry.withHouseholdLock(request.householdId, () =>
          recordTopUp(ledger, registry, {
            ...request,
            atMs: request.atMs ?? now(),
            ...(deps.maxBalanceFen === undefined ? {} : { maxBalanceFen: deps.maxBalanceFen }),
          }),
        );
        await regrantHouseholdNow(request.householdId, "top-up");
        return result;
      });
    },
    regrantHousehold(householdId, why) {
      return serial(() => regrantHouseholdNow(householdId, why));
    },
    async balanceFen(householdId) {
      await ensureAccounts(householdId);
      return ledger.balance(householdAccountId(householdId));
    },
    idle() {
      return serial(() => Promise.resolve());
    },
  };
}
