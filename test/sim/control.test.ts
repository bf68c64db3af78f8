import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlServer, type ControlServerHandle } from "../../firmware-sim/control.js";
import { Field } from "../../firmware-sim/field.js";
import { villagePreset } from "../../firmware-sim/presets/village.js";
import { parseScenario } from "../../firmware-sim/scenario.js";

let field: Field;
let control: ControlServerHandle;
let base: string;

beforeAll(async () => {
  field = new Field(parseScenario(villagePreset({ basePort: 0 })), undefined, { autoTick: false });
  await field.start();
  control = await startControlServer(field, "127.0.0.1", 0);
  base = `http://127.0.0.1:${control.port}`;
});

afterAll(async () => {
  await control.close();
  await field.stop();
});

async function post(path: string, body: unknown): Promise<{ status: number; type: string | null; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) });
  return { status: res.status, type: res.headers.get("content-type"), json: (await res.json()) as Record<string, unknown> };
}

describe("simulator control surface", () => {
  it("describes the field: buses with their real ports and every device", async () => {
    const res = await fetch(`${base}/field`);
    const body = (await res.json()) as { buses: { id: string; transport: { tcp?: string } }[]; devices: { id: string }[] };
    expect(body.buses.map((b) => b.id)).toEqual(["pump-houses", "forest-ridge"]);
    expect(body.buses[0]?.transport.tcp).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(body.devices).toHaveLength(11);
  });

  it("starts a fire on a ridge node and the node latches its alarm as simulated time passes", async () => {
    const started = await post("/devices/fire-ridge-2/actions", { action: "start-fire", smokeRiseDbPerMPerMin: 0.05 });
    expect(started.status).toBe(200);
    expect(started.json.burning).toBe(true);
    await post("/clock", { advanceS: 180 });
    const node = (await (await fetch(`${base}/devices/fire-ridge-2`)).json()) as { smokeAlarm: boolean; smokeDbPerM: number };
    expect(node.smokeAlarm).toBe(true);
    expect(node.smokeDbPerM).toBeGreaterThan(0.05);
  });

  it("opens a meter cover, changes a load, and reverses a meter", async () => {
    expect((await post("/devices/pump-li-tea/actions", { action: "open-cover" })).json.coverOpen).toBe(true);
    const load = await post("/devices/pump-li-tea/actions", { action: "set-load", loads: [{ kind: "constant", watts: 3000 }] });
    expect(load.json.loads).toEqual([{ kind: "constant", watts: 3000 }]);
    await post("/clock", { advanceS: 3600 });
    const after = (await (await fetch(`${base}/devices/pump-li-tea`)).json()) as { importWh: number };
    expect(after.importWh).toBeGreaterThanOrEqual(88_420 + 3000 - 1);
  });

  it("cuts a pump through its contactor channel on the relay board", async () => {
    const r = await post("/devices/relay-board-1/actions", { action: "set-coil", channel: 1, on: false });
    expect((r.json.coils as boolean[])[0]).toBe(false);
    const meter = (await (await fetch(`${base}/devices/pump-chen-grain`)).json()) as { supplyClosed: boolean };
    expect(meter.supplyClosed).toBe(false);
  });

  it("kills and revives a device", async () => {
    await post("/devices/fire-ridge-3/actions", { action: "kill" });
    const field1 = (await (await fetch(`${base}/field`)).json()) as { buses: { units: { device: string; alive: boolean }[] }[] };
    expect(field1.buses[1]?.units.find((u) => u.device === "fire-ridge-3")?.alive).toBe(false);
    await post("/devices/fire-ridge-3/actions", { action: "revive" });
    const field2 = (await (await fetch(`${base}/field`)).json()) as { buses: { units: { device: string; alive: boolean }[] }[] };
    expect(field2.buses[1]?.units.find((u) => u.device === "fire-ridge-3")?.alive).toBe(true);
  });

  it("answers a malformed body with problem+json naming the path", async () => {
    const r = await post("/devices/pump-li-tea/actions", { action: "bypass", watts: -5 });
    expect(r.status).toBe(400);
    expect(r.type).toBe("application/problem+json");
    expect(r.json.issues).toEqual([expect.objectContaining({ path: "watts" })]);
  });

  it("answers invalid JSON with 400", async () => {
    const r = await post("/devices/pump-li-tea/actions", "{not json");
    expect(r.status).toBe(400);
    expect(r.json.title).toBe("Invalid JSON");
  });

  it("refuses an oversized body with 413", async () => {
    const r = await fetch(`${base}/devices/pump-li-tea/actions`, { method: "POST", body: "x".repeat(70_000) });
    expect(r.status).toBe(413);
  });

  it("answers 404 for an unknown device and 409 for an action that does not apply", async () => {
    expect((await post("/devices/nobody/actions", { action: "kill" })).status).toBe(404);
    const r = await post("/devices/pump-li-tea/actions", { action: "start-fire" });
    expect(r.status).toBe(409);
    expect((await post("/buses/pump-houses/actions", { action: "unplug" })).status).toBe(409);
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
  });
});
