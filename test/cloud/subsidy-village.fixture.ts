// A small village for the subsidy tests, on real parts: a registry file, a SQLite ledger, the ledger's day rows written
// from the real charge core (with a meter swap), a tamper event from an uplink batch, the statement store and the
// audit log; a settable clock. Refunds it should produce, by hand: 陈 ¥21.13, 李 ¥26.42 (capped, flagged), 王 ¥2.64
// (tamper, flagged).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { AuditLog } from "../../cloud/audit/audit-log.js";
import { openSqliteAuditLog } from "../../cloud/audit/sqlite-audit-log.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { chargesFor, emptyChargeState, type ChargeState } from "../../cloud/ledger/charges.js";
import type { ChargeInput } from "../../cloud/ledger/charge-inputs.js";
import { openSqliteLedger, type SqliteLedger } from "../../cloud/ledger/store/sqlite-ledger.js";
import { openRegistry, type Registry } from "../../cloud/registry/registry.js";
import { applyMeterDayDeltas, meterDayDeltas, METER_DAYS_SCHEMA_SQL } from "../../cloud/subsidy/meter-days.js";
import { openMeterFlagStore, type MeterFlagStore } from "../../cloud/subsidy/meter-flags.js";
import { subsidyService, type SubsidyService } from "../../cloud/subsidy/service.js";
import { openSubsidyStore, type SubsidyStore } from "../../cloud/subsidy/store.js";
import { sqliteUsageSource } from "../../cloud/subsidy/usage-source.js";
import { registryLand, type VillageLand } from "../../cloud/subsidy/village-land.js";

export const sh = (local: string): number => Date.parse(`${local}+08:00`);
export const DAY_MS = 86_400_000;
const FLAT = { tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat" as const, priceCentiFenPerKwh: 5283 } };

export interface TestVillage {
  readonly dir: string;
  readonly registry: Registry;
  readonly ledger: SqliteLedger;
  readonly db: Database.Database;
  readonly store: SubsidyStore;
  readonly flags: MeterFlagStore;
  readonly audit: AuditLog;
  readonly land: VillageLand;
  readonly service: SubsidyService;
  readonly clock: { nowMs: number };
  close(): Promise<void>;
}

export async function openTestVillage(): Promise<TestVillage> {
  const dir = mkdtempSync(join(tmpdir(), "subsidy-village-"));
  const clock = { nowMs: sh("2026-06-05T09:00:00") };
  let ids = 0;
  const registry = openRegistry({ path: join(dir, "cloud.db"), now: () => clock.nowMs });
  const ledger = openSqliteLedger({ path: join(dir, "ledger.db"), now: () => clock.nowMs });
  const db = new Database(join(dir, "subsidy.db"));
  db.exec(METER_DAYS_SCHEMA_SQL);
  const store = openSubsidyStore(db);
  const flags = openMeterFlagStore(db);
  const audit = openSqliteAuditLog(db, { now: () => clock.nowMs });
  const land = registryLand(registry);
  const service = subsidyService({ store, land, usage: sqliteUsageSource(db), flags, ledger, audit, now: () => clock.nowMs, newId: () => `st-${++ids}` });

  await registry.addVillage({ villageId: "hongmiao", name: "红庙村" });
  await registry.addVillage({ villageId: "other", name: "别村" });
  for (const [householdId, name] of [["hh-chen", "陈德伯"], ["hh-li", "李明"], ["hh-wang", "王小二"]] as const) await registry.addHousehold({ householdId, villageId: "hongmiao", name });
  await registry.addGateway({ gatewayId: "gw-hongmiao", villageId: "hongmiao", secretHash: await hashSecret("s") });
  await registry.addTariff(FLAT);
  for (const [meterId, householdId, plotId, crop, areaMilliMu] of [
    ["m-chen", "hh-chen", "p-chen", "rice", 2_000],
    ["m-li", "hh-li", "p-li", "wheat", 1_000],
    ["m-wang", "hh-wang", "p-wang", "maize", 1_000],
  ] as const) {
    await registry.addMeter({ meterId, gatewayId: "gw-hongmiao", householdId, tariffId: "flat" });
    await registry.addPlot({ plotId, householdId, name: `${plotId} 田`, areaMilliMu, crop, recordedBy: "officer-1" });
    await registry.bindMeterToPlot(meterId, plotId);
  }

  /** The ledger's side, as the lead wires it: each chargesFor step's day rows written from the step. */
  const charge = (meterId: string, inputs: readonly ChargeInput[], state: ChargeState): ChargeState => {
    const result = chargesFor(state, inputs, [FLAT]);
    applyMeterDayDeltas(db, meterDayDeltas({ meterId, before: state.meters[meterId], inputs, result }));
    return result.state;
  };
  let s = emptyChargeState();
  // 陈: 50 kWh on 06-01 (2641.5 → 2642 fen), then the meter is swapped at 10 kWh more, and the new one reads 20 kWh:
  // 80 kWh in all, charged round(0.5283 × 80) = ¥42.26; half is ¥21.13.
  s = charge("m-chen", [{ type: "meter-installed", meterId: "m-chen", atMs: sh("2026-06-01T00:00:00"), initialWh: 1_000_000 }, { meterId: "m-chen", registerSeq: 1, atMs: sh("2026-06-01T08:00:00"), registerWh: 1_050_000 }], s);
  s = charge("m-chen", [{ type: "meter-replaced", meterId: "m-chen", atMs: sh("2026-06-02T06:00:00"), oldFinalWh: 1_060_000, newInitialWh: 0 }, { meterId: "m-chen", registerSeq: 2, atMs: sh("2026-06-02T08:00:00"), registerWh: 20_000 }], s);
  s = charge("m-chen", [{ meterId: "m-chen", registerSeq: 3, atMs: sh("2026-06-03T08:00:00"), registerWh: 20_000 }], s);
  // 李: 120 kWh on 1 mu of wheat (cap 100 kWh), charged round(63.396) = ¥63.40; 6340 × 100/120 × ½ = 2641.67 → ¥26.42.
  s = charge("m-li", [{ type: "meter-installed", meterId: "m-li", atMs: sh("2026-06-01T00:00:00"), initialWh: 0 }, ...[1, 2, 3].map((d) => ({ meterId: "m-li", registerSeq: d, atMs: sh(`2026-06-0${d}T10:00:00`), registerWh: 120_000 }))], s);
  // 王: 10 kWh, ¥5.28 (half: ¥2.64), and the terminal cover opened on 06-02 at 03:30.
  charge("m-wang", [{ type: "meter-installed", meterId: "m-wang", atMs: sh("2026-06-01T00:00:00"), initialWh: 0 }, ...[1, 2, 3].map((d) => ({ meterId: "m-wang", registerSeq: d, atMs: sh(`2026-06-0${d}T09:00:00`), registerWh: 10_000 }))], s);
  await flags.recordMeterFlags("gw-hongmiao", {
    v: 1,
    gatewayId: "gw-hongmiao",
    seq: 41,
    sentAt: "2026-06-02T01:00:00.000Z",
    events: [{ type: "tamper", deviceId: "m-wang", at: "2026-06-01T19:30:00.000Z", kind: "cover_open", detail: "terminal cover opened" }],
  });
  await service.addPolicy(
    {
      villageId: "hongmiao",
      programmeId: "grain-power",
      version: 1,
      policy: {
        name: "种粮电费补贴",
        grainCrops: ["rice", "wheat", "maize"],
        refund: { kind: "share", shareBp: 5_000 },
        seasons: [{ seasonId: "2026-june", name: "2026年6月", fromDay: "2026-06-01", toDay: "2026-06-03" }],
        capWhPerMu: 100_000,
        noticeDays: 7,
      },
    },
    "officer-1",
  );
  return {
    dir, registry, ledger, db, store, flags, audit, land, service, clock,
    async close() {
      await ledger.close();
      await registry.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
