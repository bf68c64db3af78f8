import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { villagePreset } from "./presets/village.js";
import { loadProfileFile, parseScenario, readStructuredFile, ScenarioError } from "./scenario.js";

function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    parseScenario(input);
  } catch (err) {
    if (err instanceof ScenarioError) return err.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    throw err;
  }
  throw new Error("scenario was accepted");
}

const minimal = {
  name: "t",
  buses: [{ id: "a", tcp: { port: 0 } }],
  devices: [{ id: "m1", bus: "a", unit: 1, profile: "eastron-sdm120", meter: { loads: [] } }],
};

describe("scenario validation", () => {
  it("accepts the village preset", () => {
    const s = parseScenario(villagePreset({ basePort: 0 }));
    expect(s.devices.length).toBe(11);
    expect(s.clock.speed).toBe(1);
  });

  it("fills defaults for a minimal scenario", () => {
    const s = parseScenario(minimal);
    expect(s.seed).toBe(1);
    expect(s.buses[0]?.tcp?.host).toBe("127.0.0.1");
    expect(s.devices[0]?.faults).toEqual([]);
  });

  it("reports every error at once, each with its path", () => {
    const issues = issuesOf({
      name: "bad",
      buses: [{ id: "a", tcp: { port: 0 } }, { id: "a", rtu: { path: "/tmp/x", baud: 12 } }, { id: "c" }],
      devices: [
        { id: "m1", bus: "a", unit: 1, profile: "eastron-sdm120" },
        { id: "m2", bus: "nowhere", unit: 300, profile: "no-such" },
        { id: "m3", bus: "a", unit: 1, profile: "agri-fire-node", meter: { loads: [] } },
        { id: "m4", bus: "a", unit: 2, profile: "eastron-sdm120", meter: { loads: [{ kind: "pump", ratedW: 100, schedule: [{ from: "25:00", to: "07:00" }] }] } },
      ],
    });
    const paths = issues.map((i) => i.path);
    expect(paths).toContain("buses.1.rtu.baud");
    expect(paths).toContain("buses.2");
    expect(paths).toContain("devices.1.unit");
    expect(paths).toContain("devices.3.meter.loads.0.schedule.0.from");
    expect(issues.length).toBeGreaterThanOrEqual(4);
  });

  it("reports cross-reference errors with their paths once the shapes are valid", () => {
    const issues = issuesOf({
      name: "bad",
      buses: [{ id: "a", tcp: { port: 1502 } }, { id: "a", tcp: { port: 1502 } }],
      devices: [
        { id: "m1", bus: "a", unit: 1, profile: "eastron-sdm120", meter: { contactor: { device: "m1", channel: 1 } } },
        { id: "m1", bus: "nowhere", unit: 2, profile: "no-such" },
        { id: "m3", bus: "a", unit: 1, profile: "agri-fire-node", meter: {} },
      ],
    });
    const byPath = new Map(issues.map((i) => [i.path, i.message]));
    expect(byPath.get("buses.1.id")).toMatch(/used twice/);
    expect(byPath.get("buses.1.tcp.port")).toMatch(/already used/);
    expect(byPath.get("devices.1.id")).toMatch(/used twice/);
    expect(byPath.get("devices.1.bus")).toMatch(/no bus nowhere/);
    expect(byPath.get("devices.1.profile")).toMatch(/unknown profile "no-such"/);
    expect(byPath.get("devices.2.unit")).toMatch(/unit 1 already used on bus a by m1/);
    expect(byPath.get("devices.2.meter")).toMatch(/not a meter/);
    expect(byPath.get("devices.0.meter.contactor.device")).toMatch(/not a relay module/);
  });

  it("refuses unknown keys so a typo is not silently ignored", () => {
    const issues = issuesOf({ ...minimal, devcies: [] });
    expect(issues[0]?.message).toMatch(/devcies/);
  });

  it("names the file and the syntax error of a broken YAML file", () => {
    const dir = mkdtempSync(join(tmpdir(), "agri-scn-"));
    const file = join(dir, "broken.yaml");
    writeFileSync(file, "name: x\nbuses: [\n");
    expect(() => readStructuredFile(file)).toThrow(/broken\.yaml is not valid YAML/);
    expect(() => readStructuredFile(join(dir, "missing.yaml"))).toThrow(/cannot read/);
  });

  it("refuses a profile file with every error and its path", () => {
    const dir = mkdtempSync(join(tmpdir(), "agri-prof-"));
    const file = join(dir, "p.json");
    writeFileSync(
      file,
      JSON.stringify({
        id: "Bad Id", manufacturer: "x", model: "y", kind: "meter", description: "d", sources: ["s"], confidence: "partial",
        serial: { baud: 9600, parity: "none", stopBits: 1, unitId: 1 },
        points: [
          { id: "e", role: "import_energy", fc: 3, address: 0, type: "u32", unit: "V", description: "x" },
          { id: "f", role: "voltage", fc: 3, address: 1, type: "u16", unit: "V", description: "overlaps e" },
        ],
      }),
    );
    try {
      loadProfileFile(file);
      throw new Error("accepted");
    } catch (err) {
      expect(err).toBeInstanceOf(ScenarioError);
      const paths = (err as ScenarioError).issues.map((i) => i.path.join("."));
      expect(paths).toContain("id");
      expect(paths).toContain("points.1.address");
    }
  });
});
