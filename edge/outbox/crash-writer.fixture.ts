// Child process for sqlite-outbox.test.ts's crash test: appends to the outbox at argv[2] in a tight loop (single
// appends and small batches, mixed priorities) and prints each seq on its own line only after the append's
// transaction has committed, until the parent kills it with SIGKILL. Printed means acknowledged.

import { writeSync } from "node:fs";
import type { OutboxMessage, OutboxPriority } from "./outbox.js";
import { openSqliteOutbox } from "./sqlite-outbox.js";

const path = process.argv[2];
if (path === undefined) throw new Error("usage: crash-writer.fixture.ts <outbox path>");

const outbox = openSqliteOutbox({ path, maxBytes: 1_000_000_000, maxCount: 10_000_000 });
const priorities: readonly OutboxPriority[] = ["telemetry", "billing", "event", "alarm"];
const message = (i: number): OutboxMessage => ({
  topicName: "telemetry",
  topic: "agri/v1/gw/gw-crash/up/telemetry",
  payload: { v: 1, i, filler: "x".repeat(i % 200) },
  priority: priorities[i % priorities.length] ?? "telemetry",
});

// writeSync, not process.stdout.write: the line must be in the pipe before the next append starts, so that whatever
// the parent reads was acknowledged after its commit and nothing printed is still sitting in a Node buffer.
writeSync(1, "ready\n");
for (let i = 0; ; i++) {
  const results = i % 3 === 0 ? outbox.appendMany([message(i), message(i + 1), message(i + 2), message(i + 3), message(i + 4)]) : [outbox.append(message(i))];
  writeSync(1, `${results.map((r) => r.seq).join("\n")}\n`);
}
