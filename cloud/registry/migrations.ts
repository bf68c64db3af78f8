// The registry's schema as versioned migrations in its own table (registry_schema_migrations), so it can share one
// SQLite file with the ledger (whose schema_migrations it never touches). Same rules as the ledger's: applied in
// one BEGIN IMMEDIATE transaction, idempotent, refusing a file migrated by newer or other code. Never edit a
// released migration: add the next one. STRICT tables keep a float out of every INTEGER column (invariant 1).
// The PostgreSQL engine's schema is postgres-registry-migrations.ts; a change here needs its twin there.

import type Database from "better-sqlite3";
import type { VersionedMigration } from "../schema-migrations.js";
import { applyMigrations } from "../sqlite.js";
import { RegistryError, REGISTRY_ERROR_CODES as C } from "./errors.js";

export const REGISTRY_MIGRATIONS: readonly VersionedMigration[] = [
  {
    version: 1,
    name: "villages-households-gateways-meters-tariffs-grants",
    sql: `
CREATE TABLE registry_villages (
  village_id    TEXT    PRIMARY KEY,
  name          TEXT    NOT NULL,
  created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE registry_households (
  household_id  TEXT    PRIMARY KEY,
  village_id    TEXT    NOT NULL REFERENCES registry_villages (village_id),
  name          TEXT    NOT NULL,
  -- How far below zero the prepaid balance may run (DL/T 1490 透支), in fen.
  overdraft_fen INTEGER NOT NULL DEFAULT 0 CHECK (overdraft_fen >= 0),
  created_at_ms INTEGER NOT NULL
) STRICT;

-- A gateway logs in with username = client id = gateway_id; secret_hash is secrets.ts's scrypt encoding.
CREATE TABLE registry_gateways (
  gateway_id    TEXT    PRIMARY KEY,
  village_id    TEXT    REFERENCES registry_villages (village_id),
  secret_hash   TEXT    NOT NULL,
  enabled       INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE registry_cloud_clients (
  username      TEXT    PRIMARY KEY,
  role          TEXT    NOT NULL CHECK (role IN ('ingest', 'command')),
  secret_hash   TEXT    NOT NULL,
  created_at_ms INTEGER NOT NULL
) STRICT;

-- A published version is immutable (tariff.ts): no UPDATE path exists in registry.ts.
CREATE TABLE registry_tariffs (
  tariff_id         TEXT    NOT NULL,
  version           INTEGER NOT NULL CHECK (version >= 1),
  effective_from_ms INTEGER NOT NULL CHECK (effective_from_ms >= 0),
  prices_json       TEXT    NOT NULL,
  created_at_ms     INTEGER NOT NULL,
  PRIMARY KEY (tariff_id, version)
) STRICT;

-- meter_id is the edge's device id and, in this cloud, unique across gateways: the ledger keys charge state by it.
CREATE TABLE registry_meters (
  meter_id      TEXT    PRIMARY KEY,
  gateway_id    TEXT    NOT NULL REFERENCES registry_gateways (gateway_id),
  household_id  TEXT    NOT NULL REFERENCES registry_households (household_id),
  tariff_id     TEXT    NOT NULL,
  -- The register at commissioning (the charge baseline); NULL: the first billing reading sets it.
  initial_wh    INTEGER CHECK (initial_wh IS NULL OR initial_wh >= 0),
  reconnect     TEXT    NOT NULL DEFAULT 'automatic' CHECK (reconnect IN ('automatic', 'manual')),
  created_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX registry_meters_by_household ON registry_meters (household_id);

-- Every credit grant ever issued, written before it is published; grant_seq rises per meter (invariant 4).
CREATE TABLE registry_grants (
  meter_id      TEXT    NOT NULL REFERENCES registry_meters (meter_id),
  grant_seq     INTEGER NOT NULL CHECK (grant_seq >= 1),
  limit_wh      INTEGER NOT NULL CHECK (limit_wh >= 0),
  register_wh   INTEGER NOT NULL CHECK (register_wh >= 0),
  command_id    TEXT    NOT NULL UNIQUE,
  gateway_id    TEXT    NOT NULL,
  issued_at_ms  INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  ack_status    TEXT,
  ack_reason    TEXT,
  acked_at_ms   INTEGER,
  PRIMARY KEY (meter_id, grant_seq)
) STRICT;

-- One row per top-up posted, so a serving cloud notices top-ups recorded by another process (the CLI) and re-grants.
CREATE TABLE registry_topup_notices (
  notice_id     INTEGER PRIMARY KEY AUTOINCREMENT,
  household_id  TEXT    NOT NULL,
  posting_id    INTEGER NOT NULL UNIQUE,
  at_ms         INTEGER NOT NULL
) STRICT;

-- Uplinks that have no store of their own yet (birth, events, alarm, command acks): kept verbatim, idempotent on
-- (gateway_id, kind, seq) because ingest delivers at least once.
CREATE TABLE uplink_records (
  gateway_id     TEXT    NOT NULL,
  kind           TEXT    NOT NULL,
  seq            INTEGER NOT NULL,
  received_at_ms INTEGER NOT NULL,
  json           TEXT    NOT NULL,
  PRIMARY KEY (gateway_id, kind, seq)
) STRICT;

CREATE TABLE gateway_status (
  gateway_id     TEXT    PRIMARY KEY,
  state          TEXT    NOT NULL,
  at             TEXT,
  reason         TEXT,
  received_at_ms INTEGER NOT NULL
) STRICT;
`,
  },
  {
    version: 2,
    name: "plots-crops-meter-plot-village-policies",
    sql: `
-- 地块: a household's plot. Area in thousandths of a mu (1 mu ≈ 666.7 m²), an integer so caps per mu stay exact.
-- Coordinates in millionths of a degree (WGS-84), for maps only.
CREATE TABLE registry_plots (
  plot_id        TEXT    PRIMARY KEY,
  household_id   TEXT    NOT NULL REFERENCES registry_households (household_id),
  name           TEXT    NOT NULL,
  area_milli_mu  INTEGER NOT NULL CHECK (area_milli_mu > 0),
  lat_e6         INTEGER CHECK (lat_e6 IS NULL OR lat_e6 BETWEEN -90000000 AND 90000000),
  lon_e6         INTEGER CHECK (lon_e6 IS NULL OR lon_e6 BETWEEN -180000000 AND 180000000),
  created_at_ms  INTEGER NOT NULL
) STRICT;
CREATE INDEX registry_plots_by_household ON registry_plots (household_id);

-- What grows on a plot, as a history: a subsidy season asks what was in force then, years later.
CREATE TABLE registry_plot_crops (
  plot_id           TEXT    NOT NULL REFERENCES registry_plots (plot_id),
  effective_from_ms INTEGER NOT NULL CHECK (effective_from_ms >= 0),
  crop              TEXT    NOT NULL,
  recorded_by       TEXT    NOT NULL,
  created_at_ms     INTEGER NOT NULL,
  PRIMARY KEY (plot_id, effective_from_ms)
) STRICT;

-- The plot a meter's pump irrigates, and the pump's water conversion (以电折水: litres pumped per kWh).
ALTER TABLE registry_meters ADD COLUMN plot_id TEXT REFERENCES registry_plots (plot_id);
ALTER TABLE registry_meters ADD COLUMN litres_per_kwh INTEGER CHECK (litres_per_kwh IS NULL OR litres_per_kwh > 0);

-- The friendly periods a grant carried (JSON; NULL: none), so a policy change is noticed and re-sent.
ALTER TABLE registry_grants ADD COLUMN friendly_json TEXT;

-- A village's prepaid policy (village-policy.ts), versioned like tariffs: a version is never edited.
CREATE TABLE registry_village_policies (
  village_id        TEXT    NOT NULL REFERENCES registry_villages (village_id),
  version           INTEGER NOT NULL CHECK (version >= 1),
  effective_from_ms INTEGER NOT NULL CHECK (effective_from_ms >= 0),
  policy_json       TEXT    NOT NULL,
  created_at_ms     INTEGER NOT NULL,
  PRIMARY KEY (village_id, version)
) STRICT;
`,
  },
  {
    version: 3,
    name: "grant-warning-stages",
    sql: `
-- The low-credit warning stages a grant carried (JSON [stage1Wh, stage2Wh]; NULL: none), so a change of the
-- village's lowCredit policy (or of the price it is converted at) is noticed and re-sent, like friendly_json.
ALTER TABLE registry_grants ADD COLUMN warn_json TEXT;
`,
  },
  {
    version: 4,
    name: "meter-unit-profile-relay",
    sql: `
-- Where the meter sits on its gateway's bus and how its supply is cut (the cloud's record of the edge config):
-- the Modbus unit (1..247, Modbus over Serial Line v1.02 §2.2), the device profile id, and the relay binding as JSON
-- ({"kind":"meter-relay"} or {"kind":"contactor","deviceId":…,"channel":…}). NULL: not recorded.
ALTER TABLE registry_meters ADD COLUMN unit_id INTEGER CHECK (unit_id IS NULL OR unit_id BETWEEN 1 AND 247);
ALTER TABLE registry_meters ADD COLUMN profile_id TEXT;
ALTER TABLE registry_meters ADD COLUMN relay_json TEXT;
`
  },
];

export const REGISTRY_SCHEMA_VERSION = REGISTRY_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

export function migrateRegistry(db: Database.Database, nowMs: number): { fromVersion: number; toVersion: number } {
  return applyMigrations(db, {
    table: "registry_schema_migrations",
    migrations: REGISTRY_MIGRATIONS,
    nowMs,
    refuse: (p) =>
      p.kind === "too-new"
        ? new RegistryError(C.SCHEMA_TOO_NEW, `the registry is at schema version ${p.fromVersion}; this code knows up to ${p.knownVersion}`)
        : new RegistryError(C.SCHEMA_MISMATCH, `registry schema version ${p.version} was applied as "${p.appliedName}"`),
  });
}
