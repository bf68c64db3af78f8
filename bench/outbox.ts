// Outbox throughput against the disk's physics: durable appends per second (one per transaction and 100 per
// transaction, synchronous=FULL) set against the fsyncs per second the same disk does for a bare 4 KB write, the
// drain rate behind a 1,000,000-message telemetry backlog, how soon an alarm overtakes that backlog, what one
// thinning pass costs at that size, and the file's size per counted byte (to plan the bound against the card).

import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, statSync, existsSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { OutboxMessage } from "../edge/outbox/outbox.js";
import { openSqliteOutbox } from "../edge/outbox/sqlite-outbox.js";
import { report } from "./report.js";

const BACKLOG = 1_000_000;
const SETUP_BATCH = 10_000;
const DRAIN_PEEK = 500;
const ROOMY = { maxBytes: 4_000_000_000, maxCount: 10_000_000 } as const;

// A realistic telemetry batch: three samples of one meter, about 400 bytes of JSON.
function telemetry(i: number): OutboxMessage {
  const at = new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString();
  const sample = (pointId: string, role: string, value: number, unit: string): object => ({ deviceId: "meter-07", pointId, role, value, unit, at });
  return {
    topicName: "telemetry",
    topic: "agri/v1/gw/gw-bench/up/telemetry",
    payload: {
      v: 1,
      gatewayId: "gw-bench",
      sentAt: at,
      samples: [sample("voltageL1", "voltage", 229.4 + (i % 7) / 10, "V"), sample("currentL1", "current", 3.2, "A"), sample("activePower", "active_power", 734, "W")],
    },
    priority: "telemetry",
  };
}

const alarm: OutboxMessage = {
  topicName: "alarm",
  topic: "agri/v1/gw/gw-bench/up/alarm",
  payload: { v: 1, gatewayId: "gw-bench", alarmId: "fire-17", kind: "fire", deviceId: "smoke-3" },
  priority: "alarm",
};

/** Run `step` until `ms` have passed; returns work units done and the time taken. */
function timed(ms: number, step: () => number): { units: number; elapsedMs: number } {
  const t0 = performance.now();
  let units = 0;
  let elapsedMs = 0;
  while (elapsedMs < ms) {
    const done = step();
    if (done === 0) break;
    units += done;
    elapsedMs = performance.now() - t0;
  }
  return { units, elapsedMs: performance.now() - t0 };
}

/** The physical anchor: a 4 KB append + fsync, the least a durable commit can cost on this disk. */
function fsyncsPerSecond(dir: string): number {
  const path = join(dir, "fsync-probe");
  const fd = openSync(path, "w");
  const block = Buffer.alloc(4096, 0x5a);
  let offset = 0;
  const { units, elapsedMs } = timed(1000, () => {
    writeSync(fd, block, 0, block.length, offset);
    fsyncSync(fd);
    offset += block.length;
    return 1;
  });
  closeSync(fd);
  rmSync(path);
  return (units / elapsedMs) * 1000;
}

function fileBytes(path: string): number {
  return [path, `${path}-wal`].filter((p) => existsSync(p)).reduce((sum, p) => sum + statSync(p).size, 0);
}

const round = (x: number, digits = 0): number => Number(x.toFixed(digits));

export async function outboxBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "agri-outbox-bench-"));
  try {
    // Durable appends, one message per transaction: each pays one WAL sync.
    const fsyncRate = fsyncsPerSecond(dir);
    const single = openSqliteOutbox({ path: join(dir, "single.db"), ...ROOMY });
    let i = 0;
    const one = timed(2000, () => {
      single.append(telemetry(i++));
      return 1;
    });
    single.close();
    const singleRate = (one.units / one.elapsedMs) * 1000;

    const batched = openSqliteOutbox({ path: join(dir, "batched.db"), ...ROOMY });
    const hundred = timed(2000, () => batched.appendMany(Array.from({ length: 100 }, () => telemetry(i++))).length);
    batched.close();
    const batchedRate = (hundred.units / hundred.elapsedMs) * 1000;

    report({ bench: "outbox-fsync-rate", value: round(fsyncRate), unit: "fsyncs/s", better: "higher", note: "4 KB write + fsync on the bench's temp disk: the physical anchor" });
    report({ bench: "outbox-append-full-batch1", value: round(singleRate), unit: "msgs/s", better: "higher", note: "synchronous=FULL, one message per transaction" });
    report({ bench: "outbox-append-full-batch1-per-fsync", value: round(singleRate / fsyncRate, 2), unit: "ratio", better: "higher", note: "durable appends per bare 4 KB fsync: about 1 means each commit costs one disk sync and little else" });
    report({ bench: "outbox-append-full-batch100", value: round(batchedRate), unit: "msgs/s", better: "higher", note: "synchronous=FULL, appendMany of 100 per transaction" });
    report({ bench: "outbox-append-full-batch100-per-fsync", value: round(batchedRate / fsyncRate, 1), unit: "ratio", better: "higher", note: "durable messages per bare fsync when batched by 100" });

    // better-sqlite3 is synchronous: yield between phases so the runner's output and signals get through.
    await nextTurn();

    // A 1,000,000-message backlog, built with synchronous=NORMAL for speed (setup only), then drained durably.
    const path = join(dir, "backlog.db");
    const setup = openSqliteOutbox({ path, ...ROOMY, synchronous: "NORMAL" });
    const buildStart = performance.now();
    for (let b = 0; b < BACKLOG / SETUP_BATCH; b++) setup.appendMany(Array.from({ length: SETUP_BATCH }, (_, k) => telemetry(b * SETUP_BATCH + k)));
    const buildMs = performance.now() - buildStart;
    const countedBytes = setup.stats().bytes;
    setup.close();
    report({ bench: "outbox-backlog-build-normal", value: round((BACKLOG / buildMs) * 1000), unit: "msgs/s", better: "higher", note: "appendMany of 10,000 per transaction, synchronous=NORMAL (setup)" });
    report({ bench: "outbox-file-bytes-per-counted-byte", value: round(fileBytes(path) / countedBytes, 2), unit: "ratio", better: "lower", note: `file size over the bound's byte count at ${BACKLOG} rows (~${round(countedBytes / BACKLOG)} B each); size maxBytes with it` });

    await nextTurn();

    // Boot after a power cut: opening must not scan the backlog.
    const openStart = performance.now();
    const outbox = openSqliteOutbox({ path, ...ROOMY });
    report({ bench: "outbox-open-1m-backlog", value: round(performance.now() - openStart, 1), unit: "ms", better: "lower", note: "openSqliteOutbox on a 1M-row file (FULL)" });
    // Invariant 6: an alarm appended behind the backlog is the next thing out.
    const alarmStart = performance.now();
    const { seq: alarmSeq } = outbox.append(alarm);
    const first = outbox.peek(1)[0];
    const alarmMs = performance.now() - alarmStart;
    if (first?.seq !== alarmSeq) throw new Error(`the alarm did not drain first (got ${String(first?.seq)})`);
    outbox.ack(alarmSeq);
    report({ bench: "outbox-alarm-append-to-peek-1m-backlog", value: round(alarmMs, 2), unit: "ms", goal: 50, better: "lower", note: "durable append of one alarm and peek(1) returning it, behind 1M telemetry rows" });

    const drain = timed(5000, () => {
      const batch = outbox.peek(DRAIN_PEEK);
      return batch.length === 0 ? 0 : outbox.ackMany(batch.map((e) => e.seq));
    });
    const drainRate = (drain.units / drain.elapsedMs) * 1000;
    report({ bench: "outbox-drain-rate-1m-backlog", value: round(drainRate), unit: "msgs/s", better: "higher", note: `peek ${DRAIN_PEEK} + ackMany in one FULL transaction, for ${round(drain.elapsedMs / 1000, 1)} s` });
    report({ bench: "outbox-drain-1m-projected", value: round(BACKLOG / drainRate, 1), unit: "s", better: "lower", note: "outbox side only; the uplink's PUBACK round trips come on top" });
    report({ bench: "outbox-drain-batches-per-fsync", value: round(drainRate / DRAIN_PEEK / fsyncRate, 2), unit: "ratio", better: "higher", note: "drain transactions per bare fsync" });

    await nextTurn();

    // One thinning pass at the bound: the burst of disk work an append pays when it finds the outbox full.
    const remaining = outbox.stats();
    outbox.close();
    const full = openSqliteOutbox({ path, maxBytes: ROOMY.maxBytes, maxCount: remaining.count });
    const thinStart = performance.now();
    full.append(alarm);
    const thinMs = performance.now() - thinStart;
    const thinned = full.stats().thinnedTelemetry;
    full.close();
    report({ bench: "outbox-thin-pass", value: round(thinMs), unit: "ms", better: "lower", note: `append that thinned ${thinned} of ${remaining.byClass.telemetry.count} telemetry rows (FULL)` });
    report({ bench: "outbox-thin-rows-per-s", value: round((thinned / thinMs) * 1000), unit: "rows/s", better: "higher", note: "thinning deletes per second" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
