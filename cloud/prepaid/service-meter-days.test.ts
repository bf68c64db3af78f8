// Billing through the prepaid service keeps each meter's daily usage in the ledger (ledger_meter_days, written in
// the charge transaction), and the subsidy's SQLite usage source reads it back: the whole path from a billing
// message to what settlement sees, on a real SQLite file and registry.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BillingReadings } from "../../protocols/mqtt/messages.js";
import { chargedFen } from "../ledger/charges.js";
import { openSqliteLedger, type SqliteLedger } from "../ledger/store/sqlite-ledger.js";
import { openRegistry, type Registry } from "../registry/registry.js";
import { hashSecret } from "../broker/secrets.js";
import { sqliteUsageSource, type MeterUsage } from "../subsidy/usage-source.js";
import { createPrepaidService, type PrepaidService } from "./service.js";

const GW = "days-gw";
const INITIAL_WH = 10_000;
/** Asia/Shanghai wall-clock time as an ISO instant. */
const sh = (local: string): string => new Date(Date.parse(`${local}+08:00`)).toISOString();

let dir: string;
let path: string;
let ledger: SqliteLedger;
let registry: Registry;
let prepaid: PrepaidService;

function message(seq: number, readings: readonly { registerSeq: number; at: string; energyWh: number }[]): BillingReadings {
  return {
    v: 1,
    gatewayId: GW,
    seq,
    sentAt: readings.at(-1)?.at ?? sh("2026-06-01T00:00:00"),
    readings: readings.map(({ registerSeq, at, energyWh }) => ({
      meterId: "m1",
      pointId: "importEnergy",
      role: "import_energy",
      registerSeq,
      at,
      raw: { words: [0, registerSeq], value: energyWh },
      energyWh,
      conversion: { exact: true, droppedWh: 0 },
    })),
  };
}

async function usage(fromDay: string, toDay: string): Promise<MeterUsage[]> {
  const db = new Database(path, { readonly: true });
  try {
    const out: MeterUsage[] = [];
    for await (const u of sqliteUsageSource(db).usageOf(["m1"], fromDay, toDay, [])) out.push(u);
    return out;
  } finally {
    db.close();
  }
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "prepaid-days-"));
  path = join(dir, "cloud.db");
  ledger = openSqliteLedger({ path });
  registry = openRegistry({ path });
  prepaid = createPrepaidService({ ledger, registry, log: pino({ level: "silent" }), publishCommand: () => Promise.resolve() });
  await registry.addVillage({ villageId: "v1", name: "Village" });
  await registry.addGateway({ gatewayId: GW, villageId: "v1", secretHash: await hashSecret("unused") });
  await registry.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } });
  await registry.addHousehold({ householdId: "hh-1", villageId: "v1", name: "陈", overdraftFen: 0 });
  await registry.addMeter({ meterId: "m1", gatewayId: GW, householdId: "hh-1", tariffId: "flat", initialWh: INITIAL_WH });
  await prepaid.topUp({ householdId: "hh-1", amountFen: 100_000, officerId: "o1", receiptId: "r1" });
});

afterEach(async () => {
  await prepaid.idle();
  await ledger.close();
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("daily usage kept by billing", () => {
  it("fills ledger_meter_days from billed readings, once however often they are redelivered, and the usage source reads it back", async () => {
    const day1 = [
      { registerSeq: 1, at: sh("2026-06-01T08:00:00"), energyWh: 15_000 },
      { registerSeq: 2, at: sh("2026-06-01T23:00:00"), energyWh: 18_000 },
    ];
    const day2 = [{ registerSeq: 3, at: sh("2026-06-02T10:00:00"), energyWh: 30_000 }];
    await prepaid.onBilling(message(1, day1), GW);
    await prepaid.onBilling(message(2, day2), GW);
    // A redelivered message, and a batch carrying it again with the next reading.
    await prepaid.onBilling(message(1, day1), GW);
    const day3 = [{ registerSeq: 4, at: sh("2026-06-03T07:00:00"), energyWh: 31_000 }];
    expect(await prepaid.onBillingBatch([{ gatewayId: GW, readings: message(2, day2) }, { gatewayId: GW, readings: message(3, day3) }])).toEqual([null, null]);

    const state = (await ledger.loadChargeState("m1"))?.state;
    if (state === undefined) throw new Error("m1 was not charged");
    const [m1] = await usage("2026-06-01", "2026-06-30");
    expect(m1?.runs.map((r) => [r.daysRead, r.energyWh, r.nightWh])).toEqual([[3, 21_000, 3_000]]);
    expect(m1?.runs[0]?.chargedFen).toBe(chargedFen(state));
    expect(m1?.countAtEndWh).toBe(21_000);
    // Cut per day: 5 kWh commissioning→08:00 and 3 kWh at 23:00 (night) on 06-01, 12 kWh on 06-02, 1 kWh on 06-03.
    const perDay = await usage("2026-06-02", "2026-06-03");
    expect(perDay).toEqual([{ meterId: "m1", runs: [expect.objectContaining({ fromDay: "2026-06-02", toDay: "2026-06-03", daysRead: 2, energyWh: 13_000 })], countBeforeWh: 8_000, countAtEndWh: 21_000 }]);
  });
});
