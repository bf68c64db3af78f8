// Child process for sqlite-ledger.test.ts's concurrency test: posts a top-up (even i) or a charge (odd i) for every
// i in [from, to) to account hh-1 of the ledger at argv[2], and prints "<key> <duplicate> <hh-1 delta fen>" after each commit. The
// content of key i depends on i only, so two workers with overlapping ranges post the same entries.

import { writeSync } from "node:fs";
import { contendedEntry } from "./contended-entry.fixture.js";
import { openSqliteLedger } from "./sqlite-ledger.js";

const [path, fromArg, toArg] = process.argv.slice(2);
if (path === undefined || fromArg === undefined || toArg === undefined) throw new Error("usage: concurrent-poster.fixture.ts <path> <from> <to>");

const ledger = openSqliteLedger({ path, busyTimeoutMs: 30_000 });
for (let i = Number(fromArg); i < Number(toArg); i++) {
  const entry = contendedEntry(i);
  const r = await ledger.post(entry);
  const hhDeltaFen = entry.lines.find((l) => l.accountId === "hh-1")?.amountFen ?? 0;
  writeSync(1, `${entry.idempotencyKey} ${r.duplicate} ${hhDeltaFen}\n`);
}
await ledger.close();
