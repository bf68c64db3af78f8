// A power cut in the middle of publishing (ARCHITECTURE.md invariant 8): the gateway runs in a child process with 20
// meters polled every 100 ms, a backlog builds while the broker holds its connection, and the process is killed with
// SIGKILL while the backlog drains — twice — then started again on the same outbox and state files. A subscriber
// playing the cloud records every payload byte for byte. Whatever the kill interrupted, a seq means one payload,
// nothing appended is lost, no seq is issued twice, and no meter's billing registerSeq names two different readings.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSqliteOutbox } from "../../edge/outbox/sqlite-outbox.js";
import type { OutboxStats } from "../../edge/outbox/outbox.js";
import { startTestBroker, type TestBroker } from "../harness/broker.js";
import { startField, type RunningField } from "../harness/programs.js";
import { gateClient, type ClientGate } from "./fixtures/broker-gate.js";
import { CloudRecorder, missingSeqs, until, type RecordedMessage } from "./fixtures/cloud-recorder.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const CHILD = join(HERE, "fixtures", "edge-child.ts");
const GW = "kill-gw-1";
const METERS = Array.from({ length: 20 }, (_, i) => ({ id: `m${String(i + 1).padStart(2, "0")}`, unit: i + 1 }));
const OUTBOX_LIMITS = { maxBytes: 256 << 20, maxCount: 1_000_000 };

interface EdgeChild {
  readonly proc: ChildProcess;
  readonly statusPort: number;
  readonly exited: Promise<void>;
  stderr(): string;
}

let dir: string;
let configPath: string;
let sim: RunningField;
let broker: TestBroker;
let gate: ClientGate;
let cloud: CloudRecorder;
const children: EdgeChild[] = [];

/** What each kill left behind, measured with the child dead. */
interface KillRecord {
  /** Every seq the cloud had received from the killed process. */
  readonly seenBefore: ReadonlySet<number>;
  /** The outbox's last issued seq right after the kill. */
  readonly lastSeqAfterKill: number;
  /** Messages in flight or queued at the kill. */
  readonly storedAtKill: number;
}
const kills: KillRecord[] = [];
let finalStats: OutboxStats;
let finalStoredSeqs: Set<number>;

async function startChild(): Promise<EdgeChild> {
  const proc = spawn(process.execPath, ["--import", "tsx", CHILD, configPath], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } });
  children.push({ proc, statusPort: 0, exited: Promise.resolve(), stderr: () => "" });
  let stderr = "";
  let stdout = "";
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (c: string) => (stderr += c));
  proc.stdout?.setEncoding("utf8");
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const statusPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`edge child not ready within 30 s: ${stderr.slice(0, 2000)}`)), 30_000);
    proc.stdout?.on("data", (c: string) => {
      stdout += c;
      const m = /ready (\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`edge child exited (${String(code ?? signal)}) before it was ready: ${stderr.slice(0, 2000)}`));
    });
  });
  const child = { proc, statusPort, exited, stderr: () => stderr };
  children[children.length - 1] = child;
  return child;
}

async function outboxOf(child: EdgeChild): Promise<OutboxStats> {
  const res = await fetch(`http://127.0.0.1:${child.statusPort}/status`);
  return ((await res.json()) as { outbox: OutboxStats }).outbox;
}

/** Open the outbox file while no gateway runs: its stats and the seqs still stored. */
function readOutbox(): { stats: OutboxStats; stored: Set<number> } {
  const outbox = openSqliteOutbox({ path: join(dir, "outbox.db"), ...OUTBOX_LIMITS });
  try {
    const stats = outbox.stats();
    return { stats, stored: new Set(outbox.peek(stats.count + 1).map((e) => e.seq)) };
  } finally {
    outbox.close();
  }
}

/** SIGKILL the child from inside the cloud's message handler once `count` messages arrived after `fromIndex`. */
function killAfter(child: EdgeChild, fromIndex: number, count: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const onMessage = (): void => {
      if (cloud.messages.length - fromIndex < count) return;
      cloud.client.off("message", onMessage);
      child.proc.kill("SIGKILL");
      resolve();
    };
    cloud.client.on("message", onMessage);
  });
}

/** Kill `child` mid-drain: hold its connection for `backlogMs`, let it drain, kill after `killAt(backlog)` messages. */
async function drainAndKill(child: EdgeChild, backlogMs: number, killAt: (backlog: number) => number): Promise<void> {
  await until(() => gate.attempts > 0, 15_000, () => "the child's CONNECT");
  await new Promise((r) => setTimeout(r, backlogMs));
  const backlog = (await outboxOf(child)).count;
  const fromIndex = cloud.messages.length;
  const killed = killAfter(child, fromIndex, Math.max(1, killAt(backlog)));
  gate.open();
  await Promise.race([killed, new Promise((_, reject) => setTimeout(() => reject(new Error(`no drain to kill into: ${cloud.summary()}`)), 20_000))]);
  gate.hold();
  await child.exited;
  // Let the broker forward whatever the dead process had handed it before the cut.
  await new Promise((r) => setTimeout(r, 300));
  const { stats } = readOutbox();
  kills.push({ seenBefore: cloud.seqs(), lastSeqAfterKill: stats.lastSeq, storedAtKill: stats.count });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "edge-kill-"));
  configPath = join(dir, "edge.json");
  sim = await startField(
    {
      name: "kill",
      clock: { speed: 60, tickMs: 50 },
      buses: [{ id: "field", tcp: { port: 0 } }],
      devices: METERS.map((m) => ({ id: m.id, bus: "field", unit: m.unit, profile: "hiking-dds238-2-zn", meter: { loads: [{ kind: "constant", watts: 500 + 100 * m.unit }], initialImportWh: 10_000 * m.unit } })),
    },
    { autoTick: true },
  );
  broker = await startTestBroker();
  gate = gateClient(broker.aedes, GW, "hold");
  cloud = await CloudRecorder.connect(broker.url, [`agri/v1/gw/${GW}/up/#`]);
  writeFileSync(
    configPath,
    JSON.stringify({
      gateway: { id: GW, password: "pw" },
      broker: { url: broker.url, reconnectMinMs: 100, reconnectMaxMs: 1000 },
      buses: [{ id: "field", tcp: { host: "127.0.0.1", port: sim.tcpPort("field") }, timeoutMs: 500 }],
      devices: METERS.map((m) => ({ id: m.id, bus: "field", unit: m.unit, profile: "hiking-dds238-2-zn", role: "meter", pollIntervalMs: 100 })),
      outbox: { path: join(dir, "outbox.db"), ...OUTBOX_LIMITS },
      statePath: join(dir, "state.db"),
      telemetry: { intervalMs: 1000, billingIntervalMs: 1000 },
      status: { port: 0 },
    }),
  );

  // Run 1: a 3 s backlog, killed half-way through its drain.
  await drainAndKill(await startChild(), 3000, (backlog) => Math.floor(backlog / 2));
  // Run 2: a 1.5 s backlog, killed a few messages into the drain.
  await drainAndKill(await startChild(), 1500, () => 5);
  // Run 3: drains everything, then stops cleanly.
  const last = await startChild();
  gate.open();
  const target = (kills[1]?.lastSeqAfterKill ?? 0) + 40;
  await until(() => missingSeqs(cloud.seqs(), target).length === 0, 30_000, () => `seqs 1..${target}; missing ${JSON.stringify(missingSeqs(cloud.seqs(), target).slice(0, 40))}`);
  last.proc.kill("SIGTERM");
  await last.exited;
  const final = readOutbox();
  finalStats = final.stats;
  finalStoredSeqs = final.stored;
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exited));
  await cloud?.close();
  await broker?.close();
  await sim?.close();
});

const withSeq = (): RecordedMessage[] => cloud.messages.filter((m) => m.seq !== undefined);

describe("a gateway killed with SIGKILL while it publishes", () => {
  it("was killed with messages still in its outbox both times", () => {
    expect(kills).toHaveLength(2);
    for (const k of kills) expect(k.storedAtKill).toBeGreaterThan(0);
  });

  it("re-sends a message only as the same bytes: one seq, one payload", () => {
    const bySeq = new Map<number, string>();
    for (const m of withSeq()) {
      const first = bySeq.get(m.seq as number);
      if (first === undefined) bySeq.set(m.seq as number, m.raw);
      else expect(m.raw, `seq ${m.seq}`).toBe(first);
    }
  });

  it("loses nothing: every seq from the first to the last appended was delivered or is still in the outbox", () => {
    const received = cloud.seqs();
    // Everything appended before either kill was delivered after the restarts.
    expect(missingSeqs(received, kills[1]?.lastSeqAfterKill ?? 0)).toEqual([]);
    const notDelivered = missingSeqs(received, finalStats.lastSeq);
    expect(notDelivered.filter((s) => !finalStoredSeqs.has(s))).toEqual([]);
    expect(Math.max(...received)).toBeLessThanOrEqual(finalStats.lastSeq);
  });

  it("never reuses a seq: each restarted agent's first seq is above every seq issued or seen before the kill", () => {
    const births = withSeq()
      .filter((m) => m.topic.endsWith("/up/birth"))
      .map((m) => m.seq as number);
    const birthSeqs = [...new Set(births)].sort((a, b) => a - b);
    expect(birthSeqs).toHaveLength(3);
    kills.forEach((k, i) => {
      const restartedFirst = birthSeqs[i + 1] as number;
      expect(restartedFirst).toBeGreaterThan(Math.max(...k.seenBefore));
      // The birth is the new agent's first append: the seq right after the last one the killed process issued.
      expect(restartedFirst).toBe(k.lastSeqAfterKill + 1);
    });
  });

  it("never names two different readings with one meter's billing registerSeq, and keeps it rising with the seq", () => {
    const byKey = new Map<string, string>();
    const highestBefore = new Map<string, number>();
    const bySeq = new Map(withSeq().filter((m) => m.topic.endsWith("/up/billing")).map((m) => [m.seq as number, m]));
    const billing = [...bySeq.values()].sort((a, b) => (a.seq as number) - (b.seq as number));
    expect(billing.length).toBeGreaterThan(METERS.length);
    for (const m of billing) {
      const highestHere = new Map<string, number>();
      for (const r of m.json.readings as { meterId: string; registerSeq: number; pointId: string; energyWh: number; at: string; raw: unknown }[]) {
        const key = `${r.meterId}/${r.registerSeq}`;
        const value = JSON.stringify([r.pointId, r.energyWh, r.at, r.raw]);
        const seen = byKey.get(key);
        if (seen === undefined) byKey.set(key, value);
        else expect(value, key).toBe(seen);
        // A kill may skip a registerSeq (committed, message never appended), never go back to one.
        expect(r.registerSeq, `${r.meterId} at seq ${m.seq}`).toBeGreaterThan(highestBefore.get(r.meterId) ?? 0);
        highestHere.set(r.meterId, Math.max(highestHere.get(r.meterId) ?? 0, r.registerSeq));
      }
      for (const [meterId, registerSeq] of highestHere) highestBefore.set(meterId, registerSeq);
    }
  });
});
