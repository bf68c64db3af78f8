import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openTelemetryStore, telemetryConfigFromEnv } from "./open-store.js";

describe("telemetry store configuration", () => {
  it("keeps the embedded store when nothing is configured, with the retention the environment gives", () => {
    expect(telemetryConfigFromEnv({})).toEqual({ kind: "sqlite" });
    expect(telemetryConfigFromEnv({ AGRI_TELEMETRY_RETENTION_DAYS: "90" })).toEqual({ kind: "sqlite", retentionDays: 90 });
  });

  it("reads an InfluxDB 1.x or 2.x server from the environment", () => {
    expect(telemetryConfigFromEnv({ AGRI_TELEMETRY: "influx-v1", INFLUX_URL: "http://127.0.0.1:8086", INFLUX_DATABASE: "agri" })).toEqual({ kind: "influx-v1", url: "http://127.0.0.1:8086", database: "agri" });
    expect(telemetryConfigFromEnv({ AGRI_TELEMETRY: "influx-v2", INFLUX_URL: "http://127.0.0.1:8428", INFLUX_BUCKET: "agri" })).toEqual({ kind: "influx-v2", url: "http://127.0.0.1:8428", bucket: "agri" });
  });

  it("refuses an incomplete or nonsensical configuration before anything starts", () => {
    expect(() => telemetryConfigFromEnv({ AGRI_TELEMETRY: "influx-v1", INFLUX_URL: "http://127.0.0.1:8086" })).toThrow(/database/);
    expect(() => telemetryConfigFromEnv({ AGRI_TELEMETRY: "influx-v2", INFLUX_URL: "not a url" })).toThrow(/url/i);
    expect(() => telemetryConfigFromEnv({ AGRI_TELEMETRY_RETENTION_DAYS: "0.5" })).toThrow();
  });

  it("opens the embedded store in the data directory, where it keeps what it is given", async () => {
    const dir = mkdtempSync(join(tmpdir(), "open-store-"));
    const atMs = Date.now() - 1000;
    try {
      const store = openTelemetryStore({ kind: "sqlite" }, dir, Date.now);
      await store.write("gw-1", [{ deviceId: "m1", pointId: "p_active_power", role: "active_power", value: 1500, unit: "W", at: new Date(atMs).toISOString() }]);
      await store.flush({ timeoutMs: 5_000 });
      expect((await store.query({ deviceId: "m1", pointId: "p_active_power", fromMs: atMs - 1, toMs: atMs + 1 })).map((p) => p.last)).toEqual([1500]);
      await store.close();
      expect(existsSync(join(dir, "telemetry.db"))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
