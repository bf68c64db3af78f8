// The one contract every Ledger implementation must pass (ARCHITECTURE.md §5: one shared contract suite per
// interface, run against SQLite and PostgreSQL): double entry, integer fen, idempotency, balances as sums,
// statements, the audit trail, append-only enforced by the database, and applyCharges as one transaction. An
// implementation's test file calls runLedgerContract with a factory for fresh, empty stores.

import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { meterDayDeltas, type MeterDay } from "../../subsidy/meter-days.js";
import type { ChargeInput } from "../charge-inputs.js";
import { chargedFen, chargesFor, emptyChargeState, type ChargeState } from "../charges.js";
import type { Tariff } from "../tariff.js";
import { chargeEntry } from "./charge-entries.js";
import type { Account, ApplyChargesInput, Ledger, LedgerEntry } from "./ledger.js";
import { LEDGER_STORE_ERROR_CODES as C } from "./store-errors.js";

/** A fresh, empty store that can be opened, closed and opened again, seeing what the previous open left. */
export interface LedgerContractStore {
  open(now: () => number): Promise<Ledger>;
  /**
   * Test hook: run one SQL statement on the store through its own connection, bypassing the port — what an operator
   * with a database shell could do. Portable SQL only (plain UPDATE / DELETE on the port's tables).
   */
  rawSql(sql: string): Promise<void>;
  /** Test hook: the rows of one SELECT, through the store's own connection, bypassing the port. */
  rawRows(sql: string): Promise<Record<string, unknown>[]>;
  /** Remove whatever the store left behind (temporary files, schemas). */
  dispose(): Promise<void> | void;
}

const VILLAGE = "v-dongcun";
const ACCOUNTS: readonly Account[] = [
  { accountId: "hh-1", kind: "household-prepaid", villageId: VILLAGE, householdId: "h-1" },
  { accountId: "hh-2", kind: "household-prepaid", villageId: VILLAGE, householdId: "h-2" },
  { accountId: "rev", kind: "revenue-electricity", villageId: VILLAGE },
  { accountId: "pay", kind: "payment-provider", villageId: VILLAGE },
  { accountId: "cash", kind: "village-cash", villageId: VILLAGE },
];
const RECORDED_AT_MS = 1_750_000_000_000;
const T0 = 1_751_000_000_000;

function topUp(key: string, fen: number, atMs = T0, accountId = "hh-1"): LedgerEntry {
  return {
    idempotencyKey: key,
    kind: "top-up",
    lines: [
      { accountId: "pay", amountFen: -fen },
      { accountId, amountFen: fen },
    ],
    memo: `WeChat Pay order ${key}`,
    actor: "provider:wechat",
    atMs,
  };
}

function charge(key: string, fen: number, atMs = T0, accountId = "hh-1"): LedgerEntry {
  return {
    idempotencyKey: key,
    kind: "charge",
    lines: [
      { accountId, amountFen: -fen },
      { accountId: "rev", amountFen: fen },
    ],
    memo: `charge ${key}`,
    actor: "system:charges",
    atMs,
  };
}

const FLAT: readonly Tariff[] = [{ tariffId: "t1", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } }];

export function runLedgerContract(name: string, factory: () => LedgerContractStore): void {
  describe(`Ledger contract: ${name}`, () => {
    let store: LedgerContractStore;
    let ledger: Ledger;
    const clock = (): number => RECORDED_AT_MS;

    beforeEach(async () => {
      store = factory();
      ledger = await store.open(clock);
      for (const account of ACCOUNTS) await ledger.openAccount(account);
    });
    afterEach(async () => {
      await ledger.close();
      await store.dispose();
    });

    describe("accounts", () => {
      it("reads back an opened account, with its household when it has one", async () => {
        expect(await ledger.getAccount("hh-1")).toEqual(ACCOUNTS[0]);
        expect(await ledger.getAccount("rev")).toEqual(ACCOUNTS[2]);
        expect(await ledger.getAccount("nobody")).toBeUndefined();
      });

      it("opens the same account twice as a no-op and refuses the same id with other fields", async () => {
        await ledger.openAccount(ACCOUNTS[0] as Account);
        await expect(ledger.openAccount({ accountId: "hh-1", kind: "village-cash", villageId: VILLAGE })).rejects.toMatchObject({ code: C.ACCOUNT_CONFLICT });
      });

      it("starts every account at zero and refuses the balance of an account never opened", async () => {
        expect(await ledger.balance("hh-2")).toBe(0);
        await expect(ledger.balance("nobody")).rejects.toMatchObject({ code: C.UNKNOWN_ACCOUNT });
      });
    });

    describe("double entry", () => {
      it("posts a balanced entry and every balance is the sum of its lines", async () => {
        const r = await ledger.post(topUp("pay/1", 10_000));
        expect(r.duplicate).toBe(false);
        await ledger.post(charge("charge/m1/1", 2_345));
        expect(await ledger.balance("hh-1")).toBe(7_655);
        expect(await ledger.balance("pay")).toBe(-10_000);
        expect(await ledger.balance("rev")).toBe(2_345);
      });

      it("refuses an entry whose lines do not sum to zero, and writes nothing", async () => {
        const entry = { ...topUp("pay/1", 100), lines: [{ accountId: "pay", amountFen: -100 }, { accountId: "hh-1", amountFen: 101 }] };
        await expect(ledger.post(entry)).rejects.toMatchObject({ code: C.UNBALANCED });
        expect(await ledger.balance("hh-1")).toBe(0);
        expect((await ledger.post(topUp("pay/1", 100))).duplicate).toBe(false);
      });

      it("refuses float, NaN, infinite, unsafe and zero amounts", async () => {
        const bad = [0.5, 100.25, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 0];
        for (const amountFen of bad) {
          const entry = { ...topUp("pay/f", 1), lines: [{ accountId: "pay", amountFen: -amountFen }, { accountId: "hh-1", amountFen }] };
          await expect(ledger.post(entry), String(amountFen)).rejects.toMatchObject({ code: C.NON_INTEGER_AMOUNT });
        }
        // 0.1 + 0.2 − 0.3 is not zero in floats; integers only means the question never comes up.
        const floats = { ...topUp("pay/f", 1), lines: [{ accountId: "pay", amountFen: 0.1 }, { accountId: "pay", amountFen: 0.2 }, { accountId: "hh-1", amountFen: -0.3 }] };
        await expect(ledger.post(floats)).rejects.toMatchObject({ code: C.NON_INTEGER_AMOUNT });
        expect(await ledger.balance("hh-1")).toBe(0);
      });

      it("refuses entries with no line or with one line", async () => {
        await expect(ledger.post({ ...topUp("pay/0", 1), lines: [] })).rejects.toMatchObject({ code: C.TOO_FEW_LINES });
        await expect(ledger.post({ ...topUp("pay/1", 1), lines: [{ accountId: "hh-1", amountFen: 5 }] })).rejects.toMatchObject({ code: C.TOO_FEW_LINES });
      });

      it("refuses an unknown kind, an empty key or actor and a negative time", async () => {
        await expect(ledger.post({ ...topUp("pay/1", 1), kind: "gift" as "top-up" })).rejects.toMatchObject({ code: C.INVALID_ENTRY });
        await expect(ledger.post(topUp("", 1))).rejects.toMatchObject({ code: C.INVALID_ENTRY });
        await expect(ledger.post({ ...topUp("pay/1", 1), actor: "" })).rejects.toMatchObject({ code: C.INVALID_ENTRY });
        await expect(ledger.post(topUp("pay/1", 1, -1))).rejects.toMatchObject({ code: C.INVALID_ENTRY });
      });

      it("refuses U+0000 and lone surrogates in keys, actors, memos and account ids, which PostgreSQL text cannot store", async () => {
        await expect(ledger.post(topUp("pay/\u0000", 1))).rejects.toMatchObject({ code: C.INVALID_ENTRY });
        await expect(ledger.post({ ...topUp("pay/1", 1), memo: "a\u0000b" })).rejects.toMatchObject({ code: C.INVALID_ENTRY });
        await expect(ledger.post({ ...topUp("pay/1", 1), actor: "user\u0000" })).rejects.toMatchObject({ code: C.INVALID_ENTRY });
        await expect(ledger.post(topUp("pay/1", 1, T0, "hh-1\u0000"))).rejects.toMatchObject({ code: C.INVALID_ENTRY });
        await expect(ledger.post({ ...topUp("pay/1", 1), memo: "lone \ud800 surrogate" })).rejects.toMatchObject({ code: C.INVALID_ENTRY });
        await expect(ledger.post({ ...topUp("pay/1", 1), memo: "lone \udc00 surrogate" })).rejects.toMatchObject({ code: C.INVALID_ENTRY });
        expect((await ledger.post({ ...topUp("pay/emoji", 1), memo: "充值 🌾" })).duplicate).toBe(false);
        expect((await ledger.post(topUp("pay/1", 1))).duplicate).toBe(false);
      });

      it("refuses a line to an account never opened, and writes none of the entry's lines", async () => {
        const entry = { ...topUp("pay/1", 100), lines: [{ accountId: "pay", amountFen: -100 }, { accountId: "hh-9", amountFen: 100 }] };
        await expect(ledger.post(entry)).rejects.toMatchObject({ code: C.UNKNOWN_ACCOUNT });
        expect(await ledger.balance("pay")).toBe(0);
      });
    });

    describe("idempotency", () => {
      it("returns the first posting as a duplicate when the same key and content come again, and writes nothing", async () => {
        const first = await ledger.post(topUp("pay/1", 500));
        const again = await ledger.post(topUp("pay/1", 500));
        expect(again).toEqual({ postingId: first.postingId, duplicate: true });
        const reordered = topUp("pay/1", 500);
        expect(await ledger.post({ ...reordered, lines: [...reordered.lines].reverse() })).toEqual({ postingId: first.postingId, duplicate: true });
        expect(await ledger.balance("hh-1")).toBe(500);
        expect((await ledger.statement("hh-1", 0, Number.MAX_SAFE_INTEGER)).entries).toHaveLength(1);
      });

      it("refuses the same key with different content and keeps the first posting", async () => {
        await ledger.post(topUp("pay/1", 500));
        for (const changed of [topUp("pay/1", 501), topUp("pay/1", 500, T0 + 1), topUp("pay/1", 500, T0, "hh-2"), { ...topUp("pay/1", 500), memo: "other" }, { ...topUp("pay/1", 500), kind: "refund" as const }]) {
          await expect(ledger.post(changed)).rejects.toMatchObject({ code: C.IDEMPOTENCY_CONFLICT, retryable: false });
        }
        expect(await ledger.balance("hh-1")).toBe(500);
        expect(await ledger.balance("hh-2")).toBe(0);
      });

      it("keeps balances and idempotency keys across a close and reopen", async () => {
        const first = await ledger.post(topUp("pay/1", 700));
        await ledger.close();
        ledger = await store.open(clock);
        expect(await ledger.balance("hh-1")).toBe(700);
        expect(await ledger.post(topUp("pay/1", 700))).toEqual({ postingId: first.postingId, duplicate: true });
      });
    });

    describe("statements and audit", () => {
      it("lists postings in [fromMs, toMs) by time then posting order, with opening, running and closing balances", async () => {
        await ledger.post(topUp("pay/early", 1_000, T0 - 10));
        await ledger.post(topUp("pay/a", 300, T0 + 20));
        await ledger.post(charge("c/b", 50, T0 + 10));
        await ledger.post(charge("c/c", 25, T0 + 10));
        await ledger.post(charge("c/late", 5, T0 + 30));
        await ledger.post(topUp("pay/other-household", 9, T0 + 15, "hh-2"));
        const s = await ledger.statement("hh-1", T0, T0 + 30);
        expect(s.openingBalanceFen).toBe(1_000);
        expect(s.entries.map((e) => [e.idempotencyKey, e.amountFen, e.balanceAfterFen])).toEqual([
          ["c/b", -50, 950],
          ["c/c", -25, 925],
          ["pay/a", 300, 1_225],
        ]);
        expect(s.closingBalanceFen).toBe(1_225);
        expect(s.entries[0]).toMatchObject({ kind: "charge", actor: "system:charges", memo: "charge c/b", atMs: T0 + 10 });
        await expect(ledger.statement("hh-1", T0 + 1, T0)).rejects.toMatchObject({ code: C.INVALID_ENTRY });
      });

      it("records who, what, why and when for every posting", async () => {
        const r = await ledger.post(topUp("pay/1", 100));
        expect(await ledger.audit(r.postingId)).toEqual({
          postingId: r.postingId,
          idempotencyKey: "pay/1",
          kind: "top-up",
          actor: "provider:wechat",
          memo: "WeChat Pay order pay/1",
          atMs: T0,
          recordedAtMs: RECORDED_AT_MS,
        });
        expect(await ledger.audit(r.postingId + 1000)).toBeUndefined();
      });
    });

    describe("append-only", () => {
      it("refuses UPDATE and DELETE of postings, lines, audit rows and accounts issued as raw SQL", async () => {
        await ledger.post(topUp("pay/1", 100));
        const attempts = [
          "UPDATE ledger_lines SET amount_fen = amount_fen * 2",
          "DELETE FROM ledger_lines",
          "UPDATE ledger_postings SET memo = 'edited'",
          "DELETE FROM ledger_postings",
          "UPDATE ledger_audit SET actor = 'someone else'",
          "DELETE FROM ledger_audit",
          "UPDATE ledger_accounts SET kind = 'village-cash'",
          "DELETE FROM ledger_accounts",
        ];
        for (const sql of attempts) await expect(store.rawSql(sql), sql).rejects.toThrow(/LEDGER_APPEND_ONLY/);
        expect(await ledger.balance("hh-1")).toBe(100);
        expect((await ledger.statement("hh-1", 0, Number.MAX_SAFE_INTEGER)).entries[0]?.memo).toBe("WeChat Pay order pay/1");
      });

      it("fixes a mistake with a correction posting, never an edit", async () => {
        await ledger.post(charge("c/1", 500));
        await ledger.post({ ...topUp("corr/c/1", 200), kind: "correction", lines: [{ accountId: "rev", amountFen: -200 }, { accountId: "hh-1", amountFen: 200 }], memo: "c/1 overcharged by 200 fen", actor: "user:clerk-7" });
        expect(await ledger.balance("hh-1")).toBe(-300);
        expect((await ledger.statement("hh-1", 0, Number.MAX_SAFE_INTEGER)).entries.map((e) => e.kind)).toEqual(["charge", "correction"]);
      });
    });

    describe("charge state", () => {
      const installed = { type: "meter-installed", meterId: "m-1", atMs: T0, initialWh: 1_000 } as const;
      const reading = (registerSeq: number, registerWh: number) => ({ meterId: "m-1", registerSeq, atMs: T0 + registerSeq * 60_000, registerWh });
      const accounts = { householdAccountId: "hh-1", revenueAccountId: "rev" };

      it("has no state for a meter never charged", async () => {
        expect(await ledger.loadChargeState("m-1")).toBeUndefined();
      });

      it("stores chargesFor's state and postings together, and a replayed step charges nothing twice", async () => {
        const step = chargesFor(emptyChargeState(), [installed, reading(1, 11_000), reading(2, 31_000)], FLAT);
        const meter = step.state.meters["m-1"];
        if (meter === undefined) throw new Error("no meter state");
        const entries = step.postings.map((p) => chargeEntry(p, accounts));
        const applied = await ledger.applyCharges("m-1", { expectedRevision: 0, state: meter, entries });
        expect(applied.revision).toBe(1);
        expect(applied.results.every((r) => !r.duplicate)).toBe(true);
        expect(await ledger.loadChargeState("m-1")).toEqual({ revision: 1, state: meter });
        expect(await ledger.balance("hh-1")).toBe(-chargedFen(meter));
        // 30 kWh at ¥0.5283 = 1584.9 → 1585 fen.
        expect(chargedFen(meter)).toBe(1_585);

        const replay = await ledger.applyCharges("m-1", { expectedRevision: 1, state: meter, entries });
        expect(replay.results.every((r) => r.duplicate)).toBe(true);
        expect(await ledger.balance("hh-1")).toBe(-1_585);
      });

      it("writes nothing, neither state nor any posting, when one posting of the step fails", async () => {
        const first = chargesFor(emptyChargeState(), [installed, reading(1, 11_000)], FLAT);
        const m1 = first.state.meters["m-1"];
        if (m1 === undefined) throw new Error("no meter state");
        await ledger.applyCharges("m-1", { expectedRevision: 0, state: m1, entries: first.postings.map((p) => chargeEntry(p, accounts)) });
        const before = await ledger.balance("hh-1");

        const second = chargesFor(first.state, [reading(2, 21_000), reading(3, 41_000)], FLAT);
        const m2 = second.state.meters["m-1"];
        if (m2 === undefined) throw new Error("no meter state");
        const [good, other] = second.postings;
        if (good === undefined || other === undefined) throw new Error("expected two postings");
        // The second posting names an account that does not exist: the failure comes after the first was inserted.
        const entries = [chargeEntry(good, accounts), chargeEntry(other, { householdAccountId: "hh-missing", revenueAccountId: "rev" })];
        await expect(ledger.applyCharges("m-1", { expectedRevision: 1, state: m2, entries })).rejects.toMatchObject({ code: C.UNKNOWN_ACCOUNT });

        expect(await ledger.loadChargeState("m-1")).toEqual({ revision: 1, state: m1 });
        expect(await ledger.balance("hh-1")).toBe(before);
        expect((await ledger.post(chargeEntry(good, accounts))).duplicate).toBe(false);
      });

      it("refuses a step computed from a stale revision, retryably, and writes nothing", async () => {
        const step = chargesFor(emptyChargeState(), [installed, reading(1, 11_000)], FLAT);
        const meter = step.state.meters["m-1"];
        if (meter === undefined) throw new Error("no meter state");
        const entries = step.postings.map((p) => chargeEntry(p, accounts));
        await ledger.applyCharges("m-1", { expectedRevision: 0, state: meter, entries });
        const later = chargesFor(step.state, [reading(2, 12_000)], FLAT);
        const laterMeter = later.state.meters["m-1"];
        if (laterMeter === undefined) throw new Error("no meter state");
        const laterEntries = later.postings.map((p) => chargeEntry(p, accounts));
        await expect(ledger.applyCharges("m-1", { expectedRevision: 0, state: laterMeter, entries: laterEntries })).rejects.toMatchObject({ code: C.CHARGE_STATE_CONFLICT, retryable: true });
        expect((await ledger.loadChargeState("m-1"))?.revision).toBe(1);
        expect(await ledger.balance("hh-1")).toBe(-chargedFen(meter));
      });

      it("refuses a state for another meter", async () => {
        const step = chargesFor(emptyChargeState(), [installed], FLAT);
        const meter = step.state.meters["m-1"];
        if (meter === undefined) throw new Error("no meter state");
        await expect(ledger.applyCharges("m-2", { expectedRevision: 0, state: meter, entries: [] })).rejects.toMatchObject({ code: C.INVALID_ENTRY });
      });
    });

    describe("charge batches", () => {
      const accounts = { householdAccountId: "hh-1", revenueAccountId: "rev" };
      const installed = (meterId: string) => ({ type: "meter-installed", meterId, atMs: T0, initialWh: 0 }) as const;
      const reading = (meterId: string, registerSeq: number, registerWh: number) => ({ meterId, registerSeq, atMs: T0 + registerSeq * 60_000, registerWh });

      /** chargesFor's step for one meter, as applyCharges input, and the state to continue from. */
      function step(from: ChargeState, meterId: string, registerWh: readonly number[], expectedRevision: number, chargeAccounts = accounts): { input: ApplyChargesInput; next: ChargeState } {
        const seq0 = from.meters[meterId]?.lastRegisterSeq ?? 0;
        const inputs = [...(from.meters[meterId] === undefined ? [installed(meterId)] : []), ...registerWh.map((wh, i) => reading(meterId, seq0 + i + 1, wh))];
        const result = chargesFor(from, inputs, FLAT);
        const state = result.state.meters[meterId];
        if (state === undefined) throw new Error(`no state for ${meterId}`);
        return { input: { expectedRevision, state, entries: result.postings.map((p) => chargeEntry(p, chargeAccounts)) }, next: result.state };
      }

      it("returns nothing for an empty batch", async () => {
        expect(await ledger.applyChargesBatch([])).toEqual([]);
      });

      it("applies every item of a batch, reporting each revision and posting in item order", async () => {
        const a = step(emptyChargeState(), "m-a", [10_000], 0);
        const b = step(emptyChargeState(), "m-b", [20_000, 30_000], 0);
        const results = await ledger.applyChargesBatch([
          { meterId: "m-a", input: a.input },
          { meterId: "m-b", input: b.input },
        ]);
        expect(results.map((r) => r.ok && r.revision)).toEqual([1, 1]);
        expect(results.map((r) => r.ok && r.results.length)).toEqual([1, 2]);
        expect(await ledger.loadChargeState("m-a")).toEqual({ revision: 1, state: a.input.state });
        expect(await ledger.loadChargeState("m-b")).toEqual({ revision: 1, state: b.input.state });
        expect(await ledger.balance("hh-1")).toBe(-(chargedFen(a.input.state) + chargedFen(b.input.state)));
      });

      it("rolls back a stale item alone, retryably, and commits the items around it", async () => {
        const first = step(emptyChargeState(), "m-a", [10_000], 0);
        await ledger.applyCharges("m-a", first.input);
        const stale = step(first.next, "m-a", [20_000], 0);
        const b = step(emptyChargeState(), "m-b", [5_000], 0);
        const c = step(emptyChargeState(), "m-c", [7_000], 0);
        const results = await ledger.applyChargesBatch([
          { meterId: "m-b", input: b.input },
          { meterId: "m-a", input: stale.input },
          { meterId: "m-c", input: c.input },
        ]);
        expect(results.map((r) => r.ok)).toEqual([true, false, true]);
        expect(results[1]).toMatchObject({ ok: false, error: { code: C.CHARGE_STATE_CONFLICT, retryable: true } });
        expect(await ledger.loadChargeState("m-a")).toEqual({ revision: 1, state: first.input.state });
        expect(await ledger.balance("hh-1")).toBe(-(chargedFen(first.input.state) + chargedFen(b.input.state) + chargedFen(c.input.state)));
      });

      it("rolls back every posting of an item whose later posting names an unknown account, and nothing else", async () => {
        const a = step(emptyChargeState(), "m-a", [10_000], 0);
        const good = step(emptyChargeState(), "m-b", [10_000], 0);
        const bad = step(good.next, "m-b", [20_000], 1);
        const [okEntry] = bad.input.entries;
        if (okEntry === undefined) throw new Error("expected a posting");
        const missing = { ...okEntry, idempotencyKey: `${okEntry.idempotencyKey}/x`, lines: okEntry.lines.map((l) => (l.accountId === "hh-1" ? { ...l, accountId: "hh-missing" } : l)) };
        const results = await ledger.applyChargesBatch([
          { meterId: "m-b", input: good.input },
          { meterId: "m-b", input: { ...bad.input, entries: [okEntry, missing] } },
          { meterId: "m-a", input: a.input },
        ]);
        expect(results.map((r) => r.ok)).toEqual([true, false, true]);
        expect(results[1]).toMatchObject({ ok: false, error: { code: C.UNKNOWN_ACCOUNT } });
        expect((await ledger.loadChargeState("m-b"))?.revision).toBe(1);
        expect(await ledger.balance("hh-1")).toBe(-(chargedFen(good.input.state) + chargedFen(a.input.state)));
        expect((await ledger.post(okEntry)).duplicate).toBe(false);
      });

      it("reports an idempotency conflict and an invalid item as that item's error", async () => {
        const a = step(emptyChargeState(), "m-a", [10_000], 0);
        const [entry] = a.input.entries;
        if (entry === undefined) throw new Error("expected a posting");
        await ledger.post({ ...entry, memo: "posted first with another memo" });
        const b = step(emptyChargeState(), "m-b", [10_000], 0);
        const results = await ledger.applyChargesBatch([
          { meterId: "m-a", input: a.input },
          { meterId: "m-other", input: b.input },
          { meterId: "m-b", input: { ...b.input, expectedRevision: -1 } },
          { meterId: "m-b", input: { ...b.input, entries: [{ ...entry, idempotencyKey: "unbalanced", lines: [{ accountId: "hh-1", amountFen: -1 }, { accountId: "rev", amountFen: 2 }] }] } },
          { meterId: "m-b", input: b.input },
        ]);
        expect(results.map((r) => (r.ok ? "ok" : r.error.code))).toEqual([C.IDEMPOTENCY_CONFLICT, C.INVALID_ENTRY, C.INVALID_ENTRY, C.UNBALANCED, "ok"]);
        expect(await ledger.loadChargeState("m-a")).toBeUndefined();
        expect((await ledger.loadChargeState("m-b"))?.revision).toBe(1);
      });

      it("applies two items for one meter one after the other: the second sees the first's revision", async () => {
        const first = step(emptyChargeState(), "m-a", [10_000], 0);
        const second = step(first.next, "m-a", [25_000], 1);
        const results = await ledger.applyChargesBatch([
          { meterId: "m-a", input: first.input },
          { meterId: "m-a", input: second.input },
          { meterId: "m-a", input: second.input },
        ]);
        expect(results.map((r) => (r.ok ? r.revision : r.error.code))).toEqual([1, 2, C.CHARGE_STATE_CONFLICT]);
        expect(await ledger.loadChargeState("m-a")).toEqual({ revision: 2, state: second.input.state });
        expect(await ledger.balance("hh-1")).toBe(-chargedFen(second.input.state));
      });

      it("gives the same balances, states and posting outcomes as the same items applied one call at a time", async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(fc.record({ meter: fc.integer({ min: 0, max: 2 }), addWh: fc.integer({ min: 0, max: 50_000 }), stale: fc.boolean() }), { minLength: 1, maxLength: 12 }), async (ops) => {
            run += 1;
            const items: { meterId: string; input: ApplyChargesInput }[] = [];
            let state = emptyChargeState();
            const revisions = new Map<string, number>();
            for (const op of ops) {
              const meterId = `m-batch-${run}-${op.meter}`;
              const revision = revisions.get(meterId) ?? 0;
              const last = state.meters[meterId]?.lastRegisterWh ?? 0;
              const s = step(state, meterId, [last + op.addWh], op.stale && revision > 0 ? revision - 1 : revision);
              items.push({ meterId, input: s.input });
              if (!(op.stale && revision > 0)) {
                state = s.next;
                revisions.set(meterId, revision + 1);
              }
            }
            const before = await ledger.balance("hh-1");
            const batch = await ledger.applyChargesBatch(items);
            const afterBatch = await ledger.balance("hh-1");
            // The same items one call at a time, under fresh meter ids and keys: every outcome and the money must match.
            const renamed = (meterId: string): string => `${meterId}-single`;
            const single: (number | string)[] = [];
            for (const item of items) {
              const input = { ...item.input, state: { ...item.input.state, meterId: renamed(item.meterId) }, entries: item.input.entries.map((e) => ({ ...e, idempotencyKey: `${e.idempotencyKey}/single` })) };
              try {
                single.push((await ledger.applyCharges(renamed(item.meterId), input)).revision);
              } catch (error) {
                single.push((error as { code: string }).code);
              }
            }
            expect(batch.map((r) => (r.ok ? r.revision : r.error.code))).toEqual(single);
            expect((await ledger.balance("hh-1")) - afterBatch).toBe(afterBatch - before);
            for (const meterId of new Set(items.map((i) => i.meterId))) {
              const inBatch = await ledger.loadChargeState(meterId);
              const oneByOne = await ledger.loadChargeState(renamed(meterId));
              expect(oneByOne?.revision).toBe(inBatch?.revision);
              expect(oneByOne && chargedFen(oneByOne.state)).toBe(inBatch && chargedFen(inBatch.state));
            }
          }),
          { numRuns: 10 },
        );
      });
      let run = 0;
    });

    describe("meter days", () => {
      const accounts = { householdAccountId: "hh-1", revenueAccountId: "rev" };
      // 2025-06-27 12:53 Asia/Shanghai; readings every 5 h, so a step of a few readings crosses midnight.
      const at = (registerSeq: number): number => T0 + registerSeq * 5 * 3_600_000;

      /** One chargesFor step of a meter, with its day deltas, as applyCharges input. */
      function dayStep(from: ChargeState, meterId: string, registerWh: readonly number[], expectedRevision: number): { input: ApplyChargesInput; next: ChargeState } {
        const before = from.meters[meterId];
        const seq0 = before?.lastRegisterSeq ?? 0;
        const inputs: ChargeInput[] = [
          ...(before === undefined ? [{ type: "meter-installed", meterId, atMs: T0, initialWh: 0 } as const] : []),
          ...registerWh.map((wh, i) => ({ meterId, registerSeq: seq0 + i + 1, atMs: at(seq0 + i + 1), registerWh: wh })),
        ];
        const result = chargesFor(from, inputs, FLAT);
        const state = result.state.meters[meterId];
        if (state === undefined) throw new Error(`no state for ${meterId}`);
        const meterDays = meterDayDeltas({ meterId, before, inputs, result });
        return { input: { expectedRevision, state, entries: result.postings.map((p) => chargeEntry(p, accounts)), meterDays }, next: result.state };
      }

      async function daysOf(meterId: string): Promise<MeterDay[]> {
        const rows = await store.rawRows(
          `SELECT meter_id, day, energy_wh, charged_fen, night_wh, readings, first_at_ms, last_at_ms, first_register_wh, last_register_wh
             FROM ledger_meter_days WHERE meter_id = '${meterId}' ORDER BY day`,
        );
        // PostgreSQL's int8 comes back as text through a plain client.
        const n = (v: unknown): number => Number(v);
        return rows.map((r) => ({
          meterId: String(r.meter_id), day: String(r.day), energyWh: n(r.energy_wh), chargedFen: n(r.charged_fen), nightWh: n(r.night_wh), readings: n(r.readings),
          firstAtMs: n(r.first_at_ms), lastAtMs: n(r.last_at_ms), firstRegisterWh: n(r.first_register_wh), lastRegisterWh: n(r.last_register_wh),
        }));
      }

      it("writes a step's day rows with its charges: energy and fen per local day, summing to the meter's", async () => {
        const a = dayStep(emptyChargeState(), "m-d", [4_000, 9_000, 9_500, 20_000, 26_000], 0);
        await ledger.applyCharges("m-d", a.input);
        const days = await daysOf("m-d");
        expect(days).toEqual(a.input.meterDays);
        expect(days.length).toBeGreaterThan(1);
        expect(days.reduce((sum, d) => sum + d.energyWh, 0)).toBe(26_000);
        expect(days.reduce((sum, d) => sum + d.chargedFen, 0)).toBe(chargedFen(a.input.state));

        // A second step adds to the day it shares with the first, in a batch this time.
        const b = dayStep(a.next, "m-d", [30_000], 1);
        const [result] = await ledger.applyChargesBatch([{ meterId: "m-d", input: b.input }]);
        expect(result?.ok).toBe(true);
        const after = await daysOf("m-d");
        expect(after.reduce((sum, d) => sum + d.energyWh, 0)).toBe(30_000);
        expect(after.reduce((sum, d) => sum + d.readings, 0)).toBe(6);
        expect(after.reduce((sum, d) => sum + d.chargedFen, 0)).toBe(chargedFen(b.input.state));
        expect(after.at(-1)?.lastRegisterWh).toBe(30_000);
      });

      it("folds two deltas of one day in one item into the row a single step over the same readings writes", async () => {
        const s1 = dayStep(emptyChargeState(), "m-f", [4_000], 0);
        const s2 = dayStep(s1.next, "m-f", [9_000, 9_500], 1);
        const whole = dayStep(emptyChargeState(), "m-f", [4_000, 9_000, 9_500], 0);
        const meterDays = [...(s1.input.meterDays ?? []), ...(s2.input.meterDays ?? [])];
        expect(meterDays.filter((d) => d.day === meterDays[0]?.day)).toHaveLength(2);
        await ledger.applyCharges("m-f", { expectedRevision: 0, state: s2.input.state, entries: [...s1.input.entries, ...s2.input.entries], meterDays });
        expect(await daysOf("m-f")).toEqual(whole.input.meterDays);
      });

      it("writes no day for a step refused as stale, alone or as a batch item, and commits the days of the items around it", async () => {
        const first = dayStep(emptyChargeState(), "m-a", [10_000], 0);
        await ledger.applyCharges("m-a", first.input);
        const stale = dayStep(first.next, "m-a", [20_000, 30_000], 0);
        await expect(ledger.applyCharges("m-a", stale.input)).rejects.toMatchObject({ code: C.CHARGE_STATE_CONFLICT });
        const b = dayStep(emptyChargeState(), "m-b", [5_000], 0);
        const c = dayStep(emptyChargeState(), "m-c", [7_000], 0);
        const results = await ledger.applyChargesBatch([
          { meterId: "m-b", input: b.input },
          { meterId: "m-a", input: stale.input },
          { meterId: "m-c", input: c.input },
        ]);
        expect(results.map((r) => (r.ok ? "ok" : r.error.code))).toEqual(["ok", C.CHARGE_STATE_CONFLICT, "ok"]);
        expect(await daysOf("m-a")).toEqual(first.input.meterDays);
        expect(await daysOf("m-b")).toEqual(b.input.meterDays);
        expect(await daysOf("m-c")).toEqual(c.input.meterDays);
      });

      it("writes no day for an item refused for an unknown account", async () => {
        const good = dayStep(emptyChargeState(), "m-u", [10_000], 0);
        const [entry] = good.input.entries;
        if (entry === undefined) throw new Error("expected a posting");
        const missing = { ...entry, lines: entry.lines.map((l) => (l.accountId === "hh-1" ? { ...l, accountId: "hh-missing" } : l)) };
        const [result] = await ledger.applyChargesBatch([{ meterId: "m-u", input: { ...good.input, entries: [missing] } }]);
        expect(result).toMatchObject({ ok: false, error: { code: C.UNKNOWN_ACCOUNT } });
        expect(await daysOf("m-u")).toEqual([]);
      });

      it("adds nothing twice when a batch is replayed: its postings are duplicates, its stale revisions refuse its days", async () => {
        const a = dayStep(emptyChargeState(), "m-a", [10_000, 15_000], 0);
        const b = dayStep(emptyChargeState(), "m-b", [20_000], 0);
        const items = [
          { meterId: "m-a", input: a.input },
          { meterId: "m-b", input: b.input },
        ];
        expect((await ledger.applyChargesBatch(items)).map((r) => r.ok)).toEqual([true, true]);
        const written = [await daysOf("m-a"), await daysOf("m-b")];
        const replay = await ledger.applyChargesBatch(items);
        expect(replay.map((r) => (r.ok ? "ok" : r.error.code))).toEqual([C.CHARGE_STATE_CONFLICT, C.CHARGE_STATE_CONFLICT]);
        // The step recomputed from the stored state, as the caller does on a conflict: the readings are stale-seq, no day.
        const again = dayStep(a.next, "m-a", [], 1);
        expect(again.input.meterDays).toEqual([]);
        await ledger.applyCharges("m-a", again.input);
        expect([await daysOf("m-a"), await daysOf("m-b")]).toEqual(written);
        expect(await ledger.balance("hh-1")).toBe(-(chargedFen(a.input.state) + chargedFen(b.input.state)));
      });

      it("refuses bad day deltas with LEDGER_INVALID_ENTRY and writes nothing of the item, alone or in a batch", async () => {
        const s = dayStep(emptyChargeState(), "m-x", [10_000], 0);
        const [day] = s.input.meterDays ?? [];
        if (day === undefined) throw new Error("expected a day");
        const bad: Record<string, MeterDay> = {
          "another meter": { ...day, meterId: "m-y" },
          "a float": { ...day, energyWh: day.energyWh + 0.5, lastRegisterWh: day.lastRegisterWh + 0.5 },
          "a negative fen": { ...day, chargedFen: -1 },
          "no calendar day": { ...day, day: "2025-02-30" },
          "a slashed day": { ...day, day: day.day.replaceAll("-", "/") },
          "another day than its readings": { ...day, day: "2025-01-01" },
          "night over energy": { ...day, nightWh: day.energyWh + 1 },
          "energy that is not the count moved": { ...day, energyWh: day.energyWh - 1 },
          "last before first": { ...day, firstAtMs: day.lastAtMs + 1 },
        };
        for (const [why, delta] of Object.entries(bad)) {
          const input = { ...s.input, meterDays: [delta] };
          await expect(ledger.applyCharges("m-x", input), why).rejects.toMatchObject({ code: C.INVALID_ENTRY });
          const results = await ledger.applyChargesBatch([{ meterId: "m-x", input }]);
          expect(results.map((r) => (r.ok ? "ok" : r.error.code)), why).toEqual([C.INVALID_ENTRY]);
        }
        expect(await ledger.loadChargeState("m-x")).toBeUndefined();
        expect(await daysOf("m-x")).toEqual([]);
        expect(await daysOf("m-y")).toEqual([]);
        expect(await ledger.balance("hh-1")).toBe(0);
      });

      it("keeps Σ day energy and fen equal to the meter's charged energy and fen under random readings, batches and replays", async () => {
        let run = 0;
        const readingArb = fc.record({ addWh: fc.integer({ min: 0, max: 30_000 }), gapMs: fc.integer({ min: 60_000, max: 40 * 3_600_000 }), replay: fc.boolean() });
        await fc.assert(
          fc.asyncProperty(fc.array(fc.array(readingArb, { maxLength: 5 }), { minLength: 1, maxLength: 6 }), async (steps) => {
            run += 1;
            const meterId = `m-days-${run}`;
            let state = emptyChargeState();
            let revision = 0;
            let seq = 0;
            let registerWh = 500;
            let atMs = T0;
            const sent: ChargeInput[] = [];
            for (const step of steps) {
              const before = state.meters[meterId];
              const inputs: ChargeInput[] = before === undefined ? [{ type: "meter-installed", meterId, atMs, initialWh: registerWh }] : [];
              for (const r of step) {
                const old = sent[sent.length - 1 - (seq % 3)];
                if (r.replay && old !== undefined) {
                  // A redelivered reading, as the ingest builds it (a new object each message): the charge core ignores it.
                  inputs.push({ ...old });
                  continue;
                }
                seq += 1;
                registerWh += r.addWh;
                atMs += r.gapMs;
                const reading = { meterId, registerSeq: seq, atMs, registerWh };
                inputs.push(reading);
                sent.push(reading);
              }
              const result = chargesFor(state, inputs, FLAT);
              const next = result.state.meters[meterId];
              if (next === undefined) continue;
              const meterDays = meterDayDeltas({ meterId, before, inputs, result });
              const input = { expectedRevision: revision, state: next, entries: result.postings.map((p) => chargeEntry(p, accounts)), meterDays };
              const [outcome] = await ledger.applyChargesBatch([{ meterId, input }]);
              expect(outcome?.ok ? "ok" : outcome?.error.message).toBe("ok");
              // The same step sent again (a redelivered batch) is refused whole.
              await expect(ledger.applyCharges(meterId, input)).rejects.toMatchObject({ code: C.CHARGE_STATE_CONFLICT });
              state = result.state;
              revision += 1;
            }
            const meter = state.meters[meterId];
            const days = await daysOf(meterId);
            expect(days.reduce((sum, d) => sum + d.energyWh, 0)).toBe(meter?.attributedWh ?? 0);
            expect(days.reduce((sum, d) => sum + d.chargedFen, 0)).toBe(meter === undefined ? 0 : chargedFen(meter));
            expect(days.reduce((sum, d) => sum + d.readings, 0)).toBe(seq);
          }),
          { numRuns: 15 },
        );
      });
    });

    describe("properties", () => {
      type Op = { readonly op: "top-up" | "charge"; readonly fen: number } | { readonly op: "replay"; readonly pick: number; readonly change: boolean };
      const opArb: fc.Arbitrary<Op> = fc.oneof(
        fc.record({ op: fc.constantFrom("top-up" as const, "charge" as const), fen: fc.integer({ min: 1, max: 1_000_000 }) }),
        fc.record({ op: fc.constant("replay" as const), pick: fc.nat(), change: fc.boolean() }),
      );
      let run = 0;

      it("balance = Σ distinct postings under random top-ups, charges and replays; no posting lost or doubled", async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(opArb, { maxLength: 30 }), async (ops) => {
            run += 1;
            const hh = `hh-run-${run}`;
            await ledger.openAccount({ accountId: hh, kind: "household-prepaid", villageId: VILLAGE, householdId: hh });
            const posted: LedgerEntry[] = [];
            const postingIds = new Map<string, number>();
            for (const [i, op] of ops.entries()) {
              if (op.op !== "replay") {
                const key = `${hh}/${op.op}/${i}`;
                const entry = op.op === "top-up" ? topUp(key, op.fen, T0 + i, hh) : charge(key, op.fen, T0 + i, hh);
                const r = await ledger.post(entry);
                expect(r.duplicate).toBe(false);
                expect([...postingIds.values()]).not.toContain(r.postingId);
                postingIds.set(key, r.postingId);
                posted.push(entry);
                continue;
              }
              const earlier = posted[op.pick % Math.max(1, posted.length)];
              if (earlier === undefined) continue;
              if (op.change) {
                await expect(ledger.post({ ...earlier, memo: `${earlier.memo} (edited)` })).rejects.toMatchObject({ code: C.IDEMPOTENCY_CONFLICT });
              } else {
                expect(await ledger.post(earlier)).toEqual({ postingId: postingIds.get(earlier.idempotencyKey), duplicate: true });
              }
            }
            const expected = posted.reduce((sum, e) => sum + (e.lines.find((l) => l.accountId === hh)?.amountFen ?? 0), 0);
            expect(await ledger.balance(hh)).toBe(expected);
            const keys = (await ledger.statement(hh, 0, Number.MAX_SAFE_INTEGER)).entries.map((e) => e.idempotencyKey);
            expect(keys).toEqual(posted.map((e) => e.idempotencyKey));
          }),
          { numRuns: 25 },
        );
        // Money is only moved, never made: every account together sums to zero.
        let total = 0;
        for (const a of ["pay", "rev", ...Array.from({ length: run }, (_, i) => `hh-run-${i + 1}`)]) total += await ledger.balance(a);
        expect(total).toBe(0);
      });
    });
  });
}
