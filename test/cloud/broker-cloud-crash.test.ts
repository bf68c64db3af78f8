// The cloud dies between receiving a gateway's billing reading and committing it (invariant 8): a real edge uplink
// (edge/uplink with its durable SQLite outbox) publishes to a real one-box cloud (startCloud in a child process:
// embedded aedes, embedded ingest, prepaid service, SQLite ledger), which is SIGKILLed right after the broker
// handed the reading to the ingest. The gateway must not have had a PUBACK — the reading is still in its outbox —
// and after the cloud restarts on the same data and port, the edge's resend is charged exactly once.

import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { cloudDbPath } from "../../cloud/server.js";
import { openSqliteOutbox, type SqliteOutbox } from "../../edge/outbox/sqlite-outbox.js";
import { Uplink } from "../../edge/uplink/uplink.js";
import { formatTopic } from "../../protocols/mqtt/topics.js";
import { eventually } from "../harness/broker.js";
import type { CloudChildStart, FromCloudChild, ToCloudChild } from "./broker-cloud-child.fixture.js";

const GW = "crash-gw";
const SECRET = "crash-gw-secret";
const METER = "crash-meter";
const INITIAL_WH = 1_000_000;
const WH_PER_READING = 1000;
/** 1 yuan per kWh: 100 fen per reading. */
const PRICE_CENTI_FEN_PER_KWH = 10_000;
const FEN_PER_READING = 100;

let dir: string;
let port: number;
let child: ChildProcess | undefined;
let outbox: SqliteOutbox;
let uplink: Uplink;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port: p } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return p;
}

/** Start the cloud child and wait until it serves. */
async function startChild(setup?: CloudChildStart["setup"]): Promise<ChildProcess> {
  const fixture = join(dirname(fileURLToPath(import.meta.url)), "broker-cloud-child.fixture.ts");
  const c = fork(fixture, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  await ask(c, { type: "start", dataDir: join(dir, "cloud"), port, ...(setup === undefined ? {} : { setup }) }, "ready");
  return c;
}

function ask(c: ChildProcess, message: ToCloudChild, answer: FromCloudChild["type"]): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: FromCloudChild): void => {
      if (m.type === "error") reject(new Error(m.message));
      else if (m.type === answer) {
        c.off("message", onMessage);
        resolve();
      }
    };
    c.on("message", onMessage);
    c.once("exit", (code, signal) => reject(new Error(`cloud child exited (${String(code)}, ${String(signal)}) before "${answer}"`)));
    c.send(message);
  });
}

/** The n-th billing reading of the meter, appended to the gateway's outbox as the edge agent does. */
function appendReading(n: number): number {
  const energyWh = INITIAL_WH + n * WH_PER_READING;
  const at = new Date(Date.UTC(2026, 5, 1) + n * 60_000).toISOString();
  const { seq } = outbox.append({
    topicName: "billing",
    topic: formatTopic("billing", { gatewayId: GW }),
    priority: "billing",
    payload: {
      v: 1,
      gatewayId: GW,
      sentAt: at,
      readings: [
        {
          meterId: METER,
          unitId: 1,
          pointId: "importEnergy",
          role: "import_energy",
          registerSeq: n,
          at,
          raw: { words: [Math.floor(energyWh / 10 / 65536), Math.floor(energyWh / 10) % 65536], value: energyWh / 1000 },
          energyWh,
          conversion: { exact: true, droppedWh: 0 },
        },
      ],
    },
  });
  uplink.kick();
  return seq;
}

interface LedgerView {
  readonly chargesByKey: Map<string, number>;
  readonly chargedFen: number;
}

/** Read the cloud's ledger file directly (WAL: a reader never blocks the cloud, alive or dead). */
function ledger(): LedgerView {
  const db = new Database(cloudDbPath(join(dir, "cloud")), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare<[], { key: string; n: number }>("SELECT idempotency_key AS key, COUNT(*) AS n FROM ledger_postings WHERE kind = 'charge' GROUP BY idempotency_key").all();
    // A charge moves money off the household's account: the sum of its negative lines.
    const fen = db.prepare<[], { fen: number | null }>("SELECT -SUM(l.amount_fen) AS fen FROM ledger_lines l JOIN ledger_postings p USING (posting_id) WHERE p.kind = 'charge' AND l.amount_fen < 0").get()?.fen ?? 0;
    return { chargesByKey: new Map(rows.map((r) => [r.key, r.n])), chargedFen: fen };
  } finally {
    db.close();
  }
}

let afterFirst: LedgerView;
let afterKill: LedgerView;
let killSignal: NodeJS.Signals | null = null;
let outboxAfterKill: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "broker-cloud-crash-"));
  port = await freePort();
  child = await startChild({ gatewayId: GW, secretHash: await hashSecret(SECRET), meterId: METER, initialWh: INITIAL_WH, priceCentiFenPerKwh: PRICE_CENTI_FEN_PER_KWH, topUpFen: 100_000 });

  outbox = openSqliteOutbox({ path: join(dir, "outbox.db"), maxBytes: 10_000_000, maxCount: 10_000 });
  uplink = new Uplink(
    { gatewayId: GW, password: SECRET, url: `mqtt://127.0.0.1:${port}`, keepaliveS: 5, reconnectMinMs: 100, reconnectMaxMs: 400, inflight: 8 },
    outbox,
    { onCommand: () => undefined, onConnected: () => undefined, onDisconnected: () => undefined },
  );
  uplink.start();
  await eventually(() => uplink.stats.connected, 10_000, "the edge to connect");

  // A first reading goes through normally.
  appendReading(1);
  await eventually(() => outbox.stats().count === 0, 10_000, "the first reading acknowledged");
  afterFirst = ledger();

  // The second one kills the cloud between receiving and committing it.
  const c = child;
  await ask(c, { type: "kill-on-next-uplink" }, "armed");
  const exited = new Promise<void>((resolve) => c.once("exit", (_code, signal) => ((killSignal = signal), resolve())));
  appendReading(2);
  await exited;
  child = undefined;
  outboxAfterKill = outbox.stats().count;
  afterKill = ledger();

  // The cloud comes back on the same data and port; the edge reconnects by itself and resends.
  child = await startChild();
  await eventually(() => outbox.stats().count === 0, 20_000, "the resent reading acknowledged");
}, 90_000);

afterAll(async () => {
  await uplink?.stop(false);
  outbox?.close();
  child?.kill("SIGKILL");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a cloud killed between receiving and committing a gateway's reading", () => {
  it("charges the first reading before acknowledging it", () => {
    expect(afterFirst.chargesByKey.get(`charge/${METER}/1`)).toBe(1);
    expect(afterFirst.chargedFen).toBe(FEN_PER_READING);
  });

  it("dies by SIGKILL with the second reading neither charged nor acknowledged", () => {
    expect(killSignal).toBe("SIGKILL");
    expect(afterKill.chargesByKey.has(`charge/${METER}/2`)).toBe(false);
    expect(afterKill.chargedFen).toBe(FEN_PER_READING);
    expect(outboxAfterKill).toBe(1);
  });

  it("charges the edge's resend exactly once after the restart", () => {
    const after = ledger();
    expect(after.chargesByKey.get(`charge/${METER}/2`)).toBe(1);
    expect(after.chargesByKey.size).toBe(2);
    expect(after.chargedFen).toBe(2 * FEN_PER_READING);
  });
});
