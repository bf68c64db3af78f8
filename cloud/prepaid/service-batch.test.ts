// The prepaid service's group-commit billing (onBillingBatch) over a real SQLite ledger and registry: a batch's
// readings of one meter are charged in registerSeq order whichever message brought them, a meter the ledger refuses
// fails only the messages that carry it, and the grants are sized once per household after the batch committed.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BillingReadings, Command } from "../../protocols/mqtt/messages.js";
import { chargeIdempotencyKey } from "../ledger/charges.js";
import { openSqliteLedger, type SqliteLedger } from "../ledger/store/sqlite-ledger.js";
import { openRegistry, type Registry } from "../registry/registry.js";
import { hashSecret } from "../broker/secrets.js";
import { householdAccountId, villageCashAccountId } from "./accounts.js";
import { createPrepaidService, type PrepaidService } from "./service.js";

const GW = "batch-gw";
const PRICE = 5283;
const INITIAL_WH = 10_000;

let dir: string;
let ledger: SqliteLedger;
let registry: Registry;
let prepaid: PrepaidService;
let commands: { gatewayId: string; command: Command }[];

function message(seq: number, readings: readonly { meterId: string; registerSeq: number }[], gatewayId = GW): BillingReadings {
  const at = (registerSeq: number): string => new Date(Date.UTC(2026, 5, 1) + registerSeq * 60_000).toISOString();
  return {
    v: 1,
    gatewayId,
    seq,
    sentAt: at(seq),
    readings: readings.map(({ meterId, registerSeq }) => ({
      meterId,
      pointId: "importEnergy",
      role: "import_energy",
      registerSeq,
      at: at(registerSeq),
      raw: { words: [0, registerSeq], value: registerSeq },
      energyWh: INITIAL_WH + registerSeq * 1000,
      conversion: { exact: true, droppedWh: 0 },
    })),
  };
}

async function chargesOf(meterId: string): Promise<number> {
  const statement = await ledger.statement(householdAccountId(`hh-${meterId}`), 0, Number.MAX_SAFE_INTEGER);
  return statement.entries.filter((e) => e.kind === "charge").length;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "prepaid-batch-"));
  const path = join(dir, "cloud.db");
  ledger = openSqliteLedger({ path });
  registry = openRegistry({ path });
  commands = [];
  prepaid = createPrepaidService({ ledger, registry, log: pino({ level: "silent" }), publishCommand: (gatewayId, command) => Promise.resolve(void commands.push({ gatewayId, command })) });
  await registry.addVillage({ villageId: "v1", name: "Village" });
  await registry.addGateway({ gatewayId: GW, villageId: "v1", secretHash: await hashSecret("unused") });
  await registry.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: PRICE } });
  for (const meterId of ["m1", "m2"]) {
    await registry.addHousehold({ householdId: `hh-${meterId}`, villageId: "v1", name: meterId, overdraftFen: 0 });
    await registry.addMeter({ meterId, gatewayId: GW, householdId: `hh-${meterId}`, tariffId: "flat", initialWh: INITIAL_WH });
    await prepaid.topUp({ householdId: `hh-${meterId}`, amountFen: 50_000, officerId: "o1", receiptId: "r1" });
  }
});

afterEach(async () => {
  await prepaid.idle();
  await ledger.close();
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("prepaid billing in group-commit batches", () => {
  it("charges one meter's readings from two messages of a batch in registerSeq order, each once", async () => {
    // The later readings arrive first (a drained backlog is not in order).
    const outcomes = await prepaid.onBillingBatch([
      { gatewayId: GW, readings: message(2, [{ meterId: "m1", registerSeq: 3 }, { meterId: "m1", registerSeq: 4 }]) },
      { gatewayId: GW, readings: message(1, [{ meterId: "m1", registerSeq: 1 }, { meterId: "m1", registerSeq: 2 }]) },
    ]);
    expect(outcomes).toEqual([null, null]);
    expect(await chargesOf("m1")).toBe(4);
    expect((await ledger.loadChargeState("m1"))?.state.lastRegisterWh).toBe(INITIAL_WH + 4000);
    expect(prepaid.counters.readingsCharged).toBe(4);
  });

  it("fails only the messages that carry a meter the ledger refused, and charges the rest", async () => {
    // Something else already holds m2's first charge key with other content: the ledger must refuse that step.
    await ledger.post({
      idempotencyKey: chargeIdempotencyKey("m2", 1),
      kind: "charge",
      lines: [
        { accountId: householdAccountId("hh-m2"), amountFen: -1 },
        { accountId: villageCashAccountId("v1"), amountFen: 1 },
      ],
      memo: "a conflicting posting",
      actor: "test",
      atMs: 1,
    });
    const outcomes = await prepaid.onBillingBatch([
      { gatewayId: GW, readings: message(1, [{ meterId: "m1", registerSeq: 1 }]) },
      { gatewayId: GW, readings: message(2, [{ meterId: "m2", registerSeq: 1 }]) },
      { gatewayId: GW, readings: message(3, [{ meterId: "m1", registerSeq: 2 }]) },
    ]);
    expect(outcomes[0]).toBeNull();
    expect(outcomes[1]).toBeInstanceOf(Error);
    expect(outcomes[2]).toBeNull();
    expect(await chargesOf("m1")).toBe(2);
    expect(await ledger.loadChargeState("m2")).toBeUndefined();
  });

  it("does not charge a meter reported by a gateway it is not registered to, and does not fail the message", async () => {
    const outcomes = await prepaid.onBillingBatch([{ gatewayId: "other-gw", readings: message(1, [{ meterId: "m1", registerSeq: 1 }], "other-gw") }]);
    expect(outcomes).toEqual([null]);
    expect(prepaid.counters.unknownMeter).toBe(1);
    expect(await ledger.loadChargeState("m1")).toBeUndefined();
  });

  it("sizes each household's first grant once, after the batch's charges committed", async () => {
    await prepaid.onBillingBatch([
      { gatewayId: GW, readings: message(1, [{ meterId: "m1", registerSeq: 1 }, { meterId: "m2", registerSeq: 1 }]) },
      { gatewayId: GW, readings: message(2, [{ meterId: "m1", registerSeq: 2 }]) },
    ]);
    await prepaid.idle();
    const grant = await registry.lastGrant("m1");
    expect(grant).toMatchObject({ grantSeq: 1, registerWh: INITIAL_WH + 2000 });
    expect(await registry.lastGrant("m2")).toMatchObject({ grantSeq: 1, registerWh: INITIAL_WH + 1000 });
    expect(commands.map((c) => (c.command.command as { meterId: string }).meterId).sort()).toEqual(["m1", "m2"]);
  });
});
