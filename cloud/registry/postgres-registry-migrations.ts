// The PostgreSQL registry's schema as versioned migrations in its own table, registry_schema_migrations, so it shares
// one database with the PostgreSQL ledger (whose tables are ledger_* and whose table of versions is
// ledger_schema_migrations) without either touching the other's. Same rules as every store (schema-migrations.ts):
// all pending versions in ONE transaction, idempotent, refusing a database migrated by newer code
// (REGISTRY_SCHEMA_TOO_NEW) or by other code (REGISTRY_SCHEMA_MISMATCH) before touching it. Never edit a released
// migration: add the next one.
//
// Version 1 is the SQLite registry's four migrations (migrations.ts) folded into their final shape: this engine
// started there. Types: BIGINT for every ms, Wh, fen and id that may grow (read back only as safe integers,
// postgres-registry.ts), INTEGER for small bounded numbers, BOOLEAN for flags, TEXT for the JSON the SQLite engine
// also keeps as text (so both engines share one row mapper and hand back byte-identical JSON).
//
// Two processes migrating at once: the runner (cloud/postgres.ts) first takes a transaction-scoped advisory lock (a
// key of its own, not the ledger's), so the second waits, then finds the first's rows and has nothing to do.

import type pg from "pg";
import { applyPostgresMigrations, migrateOnConnection } from "../postgres.js";
import type { VersionedMigration } from "../schema-migrations.js";
import { RegistryError, REGISTRY_ERROR_CODES as C } from "./errors.js";

/** "agri" "regi" in ASCII, recognisable in pg_locks, and distinct from the ledger's "agri" "ledg". */
export const REGISTRY_MIGRATION_LOCK_KEY = 0x61677269_72656769n;

export const POSTGRES_REGISTRY_MIGRATIONS: readonly VersionedMigration[] = [
  {
    version: 1,
    name: "registry-initial",
    sql: `
CREATE TABLE registry_villages (
  village_id    TEXT   PRIMARY KEY,
  name          TEXT   NOT NULL,
  created_at_ms BIGINT NOT NULL
);

CREATE TABLE registry_households (
  household_id  TEXT   PRIMARY KEY,
  village_id    TEXT   NOT NULL REFERENCES registry_villages (village_id),
  name          TEXT   NOT NULL,
  -- How far below zero the prepaid balance may run (DL/T 1490 透支), in fen.
  overdraft_fen BIGINT NOT NULL DEFAULT 0 CHECK (overdraft_fen >= 0),
  created_at_ms BIGINT NOT NULL
);
CREATE INDEX registry_households_by_village ON registry_households (village_id);

-- A gateway logs in with username = client id = gateway_id; secret_hash is secrets.ts's scrypt encoding.
CREATE TABLE registry_gateways (
  gateway_id    TEXT    PRIMARY KEY,
  village_id    TEXT    REFERENCES registry_villages (village_id),
  secret_hash   TEXT    NOT NULL,
  enabled       BOOLEAN NOT NULL,
  created_at_ms BIGINT  NOT NULL
);
CREATE INDEX registry_gateways_by_village ON registry_gateways (village_id);

CREATE TABLE registry_cloud_clients (
  username      TEXT   PRIMARY KEY,
  role          TEXT   NOT NULL CHECK (role IN ('ingest', 'command')),
  secret_hash   TEXT   NOT NULL,
  created_at_ms BIGINT NOT NULL
);

-- A published version is immutable (tariff.ts): no UPDATE path exists in the registry.
CREATE TABLE registry_tariffs (
  tariff_id         TEXT    NOT NULL,
  version           INTEGER NOT NULL CHECK (version >= 1),
  effective_from_ms BIGINT  NOT NULL CHECK (effective_from_ms >= 0),
  prices_json       TEXT    NOT NULL,
  created_at_ms     BIGINT  NOT NULL,
  PRIMARY KEY (tariff_id, version)
);

-- 地块: a household's plot. Area in thousandths of a mu (1 mu ≈ 666.7 m²), an integer so caps per mu stay exact.
-- Coordinates in millionths of a degree (WGS-84), for maps only.
CREATE TABLE registry_plots (
  plot_id       TEXT    PRIMARY KEY,
  household_id  TEXT    NOT NULL REFERENCES registry_households (household_id),
  name          TEXT    NOT NULL,
  area_milli_mu INTEGER NOT NULL CHECK (area_milli_mu > 0),
  lat_e6        INTEGER CHECK (lat_e6 IS NULL OR lat_e6 BETWEEN -90000000 AND 90000000),
  lon_e6        INTEGER CHECK (lon_e6 IS NULL OR lon_e6 BETWEEN -180000000 AND 180000000),
  created_at_ms BIGINT  NOT NULL
);
CREATE INDEX registry_plots_by_household ON registry_plots (household_id);

-- What grows on a plot, as a history: a subsidy season asks what was in force then, years later.
CREATE TABLE registry_plot_crops (
  plot_id           TEXT   NOT NULL REFERENCES registry_plots (plot_id),
  effective_from_ms BIGINT NOT NULL CHECK (effective_from_ms >= 0),
  crop              TEXT   NOT NULL,
  recorded_by       TEXT   NOT NULL,
  created_at_ms     BIGINT NOT NULL,
  PRIMARY KEY (plot_id, effective_from_ms)
);

-- meter_id is the edge's device id and, in this cloud, unique across gateways: the ledger keys charge state by it.
-- initial_wh: the register at commissioning (the charge baseline); NULL: the first billing reading sets it.
-- unit_id, profile_id, relay_json: where the meter sits on its gateway's bus (Modbus unit 1..247, Modbus over Serial
-- Line v1.02 §2.2) and how its supply is cut; plot_id, litres_per_kwh: the plot its pump irrigates (以电折水).
CREATE TABLE registry_meters (
  meter_id       TEXT    PRIMARY KEY,
  gateway_id     TEXT    NOT NULL REFERENCES registry_gateways (gateway_id),
  household_id   TEXT    NOT NULL REFERENCES registry_households (household_id),
  tariff_id      TEXT    NOT NULL,
  initial_wh     BIGINT  CHECK (initial_wh IS NULL OR initial_wh >= 0),
  reconnect      TEXT    NOT NULL DEFAULT 'automatic' CHECK (reconnect IN ('automatic', 'manual')),
  unit_id        INTEGER CHECK (unit_id IS NULL OR unit_id BETWEEN 1 AND 247),
  profile_id     TEXT,
  relay_json     TEXT,
  plot_id        TEXT    REFERENCES registry_plots (plot_id),
  litres_per_kwh INTEGER CHECK (litres_per_kwh IS NULL OR litres_per_kwh > 0),
  created_at_ms  BIGINT  NOT NULL
);
CREATE INDEX registry_meters_by_household ON registry_meters (household_id);

-- Every credit grant ever issued, written before it is published; grant_seq rises per meter (invariant 4) and is
-- allocated under the meter row's lock (postgres-registry.ts). friendly_json / warn_json: what the grant carried, so
-- a policy change is noticed and re-sent.
CREATE TABLE registry_grants (
  meter_id      TEXT   NOT NULL REFERENCES registry_meters (meter_id),
  grant_seq     BIGINT NOT NULL CHECK (grant_seq >= 1),
  limit_wh      BIGINT NOT NULL CHECK (limit_wh >= 0),
  register_wh   BIGINT NOT NULL CHECK (register_wh >= 0),
  command_id    TEXT   NOT NULL UNIQUE,
  gateway_id    TEXT   NOT NULL,
  issued_at_ms  BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  ack_status    TEXT,
  ack_reason    TEXT,
  acked_at_ms   BIGINT,
  friendly_json TEXT,
  warn_json     TEXT,
  PRIMARY KEY (meter_id, grant_seq)
);

-- One row per top-up posted, so a serving cloud notices top-ups recorded by another process (the CLI) and re-grants.
-- notice_id is allocated and committed in order (postgres-registry.ts): a reader's cursor never skips a late commit.
CREATE TABLE registry_topup_notices (
  notice_id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  household_id TEXT   NOT NULL,
  posting_id   BIGINT NOT NULL UNIQUE,
  at_ms        BIGINT NOT NULL
);

-- A village's prepaid policy (village-policy.ts), versioned like tariffs: a version is never edited.
CREATE TABLE registry_village_policies (
  village_id        TEXT    NOT NULL REFERENCES registry_villages (village_id),
  version           INTEGER NOT NULL CHECK (version >= 1),
  effective_from_ms BIGINT  NOT NULL CHECK (effective_from_ms >= 0),
  policy_json       TEXT    NOT NULL,
  created_at_ms     BIGINT  NOT NULL,
  PRIMARY KEY (village_id, version)
);

-- Uplinks that have no store of their own yet (birth, events, alarm, command acks): kept verbatim, idempotent on
-- (gateway_id, kind, seq) because ingest delivers at least once.
CREATE TABLE uplink_records (
  gateway_id     TEXT   NOT NULL,
  kind           TEXT   NOT NULL,
  seq            BIGINT NOT NULL,
  received_at_ms BIGINT NOT NULL,
  json           TEXT   NOT NULL,
  PRIMARY KEY (gateway_id, kind, seq)
);

CREATE TABLE gateway_status (
  gateway_id     TEXT   PRIMARY KEY,
  state          TEXT   NOT NULL,
  at             TEXT,
  reason         TEXT,
  received_at_ms BIGINT NOT NULL
);
`,
  },
];

export const LATEST_POSTGRES_REGISTRY_SCHEMA_VERSION = POSTGRES_REGISTRY_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

export interface RegistryMigrateResult {
  readonly fromVersion: number;
  readonly toVersion: number;
}

/** Brings the registry's tables to the latest version on `client` (a dedicated connection, not in a transaction). */
export function migratePostgresRegistryOn(
  client: pg.ClientBase,
  nowMs: number,
  migrations: readonly VersionedMigration[] = POSTGRES_REGISTRY_MIGRATIONS,
): Promise<RegistryMigrateResult> {
  return applyPostgresMigrations(client, {
    table: "registry_schema_migrations",
    lockKey: REGISTRY_MIGRATION_LOCK_KEY,
    migrations,
    nowMs,
    refuse: (p) =>
      p.kind === "too-new"
        ? new RegistryError(C.SCHEMA_TOO_NEW, `the registry is at schema version ${p.fromVersion}; this code knows up to ${p.knownVersion}`)
        : new RegistryError(C.SCHEMA_MISMATCH, `registry schema version ${p.version} was applied as "${p.appliedName}"`),
  });
}

/** `agri-cloud migrate` on PostgreSQL: one connection, the registry's migrations, closed again. */
export function migratePostgresRegistry(connectionString: string, nowMs: number): Promise<RegistryMigrateResult> {
  return migrateOnConnection(connectionString, "agri-registry-migrate", (client) => migratePostgresRegistryOn(client, nowMs));
}
