// The registry port (registry.ts's `Registry`) on PostgreSQL, for a cloud that has outgrown one box (ARCHITECTURE.md
// §3) and keeps the ledger there too: several processes and pools may write at once. Same validation, row mappers,
// error codes and results as the SQLite engine (the checks and mappers are imported from registry.ts, land.ts and
// registry-input.ts, not copied), held to it by registry.contract.ts. Plots and village policies: postgres-land.ts.
//
// Concurrency, READ COMMITTED throughout; where a write depends on what it read, the read happens under a lock that
// every writer of the same thing takes first, held to COMMIT:
// - recordGrant locks the meter's row (SELECT … FOR NO KEY UPDATE), then reads MAX(grant_seq): a second pool's grant
//   for the same meter waits, then reads the first's committed row (READ COMMITTED takes a new snapshot per
//   statement), so seqs are distinct and consecutive and no grant is lost. NO KEY UPDATE, not UPDATE: it does not
//   block the FOR KEY SHARE that the grants' foreign key takes on that row.
// - addTariff takes a transaction-scoped advisory lock on (tariffs, hashtext(tariff id)) — a tariff has no parent row
//   to lock — then checks the schedule with the new version and inserts it; addVillagePolicy locks the village row.
// - noteTopUp takes one advisory lock for all notices: notice ids (an identity) are then allocated and committed in
//   the same order, so a reader's topUpNoticesAfter(cursor) can never pass a smaller id that commits later.
//
// Integers: BIGINT columns; int8 values read back as numbers only when safe integers (postgres-session.ts), else
// REGISTRY_NON_INTEGER_VALUE.

import type pg from "pg";
import type { CloudClientRecord, CloudRole, GatewayRecord } from "../broker/policy.js";
import { redactUrl } from "../ledger/store/open-ledger.js";
import { tariffSchema, type Tariff } from "../ledger/tariff.js";
import { inTransaction, openMigratedPool, openPostgresPool } from "../postgres.js";
import { postgresHouseholdLock } from "./household-lock.js";
import { RegistryError, REGISTRY_ERROR_CODES as C } from "./errors.js";
import { postgresLandMethods } from "./postgres-land.js";
import { migratePostgresRegistryOn, type RegistryMigrateResult } from "./postgres-registry-migrations.js";
import { firstRow, parseRegistryInteger, rows, write, type Queryable } from "./postgres-session.js";
import {
  commandAckInputSchema,
  gatewayStatusInputSchema,
  newGrantSchema,
  noticeCursorSchema,
  parseInput as parse,
  topUpNoticeInputSchema,
  uplinkInputSchema,
} from "./registry-input.js";
import {
  checkSecretHash,
  checkTariffJoins,
  cloudClientInputSchema,
  gatewayInputSchema,
  GRANT_COLUMNS,
  grantJsonColumns,
  grantRecordOf,
  householdInputSchema,
  isFinalAck,
  METER_COLUMNS,
  meterInputSchema,
  toGrant,
  toMeter,
  toTariff,
  villageInputSchema,
  type GrantRow,
  type MeterRow,
  type Registry,
  type TariffRow,
} from "./registry.js";

export interface PostgresRegistryOptions {
  readonly connectionString: string;
  /** The registry's clock, for created_at_ms. */
  readonly now?: () => number;
  /** Connections in the pool (default 10). */
  readonly poolSize?: number;
  /** Connections that hold household locks (default 8, as many as billing grants at once; each holder keeps one while its work runs). */
  readonly lockPoolSize?: number;
  /** Shown in pg_stat_activity, so an operator can tell the registry's connections apart. */
  readonly applicationName?: string;
}

export type PostgresRegistry = Registry & {
  readonly kind: "postgres";
  /** The migration this open performed (fromVersion = toVersion when there was nothing to do). */
  readonly migration: RegistryMigrateResult;
};

/** Advisory lock classes (first key of pg_advisory_xact_lock(int4, int4)): "regt" tariffs, "regn" top-up notices. */
const TARIFF_LOCK_CLASS = 0x72656774;
const NOTICE_LOCK_CLASS = 0x7265676e;

interface HouseholdRow {
  household_id: string;
  village_id: string;
  name: string;
  overdraft_fen: number;
}

export async function openPostgresRegistry(options: PostgresRegistryOptions): Promise<PostgresRegistry> {
  const now = options.now ?? Date.now;
  const { pool, migration } = await openMigratedPool(
    { connectionString: options.connectionString, poolSize: options.poolSize ?? 10, applicationName: options.applicationName ?? "agri-registry", parseInteger: parseRegistryInteger },
    (client) => migratePostgresRegistryOn(client, now()),
  );
  // Household locks hold a connection while the locked work uses the registry's and the ledger's pools: their own.
  const lockPool = openPostgresPool({ connectionString: options.connectionString, poolSize: options.lockPoolSize ?? 8, applicationName: `${options.applicationName ?? "agri-registry"}-locks` });
  const withHouseholdLock = postgresHouseholdLock(lockPool);

  async function requireRow(db: Queryable, sql: string, id: string, what: string): Promise<void> {
    if ((await firstRow(db, sql, [id])) === undefined) throw new RegistryError(C.UNKNOWN, `no ${what} ${id}`);
  }
  const requireVillage = (db: Queryable, id: string) => requireRow(db, "SELECT 1 FROM registry_villages WHERE village_id = $1", id, "village");
  const requireGateway = (db: Queryable, id: string) => requireRow(db, "SELECT 1 FROM registry_gateways WHERE gateway_id = $1", id, "gateway");
  const requireHousehold = (db: Queryable, id: string) => requireRow(db, "SELECT 1 FROM registry_households WHERE household_id = $1", id, "household");

  async function scheduleIn(db: Queryable, tariffId: string): Promise<Tariff[]> {
    return (await rows<TariffRow>(db, "SELECT tariff_id, version, effective_from_ms, prices_json FROM registry_tariffs WHERE tariff_id = $1 ORDER BY version", [tariffId])).map(toTariff);
  }

  async function meterIn(db: Queryable, meterId: string): Promise<MeterRow | undefined> {
    return firstRow<MeterRow>(db, `SELECT ${METER_COLUMNS} FROM registry_meters WHERE meter_id = $1`, [meterId]);
  }

  const grantByCommand = (db: Queryable, commandId: string) => firstRow<GrantRow>(db, `SELECT ${GRANT_COLUMNS} FROM registry_grants WHERE command_id = $1`, [commandId]);

  async function updateGateway(sql: string, params: unknown[], gatewayId: string): Promise<void> {
    const r = await pool.query(sql, params);
    if (r.rowCount === 0) throw new RegistryError(C.UNKNOWN, `no gateway ${gatewayId}`);
  }

  let closing: Promise<void> | undefined;
  return {
    kind: "postgres",
    target: redactUrl(options.connectionString),
    migration,
    ...postgresLandMethods(pool, now),
    async addVillage(input) {
      const v = parse(villageInputSchema, input, "village");
      await write(`village ${v.villageId}`, () => pool.query("INSERT INTO registry_villages (village_id, name, created_at_ms) VALUES ($1, $2, $3)", [v.villageId, v.name, now()]));
    },
    async addHousehold(input) {
      const h = parse(householdInputSchema, input, "household");
      await requireVillage(pool, h.villageId);
      await write(`household ${h.householdId}`, () =>
        pool.query("INSERT INTO registry_households (household_id, village_id, name, overdraft_fen, created_at_ms) VALUES ($1, $2, $3, $4, $5)", [h.householdId, h.villageId, h.name, h.overdraftFen, now()]),
      );
      return h;
    },
    async getHousehold(householdId) {
      const r = await firstRow<HouseholdRow>(pool, "SELECT household_id, village_id, name, overdraft_fen FROM registry_households WHERE household_id = $1", [householdId]);
      return r === undefined ? undefined : { householdId: r.household_id, villageId: r.village_id, name: r.name, overdraftFen: r.overdraft_fen };
    },
    async addGateway(input) {
      const g = parse(gatewayInputSchema, input, "gateway");
      checkSecretHash(g.secretHash);
      if (g.villageId !== undefined) await requireVillage(pool, g.villageId);
      await write(`gateway ${g.gatewayId}`, () =>
        pool.query("INSERT INTO registry_gateways (gateway_id, village_id, secret_hash, enabled, created_at_ms) VALUES ($1, $2, $3, $4, $5)", [g.gatewayId, g.villageId ?? null, g.secretHash, g.enabled, now()]),
      );
    },
    async setGatewayEnabled(gatewayId, enabled) {
      await updateGateway("UPDATE registry_gateways SET enabled = $1 WHERE gateway_id = $2", [enabled, gatewayId], gatewayId);
    },
    async setGatewaySecret(gatewayId, secretHash) {
      checkSecretHash(secretHash);
      await updateGateway("UPDATE registry_gateways SET secret_hash = $1 WHERE gateway_id = $2", [secretHash, gatewayId], gatewayId);
    },
    async putCloudClient(input) {
      const c = parse(cloudClientInputSchema, input, "cloud client");
      checkSecretHash(c.secretHash);
      await pool.query(
        `INSERT INTO registry_cloud_clients (username, role, secret_hash, created_at_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (username) DO UPDATE SET role = excluded.role, secret_hash = excluded.secret_hash`,
        [c.username, c.role, c.secretHash, now()],
      );
    },
    async addTariff(tariff) {
      const t = parse(tariffSchema, tariff, "tariff");
      await inTransaction(pool, async (client) => {
        await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [TARIFF_LOCK_CLASS, t.tariffId]);
        checkTariffJoins(await scheduleIn(client, t.tariffId), t);
        await write(`tariff ${t.tariffId}@v${t.version}`, () =>
          client.query("INSERT INTO registry_tariffs (tariff_id, version, effective_from_ms, prices_json, created_at_ms) VALUES ($1, $2, $3, $4, $5)", [
            t.tariffId,
            t.version,
            t.effectiveFrom,
            JSON.stringify(t.prices),
            now(),
          ]),
        );
      });
    },
    tariffSchedule: (tariffId) => scheduleIn(pool, tariffId),
    async addMeter(input) {
      const m = parse(meterInputSchema, input, "meter");
      await requireGateway(pool, m.gatewayId);
      await requireHousehold(pool, m.householdId);
      if ((await firstRow(pool, "SELECT 1 FROM registry_tariffs WHERE tariff_id = $1", [m.tariffId])) === undefined) throw new RegistryError(C.UNKNOWN, `no tariff ${m.tariffId}`);
      const stored = await write(`meter ${m.meterId}`, async () =>
        firstRow<MeterRow>(
          pool,
          `INSERT INTO registry_meters (meter_id, gateway_id, household_id, tariff_id, initial_wh, reconnect, unit_id, profile_id, relay_json, created_at_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${METER_COLUMNS}`,
          [m.meterId, m.gatewayId, m.householdId, m.tariffId, m.initialWh ?? null, m.reconnect, m.unitId ?? null, m.profileId ?? null, m.relay === undefined ? null : JSON.stringify(m.relay), now()],
        ),
      );
      if (stored === undefined) throw new RegistryError(C.UNKNOWN, `meter ${m.meterId} vanished after insert`);
      return toMeter(stored);
    },
    async getMeter(meterId) {
      const r = await meterIn(pool, meterId);
      return r === undefined ? undefined : toMeter(r);
    },
    async metersOfHousehold(householdId) {
      return (await rows<MeterRow>(pool, `SELECT ${METER_COLUMNS} FROM registry_meters WHERE household_id = $1 ORDER BY meter_id COLLATE "C"`, [householdId])).map(toMeter);
    },
    async lastGrant(meterId) {
      const r = await firstRow<GrantRow>(pool, `SELECT ${GRANT_COLUMNS} FROM registry_grants WHERE meter_id = $1 ORDER BY grant_seq DESC LIMIT 1`, [meterId]);
      return r === undefined ? undefined : toGrant(r);
    },
    async highestLimitInForceWh(meterId) {
      const r = await firstRow<{ limit_wh: number | null }>(
        pool,
        `SELECT MAX(limit_wh) AS limit_wh FROM registry_grants WHERE meter_id = $1 AND grant_seq >=
           (SELECT COALESCE(MAX(grant_seq), 0) FROM registry_grants WHERE meter_id = $1 AND ack_status = 'done')`,
        [meterId],
      );
      return r?.limit_wh ?? undefined;
    },
    async recordGrant(grant) {
      const g = parse(newGrantSchema, grant, "grant");
      const { friendlyJson, warnJson } = grantJsonColumns(g);
      return inTransaction(pool, async (client) => {
        if ((await firstRow(client, "SELECT 1 FROM registry_meters WHERE meter_id = $1 FOR NO KEY UPDATE", [g.meterId])) === undefined) {
          throw new RegistryError(C.UNKNOWN, `no meter ${g.meterId}`);
        }
        const seqRow = await firstRow<{ next: number }>(client, "SELECT COALESCE(MAX(grant_seq), 0) + 1 AS next FROM registry_grants WHERE meter_id = $1", [g.meterId]);
        const grantSeq = seqRow?.next ?? 1;
        await write(`a grant with command id ${g.commandId}`, () =>
          client.query(
            "INSERT INTO registry_grants (meter_id, grant_seq, limit_wh, register_wh, command_id, gateway_id, issued_at_ms, expires_at_ms, friendly_json, warn_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [g.meterId, grantSeq, g.limitWh, g.registerWh, g.commandId, g.gatewayId, g.issuedAtMs, g.expiresAtMs, friendlyJson, warnJson],
          ),
        );
        return grantRecordOf(g, grantSeq);
      });
    },
    async recordCommandAck(commandId, status, reason, atMs) {
      const ack = parse(commandAckInputSchema, { commandId, status, ...(reason === undefined ? {} : { reason }), atMs }, "command ack");
      const row = await grantByCommand(pool, ack.commandId);
      if (row === undefined) return undefined;
      await pool.query(
        `UPDATE registry_grants SET ack_status = $1, ack_reason = $2, acked_at_ms = $3
          WHERE command_id = $4 AND ($5 OR ack_status IS NULL OR ack_status = 'accepted')`,
        [ack.status, ack.reason ?? null, ack.atMs, ack.commandId, isFinalAck(ack.status)],
      );
      return toGrant((await grantByCommand(pool, ack.commandId)) ?? row);
    },
    async noteTopUp(householdId, postingId, atMs) {
      const n = parse(topUpNoticeInputSchema, { householdId, postingId, atMs }, "top-up notice");
      await inTransaction(pool, async (client) => {
        await client.query("SELECT pg_advisory_xact_lock($1, 0)", [NOTICE_LOCK_CLASS]);
        await client.query("INSERT INTO registry_topup_notices (household_id, posting_id, at_ms) VALUES ($1, $2, $3) ON CONFLICT (posting_id) DO NOTHING", [n.householdId, n.postingId, n.atMs]);
      });
    },
    async topUpNoticesAfter(noticeId) {
      const cursor = parse(noticeCursorSchema, noticeId, "notice cursor");
      const found = await rows<{ notice_id: number; household_id: string; posting_id: number }>(
        pool,
        "SELECT notice_id, household_id, posting_id FROM registry_topup_notices WHERE notice_id > $1 ORDER BY notice_id",
        [cursor],
      );
      return found.map((r) => ({ noticeId: r.notice_id, householdId: r.household_id, postingId: r.posting_id }));
    },
    async recordUplink(gatewayId, kind, seq, json, atMs) {
      const u = parse(uplinkInputSchema, { gatewayId, kind, seq, atMs }, "uplink record");
      await pool.query("INSERT INTO uplink_records (gateway_id, kind, seq, received_at_ms, json) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", [
        u.gatewayId,
        u.kind,
        u.seq,
        u.atMs,
        JSON.stringify(json),
      ]);
    },
    async setGatewayStatus(gatewayId, state, at, reason, atMs) {
      parse(gatewayStatusInputSchema, { gatewayId, state, ...(at === undefined ? {} : { at }), ...(reason === undefined ? {} : { reason }), atMs }, "gateway status");
      await pool.query(
        `INSERT INTO gateway_status (gateway_id, state, at, reason, received_at_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (gateway_id) DO UPDATE SET state = excluded.state, at = excluded.at, reason = excluded.reason, received_at_ms = excluded.received_at_ms`,
        [gatewayId, state, at ?? null, reason ?? null, atMs],
      );
    },
    async gatewayStatus(gatewayId) {
      const r = await firstRow<{ state: string; at: string | null }>(pool, "SELECT state, at FROM gateway_status WHERE gateway_id = $1", [gatewayId]);
      return r === undefined ? undefined : r.at === null ? { state: r.state } : { state: r.state, at: r.at };
    },
    async countUplinks(gatewayId, kind) {
      return (await firstRow<{ n: number }>(pool, "SELECT COUNT(*) AS n FROM uplink_records WHERE gateway_id = $1 AND kind = $2", [gatewayId, kind]))?.n ?? 0;
    },
    async snapshot() {
      // One snapshot for both tables: the broker never sees a gateway list and a client list from different moments.
      return inTransaction(
        pool,
        async (client: pg.PoolClient) => {
          const gateways = await rows<{ gateway_id: string; secret_hash: string; enabled: boolean }>(client, "SELECT gateway_id, secret_hash, enabled FROM registry_gateways");
          const cloudClients = await rows<{ username: string; role: CloudRole; secret_hash: string }>(client, "SELECT username, role, secret_hash FROM registry_cloud_clients");
          return {
            gateways: new Map<string, GatewayRecord>(gateways.map((r) => [r.gateway_id, { secretHash: r.secret_hash, enabled: r.enabled }])),
            cloudClients: new Map<string, CloudClientRecord>(cloudClients.map((r) => [r.username, { secretHash: r.secret_hash, role: r.role }])),
          };
        },
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
      );
    },
    withHouseholdLock,
    close() {
      closing ??= Promise.all([pool.end(), lockPool.end()]).then(() => undefined);
      return closing;
    },
  };
}
