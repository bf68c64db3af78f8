// Prepaid routes through a real fastify instance, the real prepaid service and real SQLite files: cash top-ups,
// refunds and corrections as new postings (idempotent, capped, audited), the balance with its low-credit stage, the
// statement of account adding up to the fen, kWh per day, and every scope rule.

import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { prepaidRoutes } from "../../cloud/api/routes/prepaid.js";
import type { StatementOfAccount } from "../../cloud/api/routes/statement-of-account.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { recordTopUp } from "../../cloud/prepaid/top-up.js";
import { openSqliteTelemetryStore, type SqliteTelemetryStore } from "../../cloud/telemetry/sqlite-store.js";
import type { BillingReadings } from "../../protocols/mqtt/messages.js";
import { ADMIN, call, field, FARMER_LI, FARMER_WANG, OFFICER_V1, OFFICER_V2, openHarness, seedVillages, T0, type Harness } from "./api-domain-harness.js";
import { join } from "node:path";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

let secretHash: string;
let h: Harness;
let telemetry: SqliteTelemetryStore | undefined;
let seq = 0;
let registerSeq = 0;

beforeAll(async () => {
  secretHash = await hashSecret("gateway-secret-for-tests-0123456789");
});

async function open(withTelemetry: boolean): Promise<void> {
  h = await openHarness((app, parts) => {
    if (withTelemetry) telemetry = openSqliteTelemetryStore({ path: join(parts.dir, "telemetry.db"), now: () => parts.clock.nowMs, flushIntervalMs: 5 });
    return prepaidRoutes(app, {
      registry: parts.registry,
      ledger: parts.ledger,
      audit: parts.audit,
      prepaid: parts.prepaid,
      requests: parts.store,
      now: () => parts.clock.nowMs,
      ...(telemetry === undefined ? {} : { telemetry }),
    });
  });
  await seedVillages(h.registry, h.ledger, secretHash);
}

beforeEach(async () => {
  seq = 0;
  registerSeq = 0;
  telemetry = undefined;
  await open(false);
});

afterEach(async () => {
  await telemetry?.close();
  await h.close();
});

/** One billing reading of pump-li at registerWh, taken at atMs. */
async function reading(registerWh: number, atMs: number): Promise<void> {
  const message: BillingReadings = {
    v: 1,
    gatewayId: "gw-v1",
    seq: ++seq,
    sentAt: new Date(atMs).toISOString(),
    readings: [
      {
        meterId: "pump-li",
        pointId: "importEnergy",
        role: "import_energy",
        registerSeq: ++registerSeq,
        at: new Date(atMs).toISOString(),
        raw: { words: [0], value: registerWh / 1000 },
        energyWh: registerWh,
        conversion: { exact: true, droppedWh: 0 },
      },
    ],
  };
  await h.prepaid.onBilling(message, "gw-v1");
}

let keyCounter = 0;
const key = (): string => `idem-${String(++keyCounter).padStart(6, "0")}`;

const topUp = (householdId: string, amountFen: number, who = OFFICER_V1, extra: Record<string, unknown> = {}) =>
  call(h.app, "POST", `/households/${householdId}/top-ups`, who, { amountFen, receiptId: `r-${++keyCounter}`, idempotencyKey: key(), ...extra });

const balance = (householdId: string): Promise<number> => h.ledger.balance(householdAccountId(householdId));

describe("cash top-ups", () => {
  it("posts an officer's cash top-up once and answers the new balance", async () => {
    const answer = await topUp("hh-li", 10_000);
    expect(answer.status).toBe(201);
    expect(answer.json).toMatchObject({ householdId: "hh-li", duplicate: false, balanceFen: 10_000 });
    expect(await balance("hh-li")).toBe(10_000);
  });

  it("re-grants the household's meters at once", async () => {
    await reading(100_000, T0);
    const before = h.commands.length;
    await topUp("hh-li", 10_000);
    await h.prepaid.idle();
    const grants = h.commands.slice(before).filter((c) => c.command.command.type === "credit.grant");
    expect(grants).toHaveLength(1);
    expect(grants[0]?.gatewayId).toBe("gw-v1");
  });

  it("answers a retry with the same idempotency key with the first answer, posting nothing twice", async () => {
    const body = { amountFen: 2_000, receiptId: "r-777", idempotencyKey: "retry-key-0001" };
    const first = await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, body);
    h.clock.nowMs += 60_000;
    const again = await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, body);
    expect(again.status).toBe(201);
    expect(again.json).toEqual({ ...(first.json as object), duplicate: true });
    expect(await balance("hh-li")).toBe(2_000);
  });

  it("refuses the same idempotency key for a different request with 409", async () => {
    await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, { amountFen: 2_000, receiptId: "r-1", idempotencyKey: "same-key-0001" });
    const other = await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, { amountFen: 3_000, receiptId: "r-1", idempotencyKey: "same-key-0001" });
    expect(other.status).toBe(409);
    expect(await balance("hh-li")).toBe(2_000);
  });

  it("answers a retry after a crash between the posting and the answer from the ledger, without re-checking the cap", async () => {
    // The first attempt claimed its key and posted, then the process died before it could store the answer.
    const request = { kind: "top-up", amountFen: 50_000, receiptId: "r-crash", reason: "cash top-up, receipt r-crash" };
    await h.store.claimMoneyRequest({ householdId: "hh-li", idempotencyKey: "crash-key-0001", requestJson: JSON.stringify(request), atMs: T0 });
    await recordTopUp(h.ledger, h.registry, { householdId: "hh-li", amountFen: 50_000, officerId: "officer-v1", receiptId: "r-crash", atMs: T0, maxBalanceFen: 50_000 });
    h.clock.nowMs += 5_000;
    const retry = await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, { amountFen: 50_000, receiptId: "r-crash", idempotencyKey: "crash-key-0001" });
    expect(retry.status).toBe(201);
    expect(retry.json).toMatchObject({ duplicate: true, balanceFen: 50_000 });
    expect(await balance("hh-li")).toBe(50_000);
  });

  it("frees the idempotency key of a refused request, so the corrected request can use it", async () => {
    const refused = await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, { amountFen: 60_000, receiptId: "r-9", idempotencyKey: "typo-key-00001" });
    expect(refused.status).toBe(422);
    const corrected = await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, { amountFen: 6_000, receiptId: "r-9", idempotencyKey: "typo-key-00001" });
    expect(corrected.status).toBe(201);
    expect(await balance("hh-li")).toBe(6_000);
  });

  it("refuses a paper receipt recorded twice under different idempotency keys", async () => {
    await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, { amountFen: 2_000, receiptId: "r-dup", idempotencyKey: "first-key-0001" });
    h.clock.nowMs += 1000;
    const twice = await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, { amountFen: 2_000, receiptId: "r-dup", idempotencyKey: "second-key-001" });
    expect(twice.status).toBe(409);
    expect(field(twice, "code")).toBe("LEDGER_IDEMPOTENCY_CONFLICT");
    const actions = (await h.audit.list({ entityType: "household", entityId: "hh-li", limit: 10 })).map((e) => e.action);
    expect(actions).toEqual(["ledger.top-up", "ledger.top-up", "ledger.top-up-refused"]);
    expect(await balance("hh-li")).toBe(2_000);
  });

  it("refuses a top-up above the village's stored-credit cap, saying how much fits, and accepts one up to it", async () => {
    await topUp("hh-li", 45_000);
    const over = await topUp("hh-li", 5_001);
    expect(over.status).toBe(422);
    expect(field<string>(over, "detail")).toContain("¥50.00");
    expect(field(await topUp("hh-li", 5_000), "balanceFen")).toBe(50_000);
  });

  it("applies the default cap where a village set no policy", async () => {
    expect((await topUp("hh-zhao", 1_000_001, OFFICER_V2)).status).toBe(422);
  });

  it("recovers an overdraft first from the next top-up", async () => {
    await reading(100_000, T0);
    await topUp("hh-li", 300);
    await reading(115_000, T0 + HOUR_MS); // 15 kWh at 52.83 fen/kWh = 792 fen: 300 − 792 = −492, inside the 500 overdraft
    expect(await balance("hh-li")).toBe(-492);
    expect(field(await topUp("hh-li", 1_000), "balanceFen")).toBe(508);
  });

  it.each([
    ["a negative amount", -100],
    ["zero", 0],
    ["a fractional amount", 10.5],
    ["a huge amount", 100_000_001],
    ["an amount as a string", "100"],
  ])("refuses %s with 400 and posts nothing", async (_what, amountFen) => {
    const answer = await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, { amountFen, receiptId: "r-bad", idempotencyKey: "bad-amount-001" });
    expect(answer.status).toBe(400);
    expect(field(answer, "code")).toBe("API_INVALID_INPUT");
    expect(await balance("hh-li")).toBe(0);
  });

  it("refuses an oversized body with 413", async () => {
    const answer = await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, { amountFen: 100, receiptId: "r-1", idempotencyKey: "big-body-0001", reason: "x".repeat(5000) });
    expect(answer.status).toBe(413);
  });

  it("answers 404 for an unknown household", async () => {
    expect((await topUp("hh-nobody", 100)).status).toBe(404);
  });

  it("refuses an officer of v2, and any farmer, a top-up in v1", async () => {
    expect((await topUp("hh-li", 100, OFFICER_V2)).status).toBe(403);
    expect((await topUp("hh-li", 100, FARMER_LI)).status).toBe(403);
    expect(await balance("hh-li")).toBe(0);
  });

  it("writes an audit record of the officer, the amount and the receipt", async () => {
    await call(h.app, "POST", "/households/hh-li/top-ups", OFFICER_V1, { amountFen: 2_000, receiptId: "r-42", idempotencyKey: "audit-key-0001" });
    const [entry] = await h.audit.list({ entityType: "household", entityId: "hh-li", limit: 10 });
    expect(entry).toMatchObject({ actor: "officer-v1", action: "ledger.top-up", villageId: "v1", reason: "cash top-up, receipt r-42", before: { balanceFen: 0 }, after: { balanceFen: 2_000, amountFen: 2_000, receiptId: "r-42" } });
  });
});

describe("refunds and corrections", () => {
  it("posts a refund as a new refund posting, at most the balance", async () => {
    await topUp("hh-li", 3_000);
    const tooMuch = await call(h.app, "POST", "/households/hh-li/refunds", OFFICER_V1, { amountFen: 3_001, receiptId: "rf-1", idempotencyKey: key(), reason: "moving away" });
    expect(tooMuch.status).toBe(422);
    const refund = await call(h.app, "POST", "/households/hh-li/refunds", OFFICER_V1, { amountFen: 3_000, receiptId: "rf-1", idempotencyKey: key(), reason: "moving away" });
    expect(field(refund, "balanceFen")).toBe(0);
    const statement = await h.ledger.statement(householdAccountId("hh-li"), 0, Number.MAX_SAFE_INTEGER);
    expect(statement.entries.map((e) => [e.kind, e.amountFen])).toEqual([
      ["top-up", 3_000],
      ["refund", -3_000],
    ]);
  });

  it("keeps back from a refund what the meter may still draw under the credit its gateway holds", async () => {
    await topUp("hh-li", 3_000);
    // A billing reading commissions the meter; the grant sent then is sized from the ¥30 balance.
    const at = new Date(h.clock.nowMs).toISOString();
    await h.prepaid.onBilling(
      { v: 1, gatewayId: "gw-v1", seq: 1, sentAt: at, readings: [{ meterId: "pump-li", pointId: "importEnergy", role: "import_energy", registerSeq: 1, at, raw: { words: [0, 0], value: 100 }, energyWh: 100_000, conversion: { exact: true, droppedWh: 0 } }] },
      "gw-v1",
    );
    await h.prepaid.idle();
    const limitWh = await h.registry.highestLimitInForceWh("pump-li") ?? 0;
    expect(limitWh).toBeGreaterThan(100_000);
    // The whole balance back in cash would let the pump spend it again on the grant the gateway still holds.
    const whole = await call(h.app, "POST", "/households/hh-li/refunds", OFFICER_V1, { amountFen: 3_000, receiptId: "rf-2", idempotencyKey: key(), reason: "moving away" });
    expect(whole.status).toBe(422);
    expect(field(whole, "detail")).toMatch(/may still draw/);
    expect(await balance("hh-li")).toBe(3_000);
    // The grant was sized from balance plus the ¥5 overdraft, so every fen of the balance is promised to the pump.
    const small = await call(h.app, "POST", "/households/hh-li/refunds", OFFICER_V1, { amountFen: 5, receiptId: "rf-3", idempotencyKey: key(), reason: "change" });
    expect(small.status).toBe(422);
    expect(field(small, "detail")).toMatch(/at most ¥0\.00/);
  });

  it("posts a correction either way as a new posting and never edits the one it corrects", async () => {
    await topUp("hh-li", 5_000);
    await call(h.app, "POST", "/households/hh-li/corrections", OFFICER_V1, { amountFen: -4_500, idempotencyKey: key(), reason: "receipt said ¥5.00, typed ¥50.00" });
    await call(h.app, "POST", "/households/hh-li/corrections", OFFICER_V1, { amountFen: 20, idempotencyKey: key(), reason: "coins miscounted" });
    const statement = await h.ledger.statement(householdAccountId("hh-li"), 0, Number.MAX_SAFE_INTEGER);
    expect(statement.entries.map((e) => [e.kind, e.amountFen])).toEqual([
      ["top-up", 5_000],
      ["correction", -4_500],
      ["correction", 20],
    ]);
    expect(await balance("hh-li")).toBe(520);
  });

  it("never moves a balance by a correction without an audit record naming who, why and how much", async () => {
    await topUp("hh-li", 5_000);
    await call(h.app, "POST", "/households/hh-li/corrections", OFFICER_V1, { amountFen: -1_000, idempotencyKey: "corr-key-0001", reason: "double entry" });
    const statement = await h.ledger.statement(householdAccountId("hh-li"), 0, Number.MAX_SAFE_INTEGER);
    const audited = await h.audit.list({ entityType: "household", entityId: "hh-li", limit: 100 });
    for (const entry of statement.entries) {
      const record = audited.find((a) => (a.after as { idempotencyKey?: string } | undefined)?.idempotencyKey === entry.idempotencyKey);
      expect(record, entry.idempotencyKey).toBeDefined();
      expect((record?.after as { amountFen: number }).amountFen).toBe(entry.amountFen);
    }
    expect(audited.find((a) => a.action === "ledger.correction")).toMatchObject({ actor: "officer-v1", reason: "double entry", before: { balanceFen: 5_000 }, after: { balanceFen: 4_000 } });
  });

  it("refuses a correction without a reason, of zero, or above the cap", async () => {
    expect((await call(h.app, "POST", "/households/hh-li/corrections", OFFICER_V1, { amountFen: -100, idempotencyKey: key() })).status).toBe(400);
    expect((await call(h.app, "POST", "/households/hh-li/corrections", OFFICER_V1, { amountFen: 0, idempotencyKey: key(), reason: "nothing" })).status).toBe(400);
    expect((await call(h.app, "POST", "/households/hh-li/corrections", OFFICER_V1, { amountFen: 50_001, idempotencyKey: key(), reason: "too generous" })).status).toBe(422);
    expect(await h.audit.list({ entityType: "household", entityId: "hh-li", limit: 10 })).toEqual([]);
    expect(await balance("hh-li")).toBe(0);
  });

  it("refuses a farmer a correction of their own balance", async () => {
    expect((await call(h.app, "POST", "/households/hh-li/corrections", FARMER_LI, { amountFen: 100, idempotencyKey: key(), reason: "please" })).status).toBe(403);
  });
});

describe("balance", () => {
  it("shows a farmer their own balance with overdraft and low-credit stage, and refuses them a neighbour's", async () => {
    await topUp("hh-li", 1_500);
    const own = await call(h.app, "GET", "/households/hh-li/balance", FARMER_LI);
    expect(own.json).toEqual({ householdId: "hh-li", balanceFen: 1_500, overdraftFen: 500, spendableFen: 2_000, maxBalanceFen: 50_000, lowCredit: { stage: 1, stage1Fen: 2_000, stage2Fen: 500 }, friendlyPeriods: [] });
    expect((await call(h.app, "GET", "/households/hh-li/balance", FARMER_WANG)).status).toBe(403);
    expect((await call(h.app, "GET", "/households/hh-zhao/balance", OFFICER_V1)).status).toBe(403);
  });

  it("reports the friendly periods of the village policy in force", async () => {
    await h.registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: T0, policy: { maxBalanceFen: 50_000, maxOverdraftFen: 500, friendlyPeriods: [{ from: "22:00", to: "06:00" }] } });
    expect((await call(h.app, "GET", "/households/hh-li/balance", FARMER_LI)).json).toMatchObject({ friendlyPeriods: [{ from: "22:00", to: "06:00" }] });
  });

  it("moves through the two low-credit stages as the balance falls", async () => {
    const stage = async (): Promise<number> => field<number>(await call(h.app, "GET", "/households/hh-li/balance", OFFICER_V1), "lowCredit.stage");
    await topUp("hh-li", 2_001);
    expect(await stage()).toBe(0);
    await call(h.app, "POST", "/households/hh-li/corrections", OFFICER_V1, { amountFen: -1, idempotencyKey: key(), reason: "to stage 1" });
    expect(await stage()).toBe(1);
    await call(h.app, "POST", "/households/hh-li/corrections", OFFICER_V1, { amountFen: -1_500, idempotencyKey: key(), reason: "to stage 2" });
    expect(await stage()).toBe(2);
  });
});

describe("statement of account", () => {
  async function history(): Promise<void> {
    await reading(100_000, T0);
    await topUp("hh-li", 5_000);
    for (let day = 0; day < 3; day++) {
      for (let hour = 1; hour <= 4; hour++) {
        h.clock.nowMs = T0 + day * DAY_MS + hour * HOUR_MS;
        await reading(100_000 + (day * 4 + hour) * 1_234, h.clock.nowMs);
      }
    }
    await call(h.app, "POST", "/households/hh-li/corrections", OFFICER_V1, { amountFen: 7, idempotencyKey: key(), reason: "rounding goodwill" });
  }

  it("adds up to the fen: opening + Σ lines = closing, and each line's balance follows", async () => {
    await history();
    const from = T0 + DAY_MS; // opening balance is not zero: day 0's charges are before it
    const to = T0 + 3 * DAY_MS;
    const s = (await call(h.app, "GET", `/households/hh-li/statement?fromMs=${from}&toMs=${to}`, FARMER_LI)).json as StatementOfAccount;
    expect(s.openingBalanceFen).not.toBe(0);
    const sum = (s.lines as { amountFen: number }[]).reduce((acc, l) => acc + l.amountFen, 0);
    expect(s.openingBalanceFen + sum).toBe(s.closingBalanceFen);
    let running = s.openingBalanceFen;
    for (const line of s.lines as { amountFen: number; balanceAfterFen: number }[]) {
      running += line.amountFen;
      expect(line.balanceAfterFen).toBe(running);
    }
    expect(s.totals.charge + s.totals.correction + s.totals["top-up"]).toBe(sum);
  });

  it("gives kWh per day from the charge postings when no telemetry series exists", async () => {
    await history();
    const s = (await call(h.app, "GET", `/households/hh-li/statement?fromMs=${T0}&toMs=${T0 + 3 * DAY_MS}`, OFFICER_V1)).json as StatementOfAccount;
    expect(s.energy).toHaveLength(1);
    expect(s.energy[0]?.source).toBe("charges");
    // Each Shanghai day (00:00 = 16:00 UTC) holds the readings of hours 1..4 UTC: 4 × 1,234 Wh.
    expect(s.energy[0]?.days).toEqual([
      { day: "2026-11-01", energyWh: 4 * 1_234 },
      { day: "2026-11-02", energyWh: 4 * 1_234 },
      { day: "2026-11-03", energyWh: 4 * 1_234 },
    ]);
  });

  it("refuses a range of more than 93 days, a reversed range, and non-digit times", async () => {
    expect((await call(h.app, "GET", `/households/hh-li/statement?fromMs=0&toMs=${94 * DAY_MS}`, OFFICER_V1)).status).toBe(400);
    expect((await call(h.app, "GET", `/households/hh-li/statement?fromMs=${T0}&toMs=${T0}`, OFFICER_V1)).status).toBe(400);
    expect((await call(h.app, "GET", `/households/hh-li/statement?fromMs=1e3&toMs=${T0}`, OFFICER_V1)).status).toBe(400);
  });

  it("refuses a farmer another household's statement", async () => {
    expect((await call(h.app, "GET", `/households/hh-li/statement?fromMs=0&toMs=${DAY_MS}`, FARMER_WANG)).status).toBe(403);
  });
});

describe("statement energy from telemetry", () => {
  beforeEach(async () => {
    await h.close();
    await open(true);
  });

  it("prefers the telemetry store's import-energy register, day by day", async () => {
    const samples = [];
    // The register in kWh, as the meter profiles report it: 100 kWh at the start, +2 kWh per hour for 30 hours.
    for (let hour = 0; hour <= 30; hour++) {
      samples.push({ deviceId: "pump-li", pointId: "importEnergy", role: "import_energy" as const, value: 100 + 2 * hour, unit: "kWh" as const, at: new Date(T0 + hour * HOUR_MS).toISOString() });
    }
    await telemetry?.write("gw-v1", samples);
    await telemetry?.flush();
    const s = (await call(h.app, "GET", `/households/hh-li/statement?fromMs=${T0}&toMs=${T0 + 2 * DAY_MS}`, ADMIN)).json as StatementOfAccount;
    expect(s.energy[0]?.source).toBe("telemetry");
    // Shanghai 2026-11-01 ends at 16:00 UTC (hour 16): hours 1..16 are 16 × 2 kWh; the rest (hours 17..30) the next day.
    expect(s.energy[0]?.days).toEqual([
      { day: "2026-11-01", energyWh: 32_000 },
      { day: "2026-11-02", energyWh: 28_000 },
    ]);
  });
});

describe("meters of a household", () => {
  it("shows each meter's last charged register and its last grant with the gateway's acknowledgement", async () => {
    await reading(100_000, T0);
    await topUp("hh-li", 5_000);
    await h.prepaid.idle();
    const grant = h.commands.at(-1);
    const grantSeq = (): number => (grant?.command.command.type === "credit.grant" ? grant.command.command.grantSeq : -1);
    expect(grantSeq()).toBeGreaterThan(0);
    await h.prepaid.onCommandAck({ v: 1, gatewayId: "gw-v1", seq: 99, sentAt: new Date(T0).toISOString(), commandId: grant?.command.commandId ?? "", status: "done" }, "gw-v1");
    const meters = (await call(h.app, "GET", "/households/hh-li/meters", FARMER_LI)).json as unknown[];
    expect(meters).toHaveLength(1);
    expect(meters[0]).toMatchObject({ meterId: "pump-li", lastChargedRegisterWh: 100_000, lastGrant: { grantSeq: grantSeq(), registerWh: 100_000, ackStatus: "done" } });
    expect((await call(h.app, "GET", "/households/hh-li/meters", FARMER_WANG)).status).toBe(403);
  });
});
