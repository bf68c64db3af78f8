// The one contract every payments store engine must pass (ARCHITECTURE.md §5: one shared contract suite per
// interface, run against SQLite and PostgreSQL): the order state machine (created → paid | expired | failed), the
// reservation that ties an order to one provider transaction, the callback log, the money-request claims (new,
// in-progress under a live lease, taken over once it ran out, finished, different request, released only by its
// holder), bad arguments refused as PAYMENT_INVALID_INPUT, and the races several workers run: stores opened side by
// side on one database (two SQLite handles on one file, two pools on one PostgreSQL database) claiming, reserving and
// marking the same rows at once. An engine's test file calls runPaymentsStoreContract with a factory for fresh stores.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PAYMENT_ERROR_CODES as C } from "./errors.js";
import type { NewMoneyRequest, NewOrder, PaymentsStore } from "./orders-store.js";
import { refusal } from "../../test/harness/refusal.js";

/** A fresh, empty database that stores can be opened on, side by side or one after another. */
export interface PaymentsContractStore {
  open(now: () => number): Promise<PaymentsStore>;
  dispose(): Promise<void> | void;
}

const T0 = 1_780_000_000_000;
const TTL_MS = 15 * 60_000;

const order = (orderId: string, more: Partial<NewOrder> = {}): NewOrder => ({
  orderId,
  provider: "local",
  householdId: "hh-li",
  villageId: "v1",
  amountFen: 2_000,
  createdBy: "farmer-li",
  createdAtMs: T0,
  expiresAtMs: T0 + TTL_MS,
  payUrl: `https://pay.invalid/${orderId}`,
  qrPayload: `qr:${orderId}`,
  ...more,
});

const request = (key: string, more: Partial<NewMoneyRequest> = {}): NewMoneyRequest => ({
  householdId: "hh-li",
  idempotencyKey: key,
  requestJson: JSON.stringify({ kind: "top-up", amountFen: 1_000, receiptId: key, reason: "cash" }),
  atMs: T0,
  ...more,
});


export function runPaymentsStoreContract(name: string, factory: () => PaymentsContractStore): void {
  describe(`PaymentsStore contract: ${name}`, () => {
    let backing: PaymentsContractStore;
    let store: PaymentsStore;
    const opened: PaymentsStore[] = [];
    const clock = { nowMs: T0 };
    const now = (): number => clock.nowMs;
    const another = async (): Promise<PaymentsStore> => {
      const s = await backing.open(now);
      opened.push(s);
      return s;
    };

    beforeEach(async () => {
      clock.nowMs = T0;
      backing = factory();
      store = await another();
    });

    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      await backing.dispose();
    });

    describe("orders", () => {
      it("stores a new order as created and reads every field back", async () => {
        const created = await store.insertOrder(order("order-00000001"));
        expect(created).toEqual({ ...order("order-00000001"), state: "created" });
        expect(await store.getOrder("order-00000001", T0)).toEqual(created);
      });

      it("answers undefined for an order that does not exist", async () => {
        expect(await store.getOrder("order-99999999", T0)).toBeUndefined();
      });

      it("reads a created order as expired once its expiry has passed, and keeps it expired", async () => {
        await store.insertOrder(order("order-00000001"));
        expect((await store.getOrder("order-00000001", T0 + TTL_MS - 1))?.state).toBe("created");
        expect((await store.getOrder("order-00000001", T0 + TTL_MS))?.state).toBe("expired");
        expect((await store.getOrder("order-00000001", T0))?.state).toBe("expired");
      });

      it("lists a household's orders newest first, up to the limit", async () => {
        for (let i = 1; i <= 3; i++) await store.insertOrder(order(`order-0000000${i}`, { createdAtMs: T0 + i }));
        await store.insertOrder(order("order-00000009", { householdId: "hh-wang" }));
        expect((await store.ordersOfHousehold("hh-li", 2)).map((o) => o.orderId)).toEqual(["order-00000003", "order-00000002"]);
      });

      it("refuses a listing limit below 1 or above 1000", async () => {
        expect(await refusal(store.ordersOfHousehold("hh-li", 0))).toBe(C.INVALID_INPUT);
        expect(await refusal(store.ordersOfHousehold("hh-li", 1001))).toBe(C.INVALID_INPUT);
      });

      it.each([
        ["a zero amount", { amountFen: 0 }],
        ["a fractional amount", { amountFen: 20.5 }],
        ["an amount beyond 2^53", { amountFen: 2 ** 53 }],
        ["a malformed order id", { orderId: "x" }],
        ["an empty household", { householdId: "" }],
        ["a fractional expiry", { expiresAtMs: 1.5 }],
      ])("refuses an order with %s as PAYMENT_INVALID_INPUT and stores nothing", async (_what, bad) => {
        const o = order("order-00000001", bad);
        expect(await refusal(store.insertOrder(o))).toBe(C.INVALID_INPUT);
        expect(await store.ordersOfHousehold(o.householdId, 10)).toEqual([]);
      });

      it("reserves an order for the first transaction, again for the same one, and not for another", async () => {
        await store.insertOrder(order("order-00000001"));
        expect(await store.reservePayment("order-00000001", "txn-a")).toMatchObject({ outcome: "reserved", order: { providerTxnId: "txn-a", state: "created" } });
        expect(await store.reservePayment("order-00000001", "txn-a")).toMatchObject({ outcome: "reserved" });
        expect(await store.reservePayment("order-00000001", "txn-b")).toMatchObject({ outcome: "other-txn", order: { providerTxnId: "txn-a" } });
      });

      it("refuses to reserve a transaction already recorded on another order of the provider", async () => {
        await store.insertOrder(order("order-00000001"));
        await store.insertOrder(order("order-00000002"));
        await store.reservePayment("order-00000001", "txn-a");
        expect(await store.reservePayment("order-00000002", "txn-a")).toEqual({ outcome: "txn-taken", otherOrderId: "order-00000001" });
        expect((await store.getOrder("order-00000002", T0))?.providerTxnId).toBeUndefined();
      });

      it("refuses to reserve for a malformed transaction id, reserving nothing", async () => {
        await store.insertOrder(order("order-00000001"));
        expect(await refusal(store.reservePayment("order-00000001", "txn with spaces"))).toBe(C.INVALID_INPUT);
        expect((await store.getOrder("order-00000001", T0))?.providerTxnId).toBeUndefined();
      });

      it("answers unknown-order when reserving an order that does not exist", async () => {
        expect(await store.reservePayment("order-99999999", "txn-a")).toEqual({ outcome: "unknown-order" });
      });

      it("marks an order paid once; a second call changes nothing and says so", async () => {
        await store.insertOrder(order("order-00000001"));
        const first = await store.markPaid("order-00000001", "txn-a", 7, T0 + 10, T0 + 20);
        expect(first).toEqual({ marked: true, order: { ...order("order-00000001"), state: "paid", providerTxnId: "txn-a", postingId: 7, paidAtMs: T0 + 10 } });
        const second = await store.markPaid("order-00000001", "txn-a", 8, T0 + 30, T0 + 40);
        expect(second).toEqual({ marked: false, order: first.order });
      });

      it("does not mark paid with a transaction other than the one the order is reserved for", async () => {
        await store.insertOrder(order("order-00000001"));
        await store.reservePayment("order-00000001", "txn-a");
        const other = await store.markPaid("order-00000001", "txn-b", 7, T0, T0);
        expect(other).toMatchObject({ marked: false, order: { state: "created", providerTxnId: "txn-a" } });
      });

      it("marks an expired or failed order paid: the provider is the authority on whether money moved", async () => {
        await store.insertOrder(order("order-00000001"));
        await store.getOrder("order-00000001", T0 + TTL_MS);
        expect((await store.markPaid("order-00000001", "txn-a", 7, T0, T0 + TTL_MS)).order.state).toBe("paid");
      });

      it("refuses to mark an unknown order paid with PAYMENT_UNKNOWN_ORDER", async () => {
        expect(await refusal(store.markPaid("order-99999999", "txn-a", 7, T0, T0))).toBe(C.UNKNOWN_ORDER);
      });

      it("refuses a malformed posting id or transaction id when marking paid", async () => {
        await store.insertOrder(order("order-00000001"));
        expect(await refusal(store.markPaid("order-00000001", "txn-a", 0, T0, T0))).toBe(C.INVALID_INPUT);
        expect(await refusal(store.markPaid("order-00000001", "txn a!", 7, T0, T0))).toBe(C.INVALID_INPUT);
        expect((await store.getOrder("order-00000001", T0))?.state).toBe("created");
      });

      it("fails a created order, but never one that is paid or reserved for a transaction", async () => {
        for (const id of ["order-00000001", "order-00000002", "order-00000003"]) await store.insertOrder(order(id));
        await store.markPaid("order-00000002", "txn-b", 7, T0, T0);
        await store.reservePayment("order-00000003", "txn-c");
        expect((await store.markFailed("order-00000001", T0))?.state).toBe("failed");
        expect((await store.markFailed("order-00000002", T0))?.state).toBe("paid");
        expect((await store.markFailed("order-00000003", T0))?.state).toBe("created");
        expect(await store.markFailed("order-99999999", T0)).toBeUndefined();
      });
    });

    describe("callbacks", () => {
      const callback = (orderId: string, providerTxnId: string, outcome: "posted" | "duplicate" | "unknown-order") => ({
        provider: "local",
        providerTxnId,
        orderId,
        amountFen: 2_000,
        outcome,
        detail: outcome,
        receivedAtMs: T0,
      });

      it("records callbacks in arrival order and finds them by order and by transaction", async () => {
        const a = await store.recordCallback(callback("order-00000001", "txn-a", "posted"));
        const b = await store.recordCallback(callback("order-00000001", "txn-a", "duplicate"));
        await store.recordCallback(callback("order-00000002", "txn-b", "unknown-order"));
        expect(b.callbackId).toBeGreaterThan(a.callbackId);
        expect(await store.callbacksOf("order-00000001")).toEqual([a, b]);
        expect((await store.callbacksByTxn("local", "txn-b")).map((c) => c.outcome)).toEqual(["unknown-order"]);
        expect(await store.callbacksByTxn("wechat", "txn-a")).toEqual([]);
      });

      it("refuses a callback record with an outcome it does not know or a fractional amount", async () => {
        expect(await refusal(store.recordCallback({ ...callback("order-00000001", "txn-a", "posted"), outcome: "maybe" as "posted" }))).toBe(C.INVALID_INPUT);
        expect(await refusal(store.recordCallback({ ...callback("order-00000001", "txn-a", "posted"), amountFen: 0.5 }))).toBe(C.INVALID_INPUT);
        expect(await store.callbacksOf("order-00000001")).toEqual([]);
      });
    });

    describe("money requests", () => {
      it("claims a new key, and hands a retry the first attempt's atMs and answer once finished", async () => {
        expect(await store.claimMoneyRequest(request("key-1", { claimToken: "a", leaseMs: 30_000 }))).toMatchObject({ outcome: "claimed", atMs: T0 });
        await store.finishMoneyRequest("hh-li", "key-1", 41, 1_000);
        clock.nowMs += 60_000;
        const retry = await store.claimMoneyRequest(request("key-1", { atMs: clock.nowMs, claimToken: "b", leaseMs: 30_000 }));
        expect(retry).toEqual({ ...request("key-1"), outcome: "finished", postingId: 41, balanceFen: 1_000 });
      });

      it("keeps the first answer when a request is finished twice", async () => {
        await store.claimMoneyRequest(request("key-1"));
        await store.finishMoneyRequest("hh-li", "key-1", 41, 1_000);
        await store.finishMoneyRequest("hh-li", "key-1", 42, 9_999);
        expect(await store.claimMoneyRequest(request("key-1"))).toMatchObject({ outcome: "finished", postingId: 41, balanceFen: 1_000 });
      });

      it("answers different-request for another request under a key already used, finished or not", async () => {
        await store.claimMoneyRequest(request("key-1", { claimToken: "a", leaseMs: 30_000 }));
        const other = await store.claimMoneyRequest(request("key-1", { requestJson: '{"kind":"refund"}', claimToken: "b" }));
        expect(other).toMatchObject({ outcome: "different-request", requestJson: request("key-1").requestJson });
        await store.finishMoneyRequest("hh-li", "key-1", 41, 1_000);
        expect((await store.claimMoneyRequest(request("key-1", { requestJson: '{"kind":"refund"}' }))).outcome).toBe("different-request");
      });

      it("answers in-progress while another attempt's lease holds, and lets a retry take over once it has run out", async () => {
        await store.claimMoneyRequest(request("key-1", { claimToken: "a", leaseMs: 30_000 }));
        clock.nowMs = T0 + 29_999;
        expect(await store.claimMoneyRequest(request("key-1", { atMs: clock.nowMs, claimToken: "b", leaseMs: 30_000 }))).toMatchObject({ outcome: "in-progress", claimedUntilMs: T0 + 30_000 });
        clock.nowMs = T0 + 30_000;
        // Taken over with the first attempt's atMs: the ledger must see identical content if the first had posted.
        expect(await store.claimMoneyRequest(request("key-1", { atMs: clock.nowMs, claimToken: "b", leaseMs: 30_000 }))).toMatchObject({ outcome: "claimed", atMs: T0 });
        expect((await store.claimMoneyRequest(request("key-1", { claimToken: "a", leaseMs: 30_000 }))).outcome).toBe("in-progress");
      });

      it("lets any attempt take over a claim made without a lease at once", async () => {
        await store.claimMoneyRequest(request("key-1"));
        expect((await store.claimMoneyRequest(request("key-1", { claimToken: "b", leaseMs: 30_000 }))).outcome).toBe("claimed");
      });

      it("releases a key only for the claim's own token, so a corrected request can use it", async () => {
        await store.claimMoneyRequest(request("key-1", { claimToken: "a", leaseMs: 30_000 }));
        await store.releaseMoneyRequest("hh-li", "key-1", "b");
        await store.releaseMoneyRequest("hh-li", "key-1");
        expect((await store.claimMoneyRequest(request("key-1", { requestJson: '{"kind":"refund"}' }))).outcome).toBe("different-request");
        await store.releaseMoneyRequest("hh-li", "key-1", "a");
        expect((await store.claimMoneyRequest(request("key-1", { requestJson: '{"kind":"refund"}', claimToken: "c" }))).outcome).toBe("claimed");
      });

      it("never releases a finished request", async () => {
        await store.claimMoneyRequest(request("key-1", { claimToken: "a" }));
        await store.finishMoneyRequest("hh-li", "key-1", 41, 1_000);
        await store.releaseMoneyRequest("hh-li", "key-1", "a");
        expect((await store.claimMoneyRequest(request("key-1"))).outcome).toBe("finished");
      });

      it.each([
        ["an empty key", { idempotencyKey: "" }],
        ["a negative lease", { leaseMs: -1 }],
        ["a fractional atMs", { atMs: 1.5 }],
        ["a request that is not JSON text", { requestJson: "" }],
      ])("refuses a money request with %s as PAYMENT_INVALID_INPUT", async (_what, bad) => {
        expect(await refusal(store.claimMoneyRequest(request("key-1", bad)))).toBe(C.INVALID_INPUT);
      });

      it("refuses to store an answer with a fractional balance", async () => {
        await store.claimMoneyRequest(request("key-1"));
        expect(await refusal(store.finishMoneyRequest("hh-li", "key-1", 41, 0.5))).toBe(C.INVALID_INPUT);
        expect((await store.claimMoneyRequest(request("key-1", { claimToken: "z", leaseMs: 1 }))).outcome).toBe("claimed");
      });
    });

    describe("several stores on one database", () => {
      it("keeps orders, callbacks and claims across a close and a new open", async () => {
        await store.insertOrder(order("order-00000001"));
        await store.claimMoneyRequest(request("key-1", { claimToken: "a", leaseMs: 30_000 }));
        await store.close();
        opened.splice(opened.indexOf(store), 1);
        const reopened = await another();
        expect((await reopened.getOrder("order-00000001", T0))?.state).toBe("created");
        expect((await reopened.claimMoneyRequest(request("key-1", { claimToken: "b", leaseMs: 30_000 }))).outcome).toBe("in-progress");
      });

      it("gives a key claimed by four stores at once to exactly one of them", async () => {
        const stores = [store, await another(), await another(), await another()];
        const claims = await Promise.all(stores.map((s, i) => s.claimMoneyRequest(request("key-1", { claimToken: `worker-${i}`, leaseMs: 30_000 }))));
        expect(claims.map((c) => c.outcome).sort()).toEqual(["claimed", "in-progress", "in-progress", "in-progress"]);
      });

      it("reserves an order for exactly one of four transactions settled on four stores at once", async () => {
        const stores = [store, await another(), await another(), await another()];
        await store.insertOrder(order("order-00000001"));
        const results = await Promise.all(stores.map((s, i) => s.reservePayment("order-00000001", `txn-${i}`)));
        expect(results.map((r) => r.outcome).sort()).toEqual(["other-txn", "other-txn", "other-txn", "reserved"]);
        const winner = results.find((r) => r.outcome === "reserved");
        expect(results.every((r) => r.outcome !== "unknown-order" && r.outcome !== "txn-taken" && r.order.providerTxnId === (winner?.outcome === "reserved" ? winner.order.providerTxnId : ""))).toBe(true);
      });

      it("marks an order paid on exactly one of four stores at once; the others see it paid", async () => {
        const stores = [store, await another(), await another(), await another()];
        await store.insertOrder(order("order-00000001"));
        const results = await Promise.all(stores.map((s, i) => s.markPaid("order-00000001", "txn-a", 10 + i, T0, T0)));
        expect(results.filter((r) => r.marked)).toHaveLength(1);
        const postingIds = new Set(results.map((r) => r.order.postingId));
        expect([...postingIds]).toHaveLength(1);
        expect(results.every((r) => r.order.state === "paid")).toBe(true);
      });

      it("records one transaction id on one order only, however many stores try at once", async () => {
        const stores = [store, await another(), await another(), await another()];
        for (let i = 0; i < 4; i++) await store.insertOrder(order(`order-0000000${i}`));
        const results = await Promise.all(stores.map((s, i) => s.reservePayment(`order-0000000${i}`, "txn-shared")));
        expect(results.map((r) => r.outcome).sort()).toEqual(["reserved", "txn-taken", "txn-taken", "txn-taken"]);
      });
    });
  });
}
