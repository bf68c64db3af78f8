// The console's pure browser modules, run as served: money formatting by digits (never fen / 100 in floating
// point), the transitions the command room offers (walked against the server's own incidentStep for every class ×
// state × action), the offline map's projection, and the order and sums the account and village pages show.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { incidentStep, openIncident } from "../../cloud/alerts/incident-step.js";
import { DISPOSITIONS, INCIDENT_ACTIONS, INCIDENT_CLASSES, INCIDENT_STATES, type Incident, type IncidentClass, type IncidentState } from "../../cloud/alerts/types.js";
import { fenToYuan } from "../../protocols/units.js";
import { loadStaticModule } from "./static-module.js";

interface MoneyModule {
  formatFen(fen: number): string;
  formatSignedFen(fen: number): string;
  parseYuanToFen(text: string): number | undefined;
  sumFen(amounts: readonly number[]): number;
  formatKwh(wh: number): string;
}
interface ActionsModule {
  nextActions(incident: { class: string; state: string }): string[];
  allowedDispositions(incident: { class: string; state: string }): string[];
}
interface Projection {
  project(p: { lon: number; lat: number }): { x: number; y: number };
  pxPerKm: number;
  gridLon: number[];
  gridLat: number[];
  scaleKm: number;
}
interface MapModule {
  fitProjection(points: readonly { lon: number; lat: number }[], canvas: { width: number; height: number; paddingPx: number }): Projection | undefined;
}
interface StatementLine {
  postingId: number;
  kind: string;
  atMs: number;
  amountFen: number;
  balanceAfterFen: number;
  memo: string;
  actor: string;
}
interface StatementModule {
  latestOfKind(lines: readonly StatementLine[], kind: string, limit: number): StatementLine[];
  energyByDay(energy: readonly { meterId: string; source: string; days: readonly { day: string; energyWh: number }[] }[]): { day: string; energyWh: number }[];
  chargedFen(lines: readonly StatementLine[]): number;
  creditStage(stage: 0 | 1 | 2, balanceFen: number): { tone: string };
}
interface VillageModule {
  lowCreditFirst<T extends { householdId: string; balanceFen: number; stage: number }>(rows: readonly T[]): T[];
  newIdempotencyKey(random: typeof globalThis.crypto): string;
}

const money = await loadStaticModule<MoneyModule>("money.js");
const actions = await loadStaticModule<ActionsModule>("incident-actions.js");
const map = await loadStaticModule<MapModule>("map-projection.js");
const statement = await loadStaticModule<StatementModule>("statement-view.js");
const village = await loadStaticModule<VillageModule>("village-view.js");

describe("money in the console", () => {
  it("shows integer fen as yuan with two decimals and thousands separators", () => {
    expect(money.formatFen(0)).toBe("¥0.00");
    expect(money.formatFen(5)).toBe("¥0.05");
    expect(money.formatFen(123_405)).toBe("¥1,234.05");
    expect(money.formatFen(-30)).toBe("-¥0.30");
    expect(money.formatSignedFen(5000)).toBe("+¥50.00");
  });

  it("agrees with the protocol's fenToYuan for every safe integer it is given", () => {
    fc.assert(
      fc.property(fc.maxSafeInteger().map((n) => n % 10_000_000_000_000), (fen) => {
        expect(money.formatFen(fen).replace("¥", "").replaceAll(",", "")).toBe(fenToYuan(fen));
      }),
    );
  });

  it("refuses to format a fractional or non-finite amount instead of rounding it", () => {
    expect(() => money.formatFen(0.1 + 0.2)).toThrow(TypeError);
    expect(() => money.formatFen(Number.NaN)).toThrow(TypeError);
    expect(() => money.formatFen(2 ** 53)).toThrow(TypeError);
  });

  it("sums the classic 0.1 + 0.2 case exactly because it sums fen", () => {
    expect(money.formatFen(money.sumFen([10, 20]))).toBe("¥0.30");
    expect(() => money.sumFen([1, 0.5])).toThrow(TypeError);
  });

  it("parses an officer's typed yuan into integer fen and rejects anything else", () => {
    expect(money.parseYuanToFen("50")).toBe(5000);
    expect(money.parseYuanToFen(" 50.5 ")).toBe(5050);
    expect(money.parseYuanToFen("50.05")).toBe(5005);
    expect(money.parseYuanToFen("0.29")).toBe(29);
    expect(money.parseYuanToFen("12．30")).toBe(1230);
    for (const bad of ["", "abc", "1e3", "-5", "50.055", "5,000", "0x10", "Infinity"]) expect(money.parseYuanToFen(bad), bad).toBeUndefined();
  });

  it("round-trips every amount it formats back through the parser", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 99_999_999_999 }), (fen) => {
        expect(money.parseYuanToFen(money.formatFen(fen).replace("¥", "").replaceAll(",", ""))).toBe(fen);
      }),
    );
  });

  it("shows watt-hours as kWh by their digits", () => {
    expect(money.formatKwh(12_345)).toBe("12.345 kWh");
    expect(money.formatKwh(3_600)).toBe("3.6 kWh");
    expect(money.formatKwh(0)).toBe("0 kWh");
    expect(money.formatKwh(1_234_000)).toBe("1,234 kWh");
  });
});

function incidentIn(cls: IncidentClass, state: IncidentState): Incident {
  const opened = openIncident(
    { incidentId: "inc-1", class: cls, jurisdictionId: "j1" },
    { kind: "alarm", alarm: { alarmId: "a1", sensorId: "s1", gatewayId: "g1", cause: "smoke_density", atMs: 1, receivedAtMs: 1 }, registered: true },
    1,
  ).incident;
  return { ...opened, state };
}

describe("command room transitions", () => {
  it("offers exactly the actions the server's incidentStep accepts, for every class and state", () => {
    for (const cls of INCIDENT_CLASSES) {
      for (const state of INCIDENT_STATES) {
        const incident = incidentIn(cls, state);
        const accepted = INCIDENT_ACTIONS.filter((action) =>
          DISPOSITIONS.some((disposition) => incidentStep(incident, { kind: "action", action, actor: "u", assignee: "Wang", disposition }, 2).ok),
        );
        expect(actions.nextActions({ class: cls, state }).sort(), `${cls} in ${state}`).toEqual([...accepted].sort());
      }
    }
  });

  it("offers exactly the dispositions the server accepts to close an incident", () => {
    for (const cls of INCIDENT_CLASSES) {
      for (const state of INCIDENT_STATES.filter((s) => s !== "resolved")) {
        const incident = incidentIn(cls, state);
        const accepted = DISPOSITIONS.filter((disposition) => incidentStep(incident, { kind: "action", action: "resolve", actor: "u", disposition }, 2).ok);
        expect(actions.allowedDispositions({ class: cls, state }).sort(), `${cls} in ${state}`).toEqual([...accepted].sort());
      }
    }
  });
});

describe("offline map projection", () => {
  const canvas = { width: 800, height: 520, paddingPx: 40 };

  it("keeps every point inside the canvas padding, north up and east right", () => {
    const points = [
      { lon: 119.88, lat: 30.55 },
      { lon: 119.92, lat: 30.58 },
      { lon: 119.9, lat: 30.52 },
    ];
    const p = map.fitProjection(points, canvas);
    if (p === undefined) throw new Error("no projection");
    for (const pt of points.map((x) => p.project(x))) {
      expect(pt.x).toBeGreaterThanOrEqual(canvas.paddingPx - 1e-9);
      expect(pt.x).toBeLessThanOrEqual(canvas.width - canvas.paddingPx + 1e-9);
      expect(pt.y).toBeGreaterThanOrEqual(canvas.paddingPx - 1e-9);
      expect(pt.y).toBeLessThanOrEqual(canvas.height - canvas.paddingPx + 1e-9);
    }
    expect(p.project({ lon: 119.92, lat: 30.55 }).x).toBeGreaterThan(p.project({ lon: 119.88, lat: 30.55 }).x);
    expect(p.project({ lon: 119.9, lat: 30.58 }).y).toBeLessThan(p.project({ lon: 119.9, lat: 30.52 }).y);
  });

  it("draws a kilometre east the same length as a kilometre north", () => {
    const p = map.fitProjection([{ lon: 119.9, lat: 30.5 }, { lon: 119.95, lat: 30.55 }], canvas);
    if (p === undefined) throw new Error("no projection");
    const kmLat = 1 / 111.32;
    const kmLon = kmLat / Math.cos((30.525 * Math.PI) / 180);
    const origin = p.project({ lon: 119.92, lat: 30.52 });
    const north = p.project({ lon: 119.92, lat: 30.52 + kmLat });
    const east = p.project({ lon: 119.92 + kmLon, lat: 30.52 });
    expect(Math.abs(east.x - origin.x) / Math.abs(north.y - origin.y)).toBeCloseTo(1, 2);
  });

  it("frames a single sensor instead of dividing by a zero span, and ignores points without coordinates", () => {
    const p = map.fitProjection([{ lon: 119.9, lat: 30.5 }, { lon: Number.NaN, lat: 30 }], canvas);
    if (p === undefined) throw new Error("no projection");
    expect(p.project({ lon: 119.9, lat: 30.5 })).toEqual({ x: 400, y: 260 });
    expect(p.gridLon.length).toBeGreaterThanOrEqual(3);
    expect(p.gridLat.length).toBeGreaterThanOrEqual(3);
    expect(p.scaleKm * p.pxPerKm).toBeLessThanOrEqual(canvas.width / 4);
    expect(map.fitProjection([], canvas)).toBeUndefined();
  });
});

describe("account and village views", () => {
  const line = (postingId: number, kind: string, atMs: number, amountFen: number): StatementLine => ({ postingId, kind, atMs, amountFen, balanceAfterFen: 0, memo: "", actor: "x" });

  it("lists the newest top-ups first and sums charges as what was paid", () => {
    const lines = [line(1, "top-up", 10, 5000), line(2, "charge", 20, -29), line(3, "charge", 30, -1), line(4, "top-up", 40, 100)];
    expect(statement.latestOfKind(lines, "top-up", 10).map((l) => l.postingId)).toEqual([4, 1]);
    expect(statement.chargedFen(lines)).toBe(30);
  });

  it("adds the meters' kWh per day together, oldest day first", () => {
    const days = statement.energyByDay([
      { meterId: "m1", source: "charges", days: [{ day: "2026-11-22", energyWh: 1500 }, { day: "2026-11-21", energyWh: 10 }] },
      { meterId: "m2", source: "telemetry", days: [{ day: "2026-11-22", energyWh: 2500 }] },
    ]);
    expect(days).toEqual([{ day: "2026-11-21", energyWh: 10 }, { day: "2026-11-22", energyWh: 4000 }]);
  });

  it("marks an overdrawn balance as danger even when the stage says otherwise", () => {
    expect(statement.creditStage(0, -5).tone).toBe("danger");
    expect(statement.creditStage(1, 1500).tone).toBe("warn");
    expect(statement.creditStage(0, 10_000).tone).toBe("ok");
  });

  it("puts the households closest to being cut at the top", () => {
    const rows = [
      { householdId: "a", balanceFen: 90_000, stage: 0 },
      { householdId: "b", balanceFen: 1_500, stage: 1 },
      { householdId: "c", balanceFen: 300, stage: 2 },
      { householdId: "d", balanceFen: 1_000, stage: 1 },
    ];
    expect(village.lowCreditFirst(rows).map((r) => r.householdId)).toEqual(["c", "d", "b", "a"]);
  });

  it("makes idempotency keys the API accepts, different each time", () => {
    const a = village.newIdempotencyKey(globalThis.crypto);
    const b = village.newIdempotencyKey(globalThis.crypto);
    expect(a).toMatch(/^[A-Za-z0-9_.:-]{8,100}$/);
    expect(a).not.toBe(b);
  });
});
