// A broker outage end to end (ARCHITECTURE.md invariant 8): the simulator feeds the edge agent, the agent keeps
// polling into its durable outbox while the broker is gone, the uplink finds a broker restarted on the same port by
// itself, and the backlog drains with every seq delivered — alarms first, billing readings and events next, plain
// telemetry last. The link's state is the retained status topic: the broker publishes the gateway's last will when the
// link dies, and the gateway says "online" again when it is back.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyDeviceAction } from "../../firmware-sim/control.js";
import { EdgeRunner } from "../../edge/agent/runner.js";
import { parseEdgeConfig } from "../../edge/config/load.js";
import type { OutboxStats } from "../../edge/outbox/outbox.js";
import type { UplinkStats } from "../../edge/uplink/uplink.js";
import { startTestBroker, type TestBroker } from "../harness/broker.js";
import { startField, type RunningField } from "../harness/programs.js";
import { dropClient, gateClient, type ClientGate } from "./fixtures/broker-gate.js";
import { CloudRecorder, missingSeqs, until, type RecordedMessage } from "./fixtures/cloud-recorder.js";

const GW = "outage-gw-1";
const UP = `agri/v1/gw/${GW}/up/#`;
const STATUS = `agri/v1/gw/${GW}/up/status`;

let sim: RunningField;
let broker: TestBroker;
let gate: ClientGate;
let cloud: CloudRecorder;
let runner: EdgeRunner;

interface Snapshot {
  outbox: OutboxStats;
  uplink: UplinkStats;
}

async function snapshot(): Promise<Snapshot> {
  const res = await fetch(`http://127.0.0.1:${runner.statusPort ?? 0}/status`);
  return (await res.json()) as Snapshot;
}

/** Drain rank of an uplink topic, as edge/outbox/outbox.ts DRAIN_RANK ranks the producer's priorities. */
function rankOf(m: RecordedMessage): number {
  const name = m.topic.split("/").pop();
  if (name === "alarm") return 0;
  if (name === "telemetry") return 2;
  return 1; // billing, events, birth, cmd-ack
}

beforeAll(async () => {
  sim = await startField(
    {
      name: "outage",
      clock: { speed: 60, tickMs: 50 },
      buses: [{ id: "field", tcp: { port: 0 } }],
      devices: [
        { id: "pump-a", bus: "field", unit: 1, profile: "hiking-dds238-2-zn", meter: { loads: [{ kind: "constant", watts: 3000 }], initialImportWh: 100_000 } },
        { id: "pump-b", bus: "field", unit: 2, profile: "hiking-dds238-2-zn", meter: { loads: [{ kind: "constant", watts: 1500 }], initialImportWh: 200_000 } },
        { id: "fire-1", bus: "field", unit: 7, profile: "agri-fire-node", fire: { smokeNoiseDbPerM: 0.001 } },
      ],
    },
    { autoTick: true },
  );
  broker = await startTestBroker();
  gate = gateClient(broker.aedes, GW);
  cloud = await CloudRecorder.connect(broker.url, [UP]);
  const dir = mkdtempSync(join(tmpdir(), "edge-outage-"));
  const config = parseEdgeConfig({
    gateway: { id: GW, password: "pw" },
    broker: { url: broker.url, reconnectMinMs: 200, reconnectMaxMs: 1000 },
    buses: [{ id: "field", tcp: { host: "127.0.0.1", port: sim.tcpPort("field") }, timeoutMs: 300 }],
    devices: [
      { id: "pump-a", bus: "field", unit: 1, profile: "hiking-dds238-2-zn", role: "meter", pollIntervalMs: 200 },
      { id: "pump-b", bus: "field", unit: 2, profile: "hiking-dds238-2-zn", role: "meter", pollIntervalMs: 200 },
      { id: "fire-1", bus: "field", unit: 7, profile: "agri-fire-node", role: "fire-sensor", pollIntervalMs: 200, fire: { consecutiveK: 2 } },
    ],
    outbox: { path: join(dir, "outbox.db") },
    statePath: join(dir, "state.db"),
    telemetry: { intervalMs: 1000, billingIntervalMs: 1000 },
    status: { port: 0 },
  });
  runner = new EdgeRunner(config, { log: pino({ level: process.env.E2E_LOG ?? "silent" }), version: "0.1.0" });
  await runner.start();
}, 30_000);

afterAll(async () => {
  await runner?.stop();
  await cloud?.close();
  await broker?.close();
  await sim?.close();
});

describe("uplink through a broker outage", () => {
  it("publishes its retained last will 'offline' when the link dies and 'online' again once it has reconnected by itself", async () => {
    const online = await cloud.waitFor((m) => m.topic === STATUS && m.json.state === "online", 10_000, "first online status");
    const connectsBefore = (await snapshot()).uplink.connects;
    // Refuse the gateway for a while after its link dies, so the will is the retained truth long enough to look at.
    gate.refuse();
    const attemptsBefore = gate.attempts;
    expect(dropClient(broker.aedes, GW)).toBe(true);
    const will = await cloud.waitFor((m) => m.topic === STATUS && m.json.state === "offline" && m.index > online.index, 5000, "last will");
    expect(will.json).toEqual({ v: 1, gatewayId: GW, state: "offline", reason: "connection lost" });
    const late = await CloudRecorder.connect(broker.url, [STATUS]);
    try {
      const retained = await late.waitFor((m) => m.topic === STATUS, 5000, "retained status");
      expect(retained.retain).toBe(true);
      expect(retained.json.state).toBe("offline");
    } finally {
      await late.close();
    }
    // While refused, the uplink keeps trying on its own (back-off from reconnectMinMs) and says why it is offline.
    await until(() => gate.attempts >= attemptsBefore + 2, 10_000, () => `two refused reconnects (saw ${gate.attempts - attemptsBefore})`);
    const refused = await snapshot();
    expect(refused.uplink.connected).toBe(false);
    expect(refused.uplink.lastError).toMatch(/not authorized/i);
    gate.open();
    await cloud.waitFor((m) => m.topic === STATUS && m.json.state === "online" && m.index > will.index, 10_000, "online again");
    expect((await snapshot()).uplink.connects).toBeGreaterThan(connectsBefore);
  });

  let backlogLastSeq = 0;
  let drainStartIndex = 0;

  it("keeps polling into the durable outbox while the broker is down, fire alarms included", async () => {
    await until(async () => (await snapshot()).outbox.count === 0, 10_000, () => "outbox drained before the outage");
    await broker.close();
    const downAt = Date.now();
    const before = (await snapshot()).outbox;
    applyDeviceAction(sim.field, "fire-1", { action: "start-fire", smokeRiseDbPerMPerMin: 0.2 });
    let during = before;
    await until(
      async () => {
        during = (await snapshot()).outbox;
        return (during.byClass.alarm.count >= 1 && during.byClass.billing.count >= 2 && during.byClass.telemetry.count >= 2 && Date.now() - downAt >= 3000) || undefined;
      },
      20_000,
      () => `a backlog of alarms, billing and telemetry (outbox ${JSON.stringify(during.byClass)})`,
    );
    expect(during.count).toBeGreaterThan(before.count);
    expect(during.lastSeq).toBeGreaterThan(before.lastSeq);
    expect((await snapshot()).uplink.connected).toBe(false);
  });

  it("reconnects by itself to a broker restarted on the same port", async () => {
    const port = broker.port;
    broker = await startTestBroker(port);
    // Hold the gateway until the cloud has resubscribed on the new broker (which keeps no sessions of the old one),
    // so that nothing the gateway drains is published to nobody.
    gate = gateClient(broker.aedes, GW, "hold");
    const cloudId = cloud.clientId;
    const resubscribed = new Promise<void>((resolve) => broker.aedes.on("subscribe", (_subs, client) => client.id === cloudId && resolve()));
    await resubscribed;
    await until(() => gate.attempts >= 1, 15_000, () => "the gateway's reconnect");
    const s = await snapshot();
    backlogLastSeq = s.outbox.lastSeq;
    drainStartIndex = cloud.messages.length;
    gate.open();
    await cloud.waitFor((m) => m.topic === STATUS && m.json.state === "online" && m.index >= drainStartIndex, 10_000, "online on the new broker");
    expect(broker.port).toBe(port);
  });

  it("announces itself with a birth at start and again after every reconnect", async () => {
    // Start, the reconnect after the dropped link, the reconnect to the restarted broker.
    const births = await until(() => {
      const found = cloud.messages.filter((m) => m.topic.endsWith("/up/birth"));
      return new Set(found.map((m) => m.seq)).size >= 3 && found;
    }, 15_000, () => `three births; saw ${cloud.summary()}`);
    const last = births[births.length - 1] as RecordedMessage;
    expect(last.index).toBeGreaterThan(drainStartIndex);
    expect(last.json).toMatchObject({ gatewayId: GW, version: "0.1.0", startedAt: births[0]?.json.startedAt });
  });

  it("drains the backlog with every seq appended delivered (duplicates allowed, none missing)", async () => {
    expect(backlogLastSeq).toBeGreaterThan(0);
    await until(() => missingSeqs(cloud.seqs(), backlogLastSeq).length === 0, 20_000, () => `seqs 1..${backlogLastSeq}; missing ${JSON.stringify(missingSeqs(cloud.seqs(), backlogLastSeq).slice(0, 50))}`);
    // And what keeps coming after the drain goes out too.
    const later = (await snapshot()).outbox.lastSeq;
    await until(() => missingSeqs(cloud.seqs(), later).length === 0, 20_000, () => `seqs 1..${later}; missing ${JSON.stringify(missingSeqs(cloud.seqs(), later).slice(0, 50))}`);
    // One (gatewayId, seq) is one message: a duplicate is the same bytes, never another message under a reused seq.
    const bySeq = new Map<number, string>();
    for (const m of cloud.messages) {
      if (m.seq === undefined) continue;
      expect(m.json.gatewayId).toBe(GW);
      const first = bySeq.get(m.seq);
      if (first === undefined) bySeq.set(m.seq, m.raw);
      else expect(m.raw).toBe(first);
    }
  });

  it("drains alarms first, then billing readings and events, then plain telemetry", () => {
    const seenBefore = new Set(cloud.messages.slice(0, drainStartIndex).flatMap((m) => (m.seq === undefined ? [] : [m.seq])));
    const firstArrivals: RecordedMessage[] = [];
    const counted = new Set<number>();
    for (const m of cloud.messages.slice(drainStartIndex)) {
      if (m.seq === undefined || m.seq > backlogLastSeq || seenBefore.has(m.seq) || counted.has(m.seq)) continue;
      counted.add(m.seq);
      firstArrivals.push(m);
    }
    const ranks = firstArrivals.map(rankOf);
    // The check means something only if the backlog held every class.
    expect(new Set(ranks)).toEqual(new Set([0, 1, 2]));
    expect(firstArrivals.some((m) => m.topic.endsWith("/up/billing"))).toBe(true);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    // Within a class the drain keeps seq order.
    for (const rank of [0, 1, 2]) {
      const seqs = firstArrivals.filter((m) => rankOf(m) === rank).map((m) => m.seq as number);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
  });
});
