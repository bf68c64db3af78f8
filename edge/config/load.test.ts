import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadEdgeConfigFile, parseEdgeConfig } from "./load.js";
import type { EdgeConfigInput } from "./schema.js";

const good: EdgeConfigInput = {
  gateway: { id: "hongmiao-gw-1", password: "s3cret" },
  broker: { url: "mqtt://127.0.0.1:1883" },
  buses: [
    { id: "pump-houses", tcp: { host: "127.0.0.1", port: 15020 } },
    { id: "rs485", rtu: { path: "/dev/ttyUSB0", baud: 9600 } },
  ],
  devices: [
    { id: "pump-chen", bus: "pump-houses", unit: 1, profile: "eastron-sdm630-v2", role: "meter", supply: { cut: { kind: "contactor", device: "board", channel: 1 } } },
    { id: "pump-li", bus: "pump-houses", unit: 3, profile: "hiking-dds238-2-zn", role: "meter", supply: { cut: { kind: "meter-relay" } } },
    { id: "board", bus: "pump-houses", unit: 9, profile: "relay-module-8ch", role: "relay-module" },
    { id: "fire-1", bus: "rs485", unit: 1, profile: "agri-fire-node", role: "fire-sensor", pollIntervalMs: 1000, fire: {} },
  ],
  outbox: { path: "/var/lib/agri-edge/outbox.db" },
  statePath: "/var/lib/agri-edge/state.db",
};

function issues(input: unknown): Map<string, string> {
  try {
    parseEdgeConfig(input);
  } catch (err) {
    if (err instanceof ConfigError) return new Map(err.issues.map((i) => [i.path, i.message]));
    throw err;
  }
  throw new Error("accepted");
}

describe("edge configuration", () => {
  it("accepts a valid configuration, fills defaults and freezes it", () => {
    const c = parseEdgeConfig(good);
    expect(c.buses[0]?.timeoutMs).toBe(500);
    expect(c.devices[0]?.supply?.noGrantPolicy).toBe("open");
    expect(c.broker.inflight).toBe(32);
    expect(Object.isFrozen(c.devices[0])).toBe(true);
  });

  it("reports every error with its path in one pass", () => {
    const bad = structuredClone(good) as Record<string, unknown> & typeof good;
    const m = issues({
      ...bad,
      gateway: { id: "Bad/Id", password: "x" },
      broker: { url: "http://x" },
      buses: [{ id: "pump-houses", tcp: { host: "h" }, rtu: { path: "/dev/x", baud: 9600 } }],
      devices: [{ id: "d", bus: "b", unit: 300, profile: "eastron-sdm120", role: "meter" }],
    });
    expect([...m.keys()]).toEqual(expect.arrayContaining(["gateway.id", "broker.url", "buses[0]", "devices[0].unit"]));
  });

  it("checks cross references: bus, profile, role, relay channel, unit collisions", () => {
    const m = issues({
      ...good,
      devices: [
        { id: "a", bus: "nowhere", unit: 1, profile: "no-such", role: "meter" },
        { id: "b", bus: "pump-houses", unit: 2, profile: "agri-fire-node", role: "meter" },
        { id: "c", bus: "pump-houses", unit: 2, profile: "eastron-sdm120", role: "meter", supply: { cut: { kind: "meter-relay" } } },
        { id: "d", bus: "pump-houses", unit: 4, profile: "eastron-sdm120", role: "meter", supply: { cut: { kind: "contactor", device: "c", channel: 1 } } },
        { id: "e", bus: "pump-houses", unit: 9, profile: "relay-module-8ch", role: "relay-module" },
        { id: "f", bus: "pump-houses", unit: 5, profile: "eastron-sdm120", role: "meter", points: ["nope"], supply: { cut: { kind: "contactor", device: "e", channel: 9 } } },
      ],
    });
    expect(m.get("devices[0].bus")).toMatch(/no bus nowhere/);
    expect(m.get("devices[0].profile")).toMatch(/unknown profile/);
    expect(m.get("devices[1].role")).toMatch(/fire-sensor, not a meter/);
    expect(m.get("devices[2].unit")).toMatch(/already b/);
    expect(m.get("devices[2].supply.cut.kind")).toMatch(/no relay register/);
    expect(m.get("devices[3].supply.cut.device")).toMatch(/not a relay module/);
    expect(m.get("devices[5].points[0]")).toMatch(/no point nope/);
    expect(m.get("devices[5].supply.cut.channel")).toMatch(/no relay channel 9/);
  });

  it("requires broker credentials and a hysteresis gap for fire thresholds", () => {
    const m = issues({
      ...good,
      gateway: { id: "gw-1" },
      devices: [{ id: "fire-1", bus: "rs485", unit: 1, profile: "agri-fire-node", role: "fire-sensor", fire: { smokeThresholdDbPerM: 0.05, smokeClearDbPerM: 0.08 } }],
    });
    expect(m.get("gateway.password")).toMatch(/password/);
    expect(m.get("devices[0].fire.smokeClearDbPerM")).toMatch(/below the alarm threshold/);
  });

  it("defaults a fire sensor's low-battery threshold to 3300 mV with 100 mV hysteresis, and refuses a negative one", () => {
    expect(parseEdgeConfig(good).devices[3]?.fire).toMatchObject({ batteryLowMv: 3300, batteryHysteresisMv: 100 });
    const devices = [{ id: "fire-1", bus: "rs485", unit: 1, profile: "agri-fire-node", role: "fire-sensor", fire: { batteryLowMv: -1 } }];
    expect(issues({ ...good, devices }).get("devices[0].fire.batteryLowMv")).toBeDefined();
  });

  it("refuses unknown keys (a typo must not pass silently)", () => {
    expect(issues({ ...good, outbx: {} }).get("(root)")).toMatch(/outbx/);
  });

  it("names the file for unreadable and malformed files", () => {
    const dir = mkdtempSync(join(tmpdir(), "edge-cfg-"));
    const bad = join(dir, "edge.yaml");
    writeFileSync(bad, "gateway: [\n");
    expect(() => loadEdgeConfigFile(bad)).toThrow(/edge\.yaml is not valid YAML/);
    expect(() => loadEdgeConfigFile(join(dir, "none.yaml"))).toThrow(/cannot read/);
    const okFile = join(dir, "ok.json");
    writeFileSync(okFile, JSON.stringify(good));
    expect(loadEdgeConfigFile(okFile).gateway.id).toBe("hongmiao-gw-1");
  });
});
