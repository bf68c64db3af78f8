// End to end through real parts: the simulator speaking Modbus TCP, the edge agent polling it, a real MQTT broker
// (aedes) and a subscriber playing the cloud. A farmer's credit runs the pump, runs out and cuts it; a fire raises an
// alarm on the alarm topic; a stale grant replayed is refused.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyDeviceAction } from "../../firmware-sim/control.js";
import type { Field } from "../../firmware-sim/field.js";
import type { MeterModel } from "../../firmware-sim/models/meter.js";
import { EdgeRunner } from "../../edge/agent/runner.js";
import { parseEdgeConfig } from "../../edge/config/load.js";
import { startTestBroker, TestSubscriber, eventually, type TestBroker } from "../harness/broker.js";
import { startField, type RunningField } from "../harness/programs.js";

const GW = "e2e-gw-1";
let sim: RunningField;
let field: Field;
let broker: TestBroker;
let cloud: TestSubscriber;
let runner: EdgeRunner;
let commandSeq = 0;

function command(body: Record<string, unknown>): Record<string, unknown> {
  commandSeq++;
  const now = Date.now();
  return { v: 1, commandId: `cmd-e2e-${String(commandSeq).padStart(4, "0")}`, issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 60_000).toISOString(), command: body };
}

beforeAll(async () => {
  sim = await startField({
    name: "e2e",
    clock: { speed: 60, tickMs: 50 },
    buses: [{ id: "field", tcp: { port: 0 } }],
    devices: [
      { id: "pump-li", bus: "field", unit: 3, profile: "hiking-dds238-2-zn", meter: { loads: [{ kind: "constant", watts: 3600 }], initialImportWh: 500_000, relayClosed: false } },
      { id: "fire-1", bus: "field", unit: 7, profile: "agri-fire-node", fire: { smokeNoiseDbPerM: 0.001 } },
    ],
  }, { autoTick: true });
  field = sim.field;
  broker = await startTestBroker();
  cloud = await TestSubscriber.connect(broker.url, [`agri/v1/gw/${GW}/up/#`]);
  const dir = mkdtempSync(join(tmpdir(), "edge-e2e-"));
  const config = parseEdgeConfig({
    gateway: { id: GW, password: "pw" },
    broker: { url: broker.url, reconnectMinMs: 200, reconnectMaxMs: 1000 },
    buses: [{ id: "field", tcp: { host: "127.0.0.1", port: sim.tcpPort("field") }, timeoutMs: 300 }],
    devices: [
      { id: "pump-li", bus: "field", unit: 3, profile: "hiking-dds238-2-zn", role: "meter", pollIntervalMs: 200, supply: { cut: { kind: "meter-relay" }, warnAtWh: [100, 30] } },
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

const meter = (): MeterModel => field.requireDevice("pump-li") as MeterModel;

describe("edge agent end to end", () => {
  it("announces itself with a birth message and a retained online status", async () => {
    const birth = await cloud.waitFor((m) => m.topic.endsWith("/up/birth"), 10_000, "birth");
    expect(birth.json).toMatchObject({ v: 1, gatewayId: GW, version: "0.1.0" });
    expect((birth.json.devices as unknown[]).length).toBe(2);
    const status = await cloud.waitFor((m) => m.topic.endsWith("/up/status") && m.json.state === "online", 10_000, "status");
    expect(status.json.gatewayId).toBe(GW);
  });

  it("keeps the supply cut while no credit was ever granted", async () => {
    await cloud.waitFor((m) => m.topic.endsWith("/up/billing"), 10_000, "billing");
    expect(meter().relayClosed).toBe(false);
  });

  it("sends billing readings with the raw register words, integer Wh and a rising per-meter registerSeq", async () => {
    const billing = await cloud.waitFor((m) => m.topic.endsWith("/up/billing"), 10_000, "billing");
    const r = (billing.json.readings as Record<string, unknown>[]).find((x) => x.pointId === "importEnergy") as Record<string, unknown>;
    expect(r.energyWh).toBe(500_000);
    expect(r.raw).toEqual({ words: [0, 50_000], value: 50_000 });
    expect(r.conversion).toEqual({ exact: true, droppedWh: 0 });
    expect(typeof billing.json.seq).toBe("number");
  });

  it("runs the pump on a credit grant and cuts it when the register reaches the limit, with verified relay events", async () => {
    const start = Math.floor(meter().importRegisterWh / 10) * 10;
    const limitWh = start + 300;
    const grant = command({ type: "credit.grant", meterId: "pump-li", grantSeq: 1, limitWh, reconnect: "automatic" });
    await cloud.publish(`agri/v1/gw/${GW}/down/cmd`, grant);
    const ack = await cloud.waitFor((m) => m.topic.endsWith("/up/cmd-ack") && m.json.commandId === grant.commandId, 10_000, "grant ack");
    expect(ack.json.status).toBe("done");
    const closed = await cloud.waitFor((m) => m.topic.endsWith("/up/events") && (m.json.events as { type: string }[])[0]?.type === "relay.closed", 10_000, "relay.closed");
    expect((closed.json.events as Record<string, unknown>[])[0]).toMatchObject({ reason: "credit_granted", verified: true, registerValue: 1, grantSeq: 1 });
    await eventually(() => meter().relayClosed, 5000, "meter relay closed");
    const opened = await cloud.waitFor(
      (m) => m.topic.endsWith("/up/events") && (m.json.events as { type: string; reason: string; grantSeq?: number }[]).some((e) => e.type === "relay.opened" && e.grantSeq === 1),
      20_000,
      "relay.opened for grant 1",
    );
    const ev = (opened.json.events as Record<string, unknown>[])[0] as { registerWh: number; reason: string; verified: boolean; registerValue: number };
    expect(ev.reason).toBe("credit_exhausted");
    expect(ev.verified).toBe(true);
    expect(ev.registerValue).toBe(0);
    expect(ev.registerWh).toBeGreaterThanOrEqual(limitWh);
    expect(meter().relayClosed).toBe(false);
    // Cut within a couple of polls: at 60× speed a 3.6 kW pump adds 60 Wh per real second, polls are 200 ms apart.
    expect(meter().importRegisterWh - limitWh).toBeLessThan(120);
    const warning = await cloud.waitFor((m) => m.topic.endsWith("/up/events") && (m.json.events as { type: string }[])[0]?.type === "credit.low", 5000, "credit.low");
    expect((warning.json.events as Record<string, unknown>[])[0]).toMatchObject({ meterId: "pump-li", grantSeq: 1 });
  });

  it("refuses a replayed older grant and keeps the supply cut", async () => {
    const stale = command({ type: "credit.grant", meterId: "pump-li", grantSeq: 1, limitWh: 10_000_000, reconnect: "automatic" });
    await cloud.publish(`agri/v1/gw/${GW}/down/cmd`, stale);
    const ack = await cloud.waitFor((m) => m.topic.endsWith("/up/cmd-ack") && m.json.commandId === stale.commandId, 10_000, "stale ack");
    expect(ack.json).toMatchObject({ status: "rejected", reason: "stale_sequence" });
    await new Promise((r) => setTimeout(r, 500));
    expect(meter().relayClosed).toBe(false);
  });

  it("rejects an expired command and a malformed one without executing them", async () => {
    const expired: Record<string, unknown> = { ...command({ type: "credit.grant", meterId: "pump-li", grantSeq: 9, limitWh: 10_000_000, reconnect: "automatic" }), issuedAt: "2026-01-01T00:00:00Z", expiresAt: "2026-01-01T00:01:00Z" };
    await cloud.publish(`agri/v1/gw/${GW}/down/cmd`, expired);
    const ack = await cloud.waitFor((m) => m.topic.endsWith("/up/cmd-ack") && m.json.commandId === expired.commandId, 10_000, "expired ack");
    expect(ack.json.status).toBe("rejected");
    expect(String(ack.json.reason)).toMatch(/expired/);
    const bad = { v: 1, commandId: "cmd-bad-0001", issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString(), command: { type: "credit.grant", meterId: "pump-li", grantSeq: 10, limitWh: 1.5, reconnect: "automatic" } };
    await cloud.publish(`agri/v1/gw/${GW}/down/cmd`, bad);
    const badAck = await cloud.waitFor((m) => m.topic.endsWith("/up/cmd-ack") && m.json.commandId === "cmd-bad-0001", 10_000, "bad ack");
    expect(badAck.json.status).toBe("rejected");
    expect(String(badAck.json.reason)).toMatch(/limitWh/);
    expect(meter().relayClosed).toBe(false);
  });

  it("publishes a fire alarm on the alarm topic when smoke rises", async () => {
    applyDeviceAction(field, "fire-1", { action: "start-fire", smokeRiseDbPerMPerMin: 0.2 });
    const alarm = await cloud.waitFor((m) => m.topic.endsWith("/up/alarm") && (m.json.event as { type: string }).type === "alarm.raised", 15_000, "alarm");
    expect(alarm.json.event).toMatchObject({ deviceId: "fire-1" });
    expect(["device_flag", "smoke_density"]).toContain((alarm.json.event as { cause: string }).cause);
  });

  it("shows devices, relay state and credit on the local status page", async () => {
    const res = await fetch(`http://127.0.0.1:${runner.statusPort ?? 0}/status`);
    const s = (await res.json()) as { devices: { id: string; relay?: string; online: boolean }[]; outbox: { count: number } };
    expect(s.devices.find((d) => d.id === "pump-li")).toMatchObject({ relay: "open", online: true });
  });
});
