// Child process for sqlite-ledger.test.ts's crash test: in a tight loop, posts a top-up to hh-1 and charges meter m-1
// for its next reading through loadChargeState → chargesFor → applyCharges, printing each acknowledged key only after
// its commit, until the parent kills it with SIGKILL. It resumes from the stored state when started again.

import { writeSync } from "node:fs";
import { chargesFor } from "../charges.js";
import type { ChargeInput } from "../charge-inputs.js";
import type { Tariff } from "../tariff.js";
import { chargeEntry } from "./charge-entries.js";
import { openSqliteLedger } from "./sqlite-ledger.js";

const path = process.argv[2];
if (path === undefined) throw new Error("usage: crash-charger.fixture.ts <path>");

const T0 = 1_751_000_000_000;
const FLAT: readonly Tariff[] = [{ tariffId: "t1", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } }];
const ledger = openSqliteLedger({ path });

writeSync(1, "ready\n");
for (;;) {
  const stored = await ledger.loadChargeState("m-1");
  const seq = (stored?.state.lastRegisterSeq ?? 0) + 1;
  const topUpKey = `topup/${seq}`;
  await ledger.post({
    idempotencyKey: topUpKey,
    kind: "top-up",
    lines: [
      { accountId: "pay", amountFen: -500 },
      { accountId: "hh-1", amountFen: 500 },
    ],
    memo: `top-up before reading ${seq}`,
    actor: "provider:wechat",
    atMs: T0 + seq,
  });
  writeSync(1, `${topUpKey}\n`);
  const inputs: ChargeInput[] = stored === undefined ? [{ type: "meter-installed", meterId: "m-1", atMs: T0, initialWh: 0 }] : [];
  inputs.push({ meterId: "m-1", registerSeq: seq, atMs: T0 + seq * 60_000, registerWh: seq * 777 });
  const step = chargesFor({ meters: stored === undefined ? {} : { "m-1": stored.state } }, inputs, FLAT);
  const meter = step.state.meters["m-1"];
  if (meter === undefined || step.held.length > 0) throw new Error(`unexpected step: ${JSON.stringify(step.held)}`);
  const entries = step.postings.map((p) => chargeEntry(p, { householdAccountId: "hh-1", revenueAccountId: "rev" }));
  await ledger.applyCharges("m-1", { expectedRevision: stored?.revision ?? 0, state: meter, entries });
  writeSync(1, `charge/m-1/${seq}\n`);
}
