// The village's prepaid policy reaching the gateway: its friendly periods and low-credit warning stages ride on every
// credit grant, and a new policy version that changes them is re-sent even though the credit limit did not move.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { commandSchema, type Command } from "../../protocols/mqtt/messages.js";
import { hashSecret } from "../broker/secrets.js";
import { warnAtWhFor } from "../ledger/grants.js";
import { openSqliteLedger, type SqliteLedger } from "../ledger/store/sqlite-ledger.js";
import { openRegistry, type Registry } from "../registry/registry.js";
import { createPrepaidService, type PrepaidService } from "./service.js";

const GW = "policy-gw";
let dir: string;
let ledger: SqliteLedger;
let registry: Registry;
let prepaid: PrepaidService;
let commands: Command[];
let nowMs = Date.UTC(2026, 5, 1);

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "prepaid-policy-"));
  const path = join(dir, "cloud.db");
  ledger = openSqliteLedger({ path });
  registry = openRegistry({ path });
  commands = [];
  nowMs = Date.UTC(2026, 5, 1);
  prepaid = createPrepaidService({ ledger, registry, log: pino({ level: "silent" }), now: () => nowMs, publishCommand: (_gw, command) => Promise.resolve(void commands.push(command)) });
  await registry.addVillage({ villageId: "v1", name: "Village" });
  await registry.addGateway({ gatewayId: GW, villageId: "v1", secretHash: await hashSecret("unused") });
  await registry.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } });
  await registry.addHousehold({ householdId: "hh-1", villageId: "v1", name: "陈德伯" });
  await registry.addMeter({ meterId: "m1", gatewayId: GW, householdId: "hh-1", tariffId: "flat", initialWh: 10_000 });
  await registry.addVillagePolicy({ villageId: "v1", version: 1, effectiveFrom: 0, policy: { friendlyPeriods: [{ from: "22:00", to: "06:00" }] } });
});

afterEach(async () => {
  await prepaid.idle();
  await ledger.close();
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One billing reading of m1 at registerSeq (10 kWh + seq Wh): the grant is sized from a charged register. */
async function read(registerSeq: number): Promise<void> {
  const at = new Date(nowMs).toISOString();
  const reading = { meterId: "m1", pointId: "importEnergy", role: "import_energy" as const, registerSeq, at, raw: { words: [0, registerSeq], value: registerSeq }, energyWh: 10_000 + registerSeq, conversion: { exact: true, droppedWh: 0 } };
  await prepaid.onBilling({ v: 1, gatewayId: GW, seq: registerSeq, sentAt: at, readings: [reading] }, GW);
}

const grants = (): { grantSeq: number; limitWh: number; friendlyPeriods?: unknown; warnAtWh?: readonly [number, number] | undefined }[] =>
  commands.map((c) => c.command).filter((c): c is Extract<Command["command"], { type: "credit.grant" }> => c.type === "credit.grant");

describe("village policy on credit grants", () => {
  it("sends the village's friendly periods with the grant a top-up causes", async () => {
    await read(1);
    await prepaid.topUp({ householdId: "hh-1", amountFen: 10_000, officerId: "o1", receiptId: "r1" });
    await prepaid.idle();
    // The first grant (zero balance) came with the reading, the second with the top-up: both carry the periods.
    expect(grants()).toHaveLength(2);
    expect(grants().map((g) => g.friendlyPeriods)).toEqual([[{ from: "22:00", to: "06:00" }], [{ from: "22:00", to: "06:00" }]]);
    expect((await registry.lastGrant("m1"))?.friendlyPeriods).toEqual([{ from: "22:00", to: "06:00" }]);
  });

  it("re-sends an unchanged limit when a new policy version drops the friendly periods, and only then", async () => {
    await read(1);
    await prepaid.topUp({ householdId: "hh-1", amountFen: 10_000, officerId: "o1", receiptId: "r1" });
    await prepaid.regrantHousehold("hh-1", "nothing changed");
    await prepaid.idle();
    expect(grants()).toHaveLength(2);
    await registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: nowMs + 1_000, policy: {} });
    nowMs += 2_000;
    await prepaid.regrantHousehold("hh-1", "policy v2");
    await prepaid.idle();
    const [, first, second] = grants();
    expect(second).toMatchObject({ grantSeq: 3, limitWh: first?.limitWh });
    expect(second && "friendlyPeriods" in second).toBe(false);
  });

  it("sends the village's low-credit stages as warnAtWh at the tariff's highest price, and stores them with the grant", async () => {
    await read(1);
    await prepaid.topUp({ householdId: "hh-1", amountFen: 10_000, officerId: "o1", receiptId: "r1" });
    await prepaid.idle();
    // Policy v1 sets no lowCredit: the policy default (2000 fen, 500 fen) applies, with no overdraft, at 52.83 fen/kWh.
    const expected = warnAtWhFor({ stage1Fen: 2_000, stage2Fen: 500 }, 0, 5283);
    expect(grants().map((g) => g.warnAtWh)).toEqual([expected, expected]);
    expect((await registry.lastGrant("m1"))?.warnAtWh).toEqual(expected);
    expect(commands.every((c) => commandSchema.safeParse(c).success)).toBe(true);
  });

  it("re-sends an unchanged limit when a new policy version changes the low-credit stages, and only then", async () => {
    await read(1);
    await prepaid.topUp({ householdId: "hh-1", amountFen: 10_000, officerId: "o1", receiptId: "r1" });
    await prepaid.idle();
    const periods = [{ from: "22:00", to: "06:00" }];
    // Same stages as the default, spelled out: nothing to send.
    await registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: nowMs + 1_000, policy: { friendlyPeriods: periods, lowCredit: { stage1Fen: 2_000, stage2Fen: 500 } } });
    nowMs += 2_000;
    await prepaid.regrantHousehold("hh-1", "policy v2");
    await prepaid.idle();
    expect(grants()).toHaveLength(2);
    await registry.addVillagePolicy({ villageId: "v1", version: 3, effectiveFrom: nowMs + 1_000, policy: { friendlyPeriods: periods, lowCredit: { stage1Fen: 5_000, stage2Fen: 1_000 } } });
    nowMs += 2_000;
    await prepaid.regrantHousehold("hh-1", "policy v3");
    await prepaid.idle();
    const [, first, second] = grants();
    expect(second).toMatchObject({ grantSeq: 3, limitWh: first?.limitWh, warnAtWh: warnAtWhFor({ stage1Fen: 5_000, stage2Fen: 1_000 }, 0, 5283) });
    expect((await registry.lastGrant("m1"))?.warnAtWh).toEqual(second?.warnAtWh);
  });
});
