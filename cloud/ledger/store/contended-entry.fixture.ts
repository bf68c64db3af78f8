// The entries concurrency tests post from several writers at once (the SQLite child processes and the PostgreSQL
// pools): a top-up (even i) or a charge (odd i) on account hh-1, whose content depends on i only, so two writers
// posting the same i post the same entry and the ledger must take it once.

import type { LedgerEntry } from "./ledger.js";

export function contendedEntry(i: number): LedgerEntry {
  const fen = i % 2 === 0 ? 1_000 + i : 1 + (i % 97);
  const [from, to] = i % 2 === 0 ? ["pay", "hh-1"] : ["hh-1", "rev"];
  return {
    idempotencyKey: `k/${i}`,
    kind: i % 2 === 0 ? "top-up" : "charge",
    lines: [
      { accountId: from, amountFen: -fen },
      { accountId: to, amountFen: fen },
    ],
    memo: `entry ${i}`,
    actor: "test:concurrent",
    atMs: 1_751_000_000_000 + i,
  };
}
