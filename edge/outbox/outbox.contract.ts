// The one contract every Outbox implementation must pass (ARCHITECTURE.md §5, "one shared contract test suite per
// interface"): seq issuance, drain order, ack, the bound's exact behaviour and persistence across reopen. An
// implementation's test file calls runOutboxContract with a factory for fresh, empty stores.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  entryBytes,
  OutboxError,
  payloadWithSeq,
  prepareMessage,
  type Outbox,
  type OutboxLimits,
  type OutboxMessage,
  type OutboxPriority,
} from "./outbox.js";

/** A fresh, empty store that can be opened, closed and opened again, seeing what the previous open left. */
export interface OutboxContractStore {
  open(limits: OutboxLimits): Outbox;
  /** Remove whatever the store left behind (temporary files, schemas). */
  dispose(): void;
}

/** Large enough that no contract test outside the bound tests comes near it. */
const ROOMY: OutboxLimits = { maxBytes: 1_000_000_000, maxCount: 1_000_000 };

const TOPICS: Record<OutboxPriority, { topicName: string; topic: string }> = {
  alarm: { topicName: "alarm", topic: "agri/v1/gw/gw-test/up/alarm" },
  billing: { topicName: "billing", topic: "agri/v1/gw/gw-test/up/billing" },
  event: { topicName: "events", topic: "agri/v1/gw/gw-test/up/events" },
  telemetry: { topicName: "telemetry", topic: "agri/v1/gw/gw-test/up/telemetry" },
};

function message(priority: OutboxPriority, i: number, extra: Record<string, unknown> = {}): OutboxMessage {
  return { ...TOPICS[priority], payload: { v: 1, i, ...extra }, priority };
}
const telemetry = (i: number): OutboxMessage => message("telemetry", i);
const alarm = (i: number): OutboxMessage => message("alarm", i);
const billing = (i: number): OutboxMessage => message("billing", i);
const event = (i: number): OutboxMessage => message("event", i);

/** What a message will count against the byte bound once it has the given seq. */
function sizeAt(m: OutboxMessage, seq: number): number {
  return entryBytes(m.topic, payloadWithSeq(prepareMessage(m).bodyJson, seq));
}

function seqsInDrainOrder(outbox: Outbox): number[] {
  return outbox.peek(1_000_000).map((e) => e.seq);
}

function expectOutboxError(fn: () => unknown, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(OutboxError);
  expect((caught as OutboxError).code).toBe(code);
}

export function runOutboxContract(name: string, createStore: () => OutboxContractStore): void {
  describe(`Outbox contract: ${name}`, () => {
    let store: OutboxContractStore;
    let opened: Outbox[] = [];
    const open = (limits: OutboxLimits = ROOMY): Outbox => {
      const outbox = store.open(limits);
      opened.push(outbox);
      return outbox;
    };
    const reopen = (outbox: Outbox, limits: OutboxLimits = ROOMY): Outbox => {
      outbox.close();
      return open(limits);
    };

    beforeEach(() => {
      store = createStore();
      opened = [];
    });
    afterEach(() => {
      for (const outbox of opened) outbox.close();
      store.dispose();
    });

    describe("seq", () => {
      it("issues seq 1 first and one more to each next message, across append and appendMany", () => {
        const outbox = open();
        expect(outbox.append(telemetry(1))).toEqual({ seq: 1, stored: true });
        expect(outbox.append(alarm(2)).seq).toBe(2);
        expect(outbox.appendMany([billing(3), event(4), telemetry(5)]).map((r) => r.seq)).toEqual([3, 4, 5]);
        expect(outbox.append(telemetry(6)).seq).toBe(6);
        expect(outbox.stats().lastSeq).toBe(6);
      });

      it("never reuses a seq after everything is acked and the outbox is reopened", () => {
        let outbox = open();
        outbox.appendMany([telemetry(1), alarm(2), billing(3)]);
        expect(outbox.ackMany([1, 2, 3])).toBe(3);
        expect(outbox.stats().count).toBe(0);
        outbox = reopen(outbox);
        expect(outbox.stats().lastSeq).toBe(3);
        expect(outbox.append(event(4)).seq).toBe(4);
        outbox.ack(4);
        outbox = reopen(outbox);
        expect(outbox.append(telemetry(5)).seq).toBe(5);
      });

      it("returns appendMany results in input order with consecutive seqs", () => {
        const outbox = open();
        outbox.append(telemetry(0));
        const results = outbox.appendMany([alarm(1), telemetry(2), billing(3), event(4)]);
        expect(results).toEqual([2, 3, 4, 5].map((seq) => ({ seq, stored: true })));
      });

      it("appends nothing and consumes no seq when one message of an appendMany is bad", () => {
        const outbox = open();
        outbox.append(telemetry(1));
        const bad = { ...TOPICS.billing, payload: { v: 1, seq: 99 }, priority: "billing" } as const;
        expectOutboxError(() => outbox.appendMany([billing(2), bad, billing(3)]), "EDGE_OUTBOX_BAD_MESSAGE");
        expect(outbox.stats().count).toBe(1);
        expect(outbox.append(billing(4)).seq).toBe(2);
      });
    });

    describe("payload", () => {
      it("stores the final JSON with the seq as its first key and the producer's keys after it", () => {
        const outbox = open();
        outbox.append({ ...TOPICS.billing, payload: { v: 1, gatewayId: "gw-test", readings: [{ energyWh: 1234 }] }, priority: "billing" });
        outbox.append({ ...TOPICS.event, payload: {}, priority: "event" });
        const [first, second] = outbox.peek(2);
        expect(first?.payloadJson).toBe('{"seq":1,"v":1,"gatewayId":"gw-test","readings":[{"energyWh":1234}]}');
        expect(JSON.parse(first?.payloadJson ?? "null")).toEqual({ seq: 1, v: 1, gatewayId: "gw-test", readings: [{ energyWh: 1234 }] });
        expect(second?.payloadJson).toBe('{"seq":2}');
        expect(first).toMatchObject({ seq: 1, topicName: "billing", topic: TOPICS.billing.topic, priority: "billing" });
      });

      it("returns byte-identical entries on every peek and after reopen", () => {
        let outbox = open();
        outbox.appendMany([telemetry(1), alarm(2), { ...TOPICS.event, payload: { text: "Grüße, 火警 ⚠" }, priority: "event" }]);
        const before = outbox.peek(10);
        expect(outbox.peek(10)).toEqual(before);
        outbox = reopen(outbox);
        expect(outbox.peek(10)).toEqual(before);
      });

      it("refuses a payload that carries its own seq, is not a JSON object, or has an unknown priority or empty topic", () => {
        const outbox = open();
        const cycle: Record<string, unknown> = {};
        cycle.self = cycle;
        const bad: unknown[] = [
          { ...TOPICS.alarm, payload: { seq: 1 }, priority: "alarm" },
          { ...TOPICS.alarm, payload: [1, 2], priority: "alarm" },
          { ...TOPICS.alarm, payload: null, priority: "alarm" },
          { ...TOPICS.alarm, payload: new Date(0), priority: "alarm" },
          { ...TOPICS.alarm, payload: { n: 1n }, priority: "alarm" },
          { ...TOPICS.alarm, payload: cycle, priority: "alarm" },
          { ...TOPICS.alarm, payload: {}, priority: "urgent" },
          { ...TOPICS.alarm, topic: "", payload: {}, priority: "alarm" },
        ];
        for (const m of bad) expectOutboxError(() => outbox.append(m as OutboxMessage), "EDGE_OUTBOX_BAD_MESSAGE");
        expect(outbox.stats()).toMatchObject({ count: 0, lastSeq: 0 });
      });
    });

    describe("drain order", () => {
      it("drains alarms first, then billing and events together by seq, then telemetry by seq", () => {
        const outbox = open();
        outbox.appendMany([telemetry(1), billing(2), event(3), alarm(4), telemetry(5), event(6), billing(7), alarm(8)]);
        expect(seqsInDrainOrder(outbox)).toEqual([4, 8, 2, 3, 6, 7, 1, 5]);
        expect(outbox.peek(8).map((e) => e.priority)).toEqual(["alarm", "alarm", "billing", "event", "event", "billing", "telemetry", "telemetry"]);
      });

      it("puts alarms appended after 10,000 telemetry rows first", () => {
        const outbox = open();
        outbox.appendMany(Array.from({ length: 10_000 }, (_, i) => telemetry(i)));
        outbox.append(billing(10_001));
        outbox.append(alarm(10_002));
        outbox.append(alarm(10_003));
        expect(outbox.peek(5).map((e) => e.seq)).toEqual([10_002, 10_003, 10_001, 1, 2]);
      });

      it("does not remove entries on peek and returns at most the limit", () => {
        const outbox = open();
        outbox.appendMany([telemetry(1), telemetry(2), telemetry(3)]);
        expect(outbox.peek(2).map((e) => e.seq)).toEqual([1, 2]);
        expect(outbox.peek(2).map((e) => e.seq)).toEqual([1, 2]);
        expect(outbox.peek(0)).toEqual([]);
        expect(outbox.stats().count).toBe(3);
      });
    });

    describe("ack", () => {
      it("removes only the acked entry", () => {
        const outbox = open();
        outbox.appendMany([alarm(1), billing(2), telemetry(3)]);
        expect(outbox.ack(2)).toBe(true);
        expect(seqsInDrainOrder(outbox)).toEqual([1, 3]);
      });

      it("is harmless for an unknown or already-acked seq", () => {
        const outbox = open();
        outbox.appendMany([alarm(1), telemetry(2)]);
        expect(outbox.ack(1)).toBe(true);
        expect(outbox.ack(1)).toBe(false);
        expect(outbox.ack(999)).toBe(false);
        expect(outbox.ack(0)).toBe(false);
        expect(outbox.ack(-5)).toBe(false);
        expect(seqsInDrainOrder(outbox)).toEqual([2]);
        expect(outbox.stats()).toMatchObject({ count: 1, lastSeq: 2 });
      });

      it("removes a list with ackMany and counts only what it removed", () => {
        const outbox = open();
        outbox.appendMany([telemetry(1), telemetry(2), telemetry(3), telemetry(4)]);
        expect(outbox.ackMany([1, 3, 3, 42])).toBe(2);
        expect(outbox.ackMany([])).toBe(0);
        expect(seqsInDrainOrder(outbox)).toEqual([2, 4]);
      });

      it("rejects a seq or limit that is not an integer with EDGE_OUTBOX_BAD_ARGUMENT", () => {
        const outbox = open();
        expectOutboxError(() => outbox.ack(1.5), "EDGE_OUTBOX_BAD_ARGUMENT");
        expectOutboxError(() => outbox.ackMany([1, Number.NaN]), "EDGE_OUTBOX_BAD_ARGUMENT");
        expectOutboxError(() => outbox.peek(-1), "EDGE_OUTBOX_BAD_ARGUMENT");
        expectOutboxError(() => outbox.peek(Number.POSITIVE_INFINITY), "EDGE_OUTBOX_BAD_ARGUMENT");
      });
    });

    describe("stats and persistence", () => {
      it("counts entries, bytes per priority, the oldest stored and the last issued seq", () => {
        const outbox = open();
        const messages = [telemetry(1), alarm(2), billing(3), event(4), telemetry(5)];
        outbox.appendMany(messages);
        outbox.ack(1);
        const size = (i: number): number => sizeAt(messages[i] as OutboxMessage, i + 1);
        const stats = outbox.stats();
        expect(stats).toMatchObject({ count: 4, oldestSeq: 2, lastSeq: 5, droppedTelemetry: 0, thinnedTelemetry: 0, overBound: false });
        expect(stats.byClass).toEqual({
          alarm: { count: 1, bytes: size(1) },
          billing: { count: 1, bytes: size(2) },
          event: { count: 1, bytes: size(3) },
          telemetry: { count: 1, bytes: size(4) },
        });
        expect(stats.bytes).toBe(size(1) + size(2) + size(3) + size(4));
        expect(outbox.peek(10).reduce((sum, e) => sum + e.bytes, 0)).toBe(stats.bytes);
      });

      it("reports an empty outbox with oldestSeq null", () => {
        const outbox = open();
        expect(outbox.stats()).toMatchObject({ count: 0, bytes: 0, oldestSeq: null, lastSeq: 0, overBound: false });
      });

      it("preserves every entry not acked, in drain order, and the counters across reopen", () => {
        let outbox = open({ maxBytes: 1_000_000, maxCount: 4 });
        outbox.appendMany([telemetry(1), billing(2), alarm(3), telemetry(4), event(5), telemetry(6)]);
        outbox.ack(3);
        const entries = outbox.peek(100);
        const stats = outbox.stats();
        expect(stats.thinnedTelemetry + stats.droppedTelemetry).toBeGreaterThan(0);
        outbox = reopen(outbox, { maxBytes: 1_000_000, maxCount: 4 });
        expect(outbox.peek(100)).toEqual(entries);
        expect(outbox.stats()).toEqual(stats);
      });

      it("throws EDGE_OUTBOX_CLOSED after close, and a second close is harmless", () => {
        const outbox = open();
        outbox.close();
        outbox.close();
        expectOutboxError(() => outbox.append(alarm(1)), "EDGE_OUTBOX_CLOSED");
        expectOutboxError(() => outbox.peek(1), "EDGE_OUTBOX_CLOSED");
        expectOutboxError(() => outbox.stats(), "EDGE_OUTBOX_CLOSED");
      });
    });

    describe("bound", () => {
      it("thins the oldest half of telemetry by every other row when the count bound is reached", () => {
        const outbox = open({ maxBytes: 1_000_000, maxCount: 10 });
        outbox.appendMany(Array.from({ length: 10 }, (_, i) => telemetry(i)));
        // Oldest half of seqs 1..10 is 1..5; every other row from the oldest: 1, 3, 5.
        expect(outbox.append(telemetry(10))).toEqual({ seq: 11, stored: true });
        expect(seqsInDrainOrder(outbox)).toEqual([2, 4, 6, 7, 8, 9, 10, 11]);
        expect(outbox.stats()).toMatchObject({ count: 8, thinnedTelemetry: 3, droppedTelemetry: 0, overBound: false });
      });

      it("thins again at the next overflow, decimating the oldest telemetry further", () => {
        const outbox = open({ maxBytes: 1_000_000, maxCount: 10 });
        outbox.appendMany(Array.from({ length: 13 }, (_, i) => telemetry(i)));
        // Seqs 2,4,6,7,8,9,10,11,12,13 are stored; the oldest half 2,4,6,7,8 loses 2, 6 and 8.
        outbox.append(telemetry(13));
        expect(seqsInDrainOrder(outbox)).toEqual([4, 7, 9, 10, 11, 12, 13, 14]);
        expect(outbox.stats()).toMatchObject({ count: 8, thinnedTelemetry: 6, droppedTelemetry: 0 });
      });

      it("applies the bound message by message within one appendMany", () => {
        const outbox = open({ maxBytes: 1_000_000, maxCount: 8 });
        const results = outbox.appendMany(Array.from({ length: 12 }, (_, i) => telemetry(i)));
        expect(results.every((r) => r.stored)).toBe(true);
        // At seq 9 the oldest half 1..4 loses 1, 3; at seq 11 the oldest half 2,4,5,6 loses 2, 5.
        expect(seqsInDrainOrder(outbox)).toEqual([4, 6, 7, 8, 9, 10, 11, 12]);
        expect(outbox.stats()).toMatchObject({ count: 8, thinnedTelemetry: 4, droppedTelemetry: 0 });
      });

      it("drops the oldest telemetry when thinning does not free enough bytes", () => {
        const s = sizeAt(telemetry(1), 1);
        const outbox = open({ maxBytes: 4 * s + 2, maxCount: 1000 });
        outbox.appendMany([telemetry(1), telemetry(2), telemetry(3), telemetry(4)]);
        // An alarm of 2s bytes: thinning removes seq 1 (3s + 2s > 4s + 2), dropping seq 2 makes it fit (2s + 2s).
        const padding = 2 * s - sizeAt(message("alarm", 5, { pad: "" }), 5);
        expect(padding).toBeGreaterThanOrEqual(0);
        const big = message("alarm", 5, { pad: "x".repeat(padding) });
        expect(sizeAt(big, 5)).toBe(2 * s);
        expect(outbox.append(big)).toEqual({ seq: 5, stored: true });
        expect(seqsInDrainOrder(outbox)).toEqual([5, 3, 4]);
        expect(outbox.stats()).toMatchObject({ count: 3, bytes: 4 * s, thinnedTelemetry: 1, droppedTelemetry: 1, overBound: false });
      });

      describe("when alarms, billing and events fill it", () => {
        // Three telemetry rows and three billing/event rows fill a bound of six; then four alarms arrive.
        const fill = (outbox: Outbox): void => {
          outbox.appendMany([telemetry(1), billing(2), telemetry(3), event(4), telemetry(5), billing(6)]);
        };

        it("never drops alarms, billing or events while telemetry remains", () => {
          const outbox = open({ maxBytes: 1_000_000, maxCount: 6 });
          fill(outbox);
          // seq 7 thins telemetry 1, seq 8 thins telemetry 3 (oldest half of two is one row), seq 9 drops telemetry 5.
          outbox.appendMany([alarm(7), alarm(8), alarm(9)]);
          expect(seqsInDrainOrder(outbox)).toEqual([7, 8, 9, 2, 4, 6]);
          expect(outbox.stats()).toMatchObject({ count: 6, thinnedTelemetry: 2, droppedTelemetry: 1, overBound: false });
        });

        it("stores alarms, billing and events over the bound once no telemetry is left, and reports overBound", () => {
          const outbox = open({ maxBytes: 1_000_000, maxCount: 6 });
          fill(outbox);
          outbox.appendMany([alarm(7), alarm(8), alarm(9)]);
          expect(outbox.append(alarm(10))).toEqual({ seq: 10, stored: true });
          expect(outbox.append(billing(11))).toEqual({ seq: 11, stored: true });
          expect(outbox.append(event(12))).toEqual({ seq: 12, stored: true });
          expect(seqsInDrainOrder(outbox)).toEqual([7, 8, 9, 10, 2, 4, 6, 11, 12]);
          expect(outbox.stats()).toMatchObject({ count: 9, thinnedTelemetry: 2, droppedTelemetry: 1, overBound: true });
          expect(outbox.stats().byClass.telemetry.count).toBe(0);
        });

        it("refuses new telemetry, counted as dropped, and still consumes its seq", () => {
          const outbox = open({ maxBytes: 1_000_000, maxCount: 6 });
          fill(outbox);
          outbox.appendMany([alarm(7), alarm(8), alarm(9)]);
          expect(outbox.append(telemetry(10))).toEqual({ seq: 10, stored: false });
          expect(outbox.appendMany([telemetry(11), billing(12)])).toEqual([{ seq: 11, stored: false }, { seq: 12, stored: true }]);
          expect(seqsInDrainOrder(outbox)).toEqual([7, 8, 9, 2, 4, 6, 12]);
          expect(outbox.stats()).toMatchObject({ count: 7, lastSeq: 12, thinnedTelemetry: 2, droppedTelemetry: 3, overBound: true });
          expect(outbox.append(alarm(13)).seq).toBe(13);
        });

        it("clears overBound and accepts telemetry again once acks make room", () => {
          const outbox = open({ maxBytes: 1_000_000, maxCount: 6 });
          fill(outbox);
          outbox.appendMany([alarm(7), alarm(8), alarm(9), alarm(10)]);
          expect(outbox.stats().overBound).toBe(true);
          expect(outbox.ackMany([7, 8])).toBe(2);
          expect(outbox.stats()).toMatchObject({ count: 5, overBound: false });
          expect(outbox.append(telemetry(11))).toEqual({ seq: 11, stored: true });
        });
      });

      it("refuses a telemetry message larger than the byte bound without deleting other telemetry", () => {
        const outbox = open({ maxBytes: 300, maxCount: 1000 });
        outbox.appendMany([telemetry(1), telemetry(2)]);
        const huge = message("telemetry", 3, { pad: "x".repeat(400) });
        expect(outbox.append(huge)).toEqual({ seq: 3, stored: false });
        expect(seqsInDrainOrder(outbox)).toEqual([1, 2]);
        expect(outbox.stats()).toMatchObject({ thinnedTelemetry: 0, droppedTelemetry: 1, lastSeq: 3 });
      });

      it("rejects limits that are not positive integers with EDGE_OUTBOX_BAD_ARGUMENT", () => {
        expectOutboxError(() => open({ maxBytes: 0, maxCount: 10 }), "EDGE_OUTBOX_BAD_ARGUMENT");
        expectOutboxError(() => open({ maxBytes: 100, maxCount: 2.5 }), "EDGE_OUTBOX_BAD_ARGUMENT");
      });
    });
  });
}
