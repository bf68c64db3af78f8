// Registry migration 3: the warning stages a grant carried (warn_json), so the prepaid service notices a change of the
// village's lowCredit policy. A file at version 2 upgrades in place; its grants read back without stages.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { REGISTRY_MIGRATIONS } from "./migrations.js";
import { openRegistry, type NewGrant } from "./registry.js";

let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "registry-warn-"));
  path = join(dir, "cloud.db");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A registry file as version-2 code left it, with one meter and one grant. Raw SQL: the file format is the contract. */
function versionTwoFile(): void {
  const db = new Database(path);
  db.exec("CREATE TABLE registry_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL) STRICT");
  for (const m of REGISTRY_MIGRATIONS.filter((x) => x.version <= 2)) {
    db.exec(m.sql);
    db.prepare("INSERT INTO registry_schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)").run(m.version, m.name, 1);
  }
  db.exec(`
INSERT INTO registry_villages VALUES ('v1', 'Village', 1);
INSERT INTO registry_households (household_id, village_id, name, overdraft_fen, created_at_ms) VALUES ('h1', 'v1', 'Li', 0, 1);
INSERT INTO registry_gateways VALUES ('gw-1', 'v1', 'scrypt$unused', 1, 1);
INSERT INTO registry_meters (meter_id, gateway_id, household_id, tariff_id, initial_wh, reconnect, created_at_ms) VALUES ('m1', 'gw-1', 'h1', 'flat', 0, 'automatic', 1);
INSERT INTO registry_grants (meter_id, grant_seq, limit_wh, register_wh, command_id, gateway_id, issued_at_ms, expires_at_ms, friendly_json)
  VALUES ('m1', 1, 5000, 0, 'cmd-00000001', 'gw-1', 1, 2, NULL);
`);
  db.close();
}

const next = (more: Partial<NewGrant> = {}): NewGrant => ({ meterId: "m1", limitWh: 6000, registerWh: 100, commandId: "cmd-00000002", gatewayId: "gw-1", issuedAtMs: 10, expiresAtMs: 20, ...more });

describe("registry grants: warning stages", () => {
  it("upgrades a version-2 file: its grants read back without stages, and the next grant stores its own", () => {
    versionTwoFile();
    const registry = openRegistry({ path });
    try {
      const old = registry.lastGrant("m1");
      expect(old).toMatchObject({ grantSeq: 1, limitWh: 5000 });
      expect(old).not.toHaveProperty("warnAtWh");
      const recorded = registry.recordGrant(next({ warnAtWh: [3785, 946] }));
      expect(recorded).toMatchObject({ grantSeq: 2, warnAtWh: [3785, 946] });
      expect(registry.lastGrant("m1")).toEqual(recorded);
    } finally {
      registry.close();
    }
  });

  it("records a grant without stages as none", () => {
    versionTwoFile();
    const registry = openRegistry({ path });
    try {
      const recorded = registry.recordGrant(next());
      expect(recorded).not.toHaveProperty("warnAtWh");
      expect(registry.lastGrant("m1")).not.toHaveProperty("warnAtWh");
    } finally {
      registry.close();
    }
  });

  it("refuses to read back stored stages that break the protocol's rule, rather than send them", () => {
    versionTwoFile();
    openRegistry({ path }).close();
    const db = new Database(path);
    db.prepare("UPDATE registry_grants SET warn_json = ? WHERE grant_seq = 1").run("[100, 500]");
    db.close();
    const registry = openRegistry({ path });
    try {
      expect(() => registry.lastGrant("m1")).toThrow(/stage 2/);
    } finally {
      registry.close();
    }
  });
});
