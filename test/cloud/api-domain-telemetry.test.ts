// Telemetry routes over a real embedded telemetry store: a meter's power and energy, a sensor's history, always in
// buckets with a bounded number of points, and only for those who may see the meter or the village.

import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultBucketMs, MAX_POINTS, telemetryRoutes } from "../../cloud/api/routes/telemetry.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { openSqliteTelemetryStore, type SqliteTelemetryStore } from "../../cloud/telemetry/sqlite-store.js";
import type { TelemetryPoint } from "../../cloud/telemetry/sink.js";
import type { TelemetrySample } from "../../protocols/mqtt/messages.js";
import { ADMIN, call, field, FARMER_LI, FARMER_WANG, OFFICER_V1, OFFICER_V2, openHarness, seedVillages, T0, type Answer, type Harness } from "./api-domain-harness.js";

const MINUTE_MS = 60_000;
let h: Harness;
let telemetry: SqliteTelemetryStore;

beforeEach(async () => {
  const secretHash = await hashSecret("gateway-secret-for-tests-0123456789");
  h = await openHarness(async (app, parts) => {
    await seedVillages(parts.registry, parts.ledger, secretHash);
    telemetry = openSqliteTelemetryStore({ path: join(parts.dir, "telemetry.db"), now: () => parts.clock.nowMs, flushIntervalMs: 5 });
    await telemetryRoutes(app, { registry: parts.registry, telemetry });
  });
  const samples: TelemetrySample[] = [];
  // One sample a minute for two hours: power rising 1 kW per minute, energy +0.1 kWh per minute, smoke level flat.
  for (let minute = 0; minute < 120; minute++) {
    const at = new Date(T0 + minute * MINUTE_MS).toISOString();
    samples.push({ deviceId: "pump-li", pointId: "activePower", role: "active_power", value: minute, unit: "kW", at });
    samples.push({ deviceId: "pump-li", pointId: "importEnergy", role: "import_energy", value: 100 + minute / 10, unit: "kWh", at });
    samples.push({ deviceId: "smoke-1", pointId: "smokeDensity", role: "smoke_density", value: 3, unit: "dB/m", at });
  }
  await telemetry.write("gw-v1", samples);
  await telemetry.flush();
});

afterEach(async () => {
  await telemetry.close();
  await h.close();
});

const points = (answer: Answer) => field<TelemetryPoint[]>(answer, "points");
const range = `fromMs=${T0}&toMs=${T0 + 120 * MINUTE_MS}`;

describe("a meter's series", () => {
  it("gives the farmer their own meter's power in the buckets asked for", async () => {
    const answer = await call(h.app, "GET", `/meters/pump-li/power?${range}&everyMs=${30 * MINUTE_MS}`, FARMER_LI);
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ deviceId: "pump-li", gatewayId: "gw-v1", pointId: "activePower", everyMs: 30 * MINUTE_MS });
    expect(points(answer).map((p) => [p.atMs - T0, p.min, p.max, p.count])).toEqual([
      [0, 0, 29, 30],
      [30 * MINUTE_MS, 30, 59, 30],
      [60 * MINUTE_MS, 60, 89, 30],
      [90 * MINUTE_MS, 90, 119, 30],
    ]);
  });

  it("gives the import-energy register on the energy route", async () => {
    const answer = await call(h.app, "GET", `/meters/pump-li/energy?${range}&everyMs=${60 * MINUTE_MS}`, OFFICER_V1);
    expect(field(answer, "pointId")).toBe("importEnergy");
    expect(field<{ last: number }[]>(answer, "points").map((p) => p.last)).toEqual([105.9, 111.9]);
  });

  it("picks a bucket that keeps the answer within the target when none is asked for", async () => {
    const answer = await call(h.app, "GET", `/meters/pump-li/power?${range}`, FARMER_LI);
    expect(field(answer, "everyMs")).toBe(defaultBucketMs(120 * MINUTE_MS));
    expect(points(answer).length).toBeLessThanOrEqual(500);
    expect(defaultBucketMs(365 * 86_400_000) / 86_400_000).toBe(1);
    expect(defaultBucketMs(10 * 365 * 86_400_000) / 86_400_000).toBe(8);
  });

  it("refuses more buckets than the bound, buckets under a second, and a reversed range", async () => {
    const tooMany = await call(h.app, "GET", `/meters/pump-li/power?fromMs=${T0}&toMs=${T0 + (MAX_POINTS + 1) * 1000}&everyMs=1000`, FARMER_LI);
    expect(tooMany.status).toBe(400);
    expect((await call(h.app, "GET", `/meters/pump-li/power?${range}&everyMs=999`, FARMER_LI)).status).toBe(400);
    expect((await call(h.app, "GET", `/meters/pump-li/power?fromMs=${T0}&toMs=${T0}`, FARMER_LI)).status).toBe(400);
    expect((await call(h.app, "GET", `/meters/pump-li/power?fromMs=-1&toMs=${T0}`, FARMER_LI)).status).toBe(400);
  });

  it("refuses a farmer a neighbour's meter, an officer another village's, and answers 404 for an unknown meter", async () => {
    expect((await call(h.app, "GET", `/meters/pump-li/power?${range}`, FARMER_WANG)).status).toBe(403);
    expect((await call(h.app, "GET", `/meters/pump-li/power?${range}`, OFFICER_V2)).status).toBe(403);
    expect((await call(h.app, "GET", `/meters/pump-nope/power?${range}`, ADMIN)).status).toBe(404);
  });
});

describe("a sensor's history", () => {
  it("gives an officer of the gateway's village a sensor's history", async () => {
    const answer = await call(h.app, "GET", `/gateways/gw-v1/devices/smoke-1/history?${range}&pointId=smokeDensity&everyMs=${60 * MINUTE_MS}`, OFFICER_V1);
    expect(points(answer).map((p) => [p.mean, p.count])).toEqual([
      [3, 60],
      [3, 60],
    ]);
  });

  it("refuses an officer of another village and a farmer, and answers 404 for an unknown gateway", async () => {
    expect((await call(h.app, "GET", `/gateways/gw-v1/devices/smoke-1/history?${range}&pointId=smokeDensity`, OFFICER_V2)).status).toBe(403);
    expect((await call(h.app, "GET", `/gateways/gw-v1/devices/smoke-1/history?${range}&pointId=smokeDensity`, FARMER_LI)).status).toBe(403);
    expect((await call(h.app, "GET", `/gateways/gw-nope/devices/smoke-1/history?${range}&pointId=smokeDensity`, ADMIN)).status).toBe(404);
  });

  it("needs the point named", async () => {
    expect((await call(h.app, "GET", `/gateways/gw-v1/devices/smoke-1/history?${range}`, OFFICER_V1)).status).toBe(400);
  });
});
