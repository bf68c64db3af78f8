// The cloud's registry: villages, households, gateways and cloud clients (with scrypt secret hashes), meters,
// versioned tariffs, the per-meter credit grants and their acks, top-up notices, and the uplinks that have no store of
// their own yet (land.ts adds plots, crops and village policies). Two engines behind one port, `Registry`: this file's
// SQLite engine (better-sqlite3, WAL; it may share one file with the ledger: its tables are prefixed and it has its
// own migrations table), and postgres-registry.ts when the cloud runs on PostgreSQL; open-registry.ts chooses, and
// registry.contract.ts holds both to the same behaviour. Inputs are checked with zod at this boundary
// (registry-input.ts) and refused with a RegistryError naming the field. The SQLite operations are synchronous, like
// better-sqlite3, and reach the cloud as settled Promises; the broker reads a cached snapshot, never this per packet.

import { isUniqueViolation, openDurableDatabase } from "../sqlite.js";
import { z } from "zod";
import type { CloudClientRecord, CloudRole, GatewayRecord, RegistrySnapshot } from "../broker/policy.js";
import { parseSecretHash } from "../broker/secrets.js";
import { findProfile } from "../../protocols/profiles/index.js";
import { deviceIdSchema, friendlyPeriodSchema, gatewayIdSchema, warnAtWhSchema, type FriendlyPeriod } from "../../protocols/mqtt/messages.js";
import { tariffScheduleSchema, tariffSchema, type Tariff } from "../ledger/tariff.js";
import { RegistryError, REGISTRY_ERROR_CODES as C } from "./errors.js";
import { inProcessHouseholdLock } from "./household-lock.js";
import { landMethods, type LandMethods } from "./land.js";
import { migrateRegistry } from "./migrations.js";
import {
  commandAckInputSchema,
  gatewayStatusInputSchema,
  newGrantSchema,
  noticeCursorSchema,
  parseInput as parse,
  topUpNoticeInputSchema,
  uplinkInputSchema,
} from "./registry-input.js";

const entityIdSchema = deviceIdSchema;
const nameSchema = z.string().min(1).max(200);

export const villageInputSchema = z.strictObject({ villageId: entityIdSchema, name: nameSchema });
export const householdInputSchema = z.strictObject({
  householdId: entityIdSchema,
  villageId: entityIdSchema,
  name: nameSchema,
  overdraftFen: z.int().min(0).max(1_000_000).default(0),
});
export const gatewayInputSchema = z.strictObject({
  gatewayId: gatewayIdSchema,
  villageId: entityIdSchema.optional(),
  secretHash: z.string().min(1),
  enabled: z.boolean().default(true),
});
export const cloudClientInputSchema = z.strictObject({
  username: gatewayIdSchema,
  role: z.enum(["ingest", "command"]),
  secretHash: z.string().min(1),
});
export const relayBindingSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("meter-relay") }),
  z.strictObject({ kind: z.literal("contactor"), deviceId: deviceIdSchema, channel: z.int().min(1).max(64) }),
]);
export type RelayBinding = z.output<typeof relayBindingSchema>;

export const meterInputSchema = z.strictObject({
  meterId: deviceIdSchema,
  gatewayId: gatewayIdSchema,
  householdId: entityIdSchema,
  tariffId: z.string().min(1).max(64),
  initialWh: z.int().nonnegative().optional(),
  reconnect: z.enum(["automatic", "manual"]).default("automatic"),
  /** Modbus unit address on the gateway's bus: 1..247 (Modbus over Serial Line v1.02 §2.2). */
  unitId: z.int().min(1).max(247).optional(),
  /** The device profile (protocols/profiles); a built-in one must be a meter. */
  profileId: z
    .string()
    .regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, "profile ids are kebab-case")
    .max(64)
    .refine((id) => findProfile(id) === undefined || findProfile(id)?.kind === "meter", "a built-in profile of a meter (not a relay module or sensor)")
    .optional(),
  /** How the supply is cut: the meter's own relay, or a channel of a contactor on a relay module. */
  relay: relayBindingSchema.optional(),
});

export type VillageInput = z.input<typeof villageInputSchema>;
export type HouseholdInput = z.input<typeof householdInputSchema>;
export type GatewayInput = z.input<typeof gatewayInputSchema>;
export type CloudClientInput = z.input<typeof cloudClientInputSchema>;
export type MeterInput = z.input<typeof meterInputSchema>;

export interface Household {
  readonly householdId: string;
  readonly villageId: string;
  readonly name: string;
  readonly overdraftFen: number;
}

export interface Meter {
  readonly meterId: string;
  readonly gatewayId: string;
  readonly householdId: string;
  readonly tariffId: string;
  readonly initialWh?: number;
  readonly reconnect: "automatic" | "manual";
  readonly unitId?: number;
  readonly profileId?: string;
  readonly relay?: RelayBinding;
}

export interface GrantRecord {
  readonly meterId: string;
  readonly grantSeq: number;
  readonly limitWh: number;
  /** The register the grant was sized from (the last charged reading). */
  readonly registerWh: number;
  readonly commandId: string;
  readonly gatewayId: string;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  readonly ackStatus?: string;
  readonly ackReason?: string;
  readonly friendlyPeriods?: readonly FriendlyPeriod[];
  /** The low-credit warning stages the grant carried, [stage1Wh, stage2Wh]. */
  readonly warnAtWh?: readonly [number, number];
}

export interface NewGrant {
  readonly meterId: string;
  readonly limitWh: number;
  readonly registerWh: number;
  readonly commandId: string;
  readonly gatewayId: string;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  readonly friendlyPeriods?: readonly FriendlyPeriod[];
  readonly warnAtWh?: readonly [number, number];
}

export interface TopUpNotice {
  readonly noticeId: number;
  readonly householdId: string;
  readonly postingId: number;
}

/**
 * The registry's operations, described once. The SQLite engine implements them synchronously (better-sqlite3);
 * the cloud uses them through `Registry`, the same operations each returning a Promise, which the PostgreSQL engine
 * (postgres-registry.ts) implements too — so both run one contract suite (registry.contract.ts).
 */
export interface RegistryOperations extends LandMethods {
  addVillage(input: VillageInput): void;
  addHousehold(input: HouseholdInput): Household;
  getHousehold(householdId: string): Household | undefined;
  addGateway(input: GatewayInput): void;
  setGatewayEnabled(gatewayId: string, enabled: boolean): void;
  setGatewaySecret(gatewayId: string, secretHash: string): void;
  /** Insert or replace a cloud client's role and secret hash. */
  putCloudClient(input: CloudClientInput): void;
  /** Publish a tariff version; the schedule with it must still pass tariffScheduleSchema. Versions are immutable. */
  addTariff(tariff: Tariff): void;
  tariffSchedule(tariffId: string): Tariff[];
  addMeter(input: MeterInput): Meter;
  getMeter(meterId: string): Meter | undefined;
  metersOfHousehold(householdId: string): Meter[];
  lastGrant(meterId: string): GrantRecord | undefined;
  /**
   * The highest limit the gateway may be enforcing for the meter: the last grant it confirmed done and every grant
   * sent after it (any of them may have arrived). Undefined when no grant was ever sent.
   */
  highestLimitInForceWh(meterId: string): number | undefined;
  /**
   * Allocates the next grant_seq for the meter and stores the grant, in one transaction (serialised per meter, so
   * concurrent callers get distinct consecutive seqs). Refuses an unknown meter (UNKNOWN) and a reused command id
   * (EXISTS).
   */
  recordGrant(grant: NewGrant): GrantRecord;
  /** Returns the grant the ack answers, or undefined when the command id is not a grant's. */
  recordCommandAck(commandId: string, status: string, reason: string | undefined, atMs: number): GrantRecord | undefined;
  noteTopUp(householdId: string, postingId: number, atMs: number): void;
  topUpNoticesAfter(noticeId: number): TopUpNotice[];
  recordUplink(gatewayId: string, kind: string, seq: number, json: unknown, atMs: number): void;
  setGatewayStatus(gatewayId: string, state: string, at: string | undefined, reason: string | undefined, atMs: number): void;
  gatewayStatus(gatewayId: string): { state: string; at?: string } | undefined;
  countUplinks(gatewayId: string, kind: string): number;
  /** The broker's view: every gateway (enabled or not) and every registered cloud client. */
  snapshot(): RegistrySnapshot;
  close(): void;
}

/** Each operation of T returning a Promise of what it returned. */
export type Promised<T> = { [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : T[K] };

export type RegistryKind = "sqlite" | "postgres";

/** The registry port the cloud uses, on either engine. */
export type Registry = Promised<RegistryOperations> & {
  readonly kind: RegistryKind;
  /** Where: the SQLite path, or the PostgreSQL URL without its password. */
  readonly target: string;
  /**
   * Runs `work` while no other holder of this household's lock runs, in this process or (PostgreSQL) any worker:
   * grant sizing and refund checks read the balance and the grants in force, then write (household-lock.ts).
   */
  withHouseholdLock<T>(householdId: string, work: () => Promise<T>): Promise<T>;
};

/** The SQLite registry behind the port: each synchronous operation answered as an already settled Promise; a throw
 * becomes a rejection, so callers see one error path on both engines. */
function promised(ops: RegistryOperations, target: string): Registry {
  // One process owns a SQLite file's money decisions (a second process, the CLI, only records top-ups and notices).
  const port: Record<string, unknown> = { kind: "sqlite", target, withHouseholdLock: inProcessHouseholdLock() };
  for (const [name, value] of Object.entries(ops)) {
    if (typeof value !== "function") {
      port[name] = value;
      continue;
    }
    const operation = value as (...a: unknown[]) => unknown;
    // Run now, as the synchronous call did (callers may rely on the write having happened before they await).
    port[name] = (...args: unknown[]): Promise<unknown> => {
      try {
        return Promise.resolve(operation(...args));
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    };
  }
  return port as unknown as Registry;
}

export interface RegistryOptions {
  readonly path: string;
  readonly now?: () => number;
  readonly busyTimeoutMs?: number;
}

/** A secret hash in secrets.ts's encoding, never a plaintext secret. */
export function checkSecretHash(secretHash: string): void {
  try {
    parseSecretHash(secretHash);
  } catch (error) {
    throw new RegistryError(C.INVALID, `secretHash: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** A registry_meters row as both engines read it (SQL names, integers as numbers, JSON as text). */
export interface MeterRow {
  meter_id: string;
  gateway_id: string;
  household_id: string;
  tariff_id: string;
  initial_wh: number | null;
  reconnect: "automatic" | "manual";
  unit_id: number | null;
  profile_id: string | null;
  relay_json: string | null;
}
/** A registry_grants row as both engines read it. */
export interface GrantRow {
  meter_id: string;
  grant_seq: number;
  limit_wh: number;
  register_wh: number;
  command_id: string;
  gateway_id: string;
  issued_at_ms: number;
  expires_at_ms: number;
  ack_status: string | null;
  ack_reason: string | null;
  friendly_json: string | null;
  warn_json: string | null;
}

export function toMeter(r: MeterRow): Meter {
  return {
    meterId: r.meter_id,
    gatewayId: r.gateway_id,
    householdId: r.household_id,
    tariffId: r.tariff_id,
    reconnect: r.reconnect,
    ...(r.initial_wh === null ? {} : { initialWh: r.initial_wh }),
    ...(r.unit_id === null ? {} : { unitId: r.unit_id }),
    ...(r.profile_id === null ? {} : { profileId: r.profile_id }),
    ...(r.relay_json === null ? {} : { relay: relayBindingSchema.parse(JSON.parse(r.relay_json)) }),
  };
}

export const METER_COLUMNS = "meter_id, gateway_id, household_id, tariff_id, initial_wh, reconnect, unit_id, profile_id, relay_json";

export function toGrant(r: GrantRow): GrantRecord {
  return {
    meterId: r.meter_id,
    grantSeq: r.grant_seq,
    limitWh: r.limit_wh,
    registerWh: r.register_wh,
    commandId: r.command_id,
    gatewayId: r.gateway_id,
    issuedAtMs: r.issued_at_ms,
    expiresAtMs: r.expires_at_ms,
    ...(r.ack_status === null ? {} : { ackStatus: r.ack_status }),
    ...(r.ack_reason === null ? {} : { ackReason: r.ack_reason }),
    ...(r.friendly_json === null ? {} : { friendlyPeriods: z.array(friendlyPeriodSchema).parse(JSON.parse(r.friendly_json)) }),
    ...(r.warn_json === null ? {} : { warnAtWh: warnAtWhSchema.parse(JSON.parse(r.warn_json)) }),
  };
}

export interface TariffRow {
  tariff_id: string;
  version: number;
  effective_from_ms: number;
  prices_json: string;
}

/** A stored tariff version, checked again on the way out: a hand-edited row is refused, not charged at. */
export function toTariff(r: TariffRow): Tariff {
  return parse(tariffSchema, { tariffId: r.tariff_id, version: r.version, effectiveFrom: r.effective_from_ms, prices: JSON.parse(r.prices_json) as unknown }, `stored tariff ${r.tariff_id}@v${r.version}`);
}

/** The tariff version `t` may join `schedule` (what is stored for its tariff id), or REGISTRY_INVALID_INPUT. */
export function checkTariffJoins(schedule: readonly Tariff[], t: Tariff): void {
  parse(tariffScheduleSchema, [...schedule, t], `tariff schedule ${t.tariffId} with v${t.version}`);
}

export type CheckedGrant = z.output<typeof newGrantSchema>;

/** The grant's optional parts as stored: no friendly periods (absent or empty) and no stages are NULL. */
export function grantJsonColumns(g: CheckedGrant): { friendlyJson: string | null; warnJson: string | null } {
  return {
    friendlyJson: g.friendlyPeriods === undefined || g.friendlyPeriods.length === 0 ? null : JSON.stringify(g.friendlyPeriods),
    warnJson: g.warnAtWh === undefined ? null : JSON.stringify(g.warnAtWh),
  };
}

/** What recordGrant answers: the grant as it will read back from lastGrant. */
export function grantRecordOf(g: CheckedGrant, grantSeq: number): GrantRecord {
  const { friendlyPeriods, warnAtWh, ...rest } = g;
  return {
    ...rest,
    grantSeq,
    ...(friendlyPeriods === undefined || friendlyPeriods.length === 0 ? {} : { friendlyPeriods }),
    ...(warnAtWh === undefined ? {} : { warnAtWh }),
  };
}

export const GRANT_COLUMNS = "meter_id, grant_seq, limit_wh, register_wh, command_id, gateway_id, issued_at_ms, expires_at_ms, ack_status, ack_reason, friendly_json, warn_json";

/** An ack is final unless it is "accepted": a late "accepted" never overwrites "done", "rejected" or "failed". */
export function isFinalAck(status: string): boolean {
  return status !== "accepted";
}

export function openRegistry(options: RegistryOptions): Registry {
  return promised(openSqliteRegistryOperations(options), options.path);
}

/** The SQLite engine's synchronous operations (tests of SQLite-only behaviour, and the port above). */
export function openSqliteRegistryOperations(options: RegistryOptions): RegistryOperations {
  const now = options.now ?? Date.now;
  const db = openDurableDatabase(options.path, options.busyTimeoutMs ?? 10_000, (d) => migrateRegistry(d, now()));

  const q = {
    household: db.prepare<[string], { household_id: string; village_id: string; name: string; overdraft_fen: number }>(
      "SELECT household_id, village_id, name, overdraft_fen FROM registry_households WHERE household_id = ?",
    ),
    village: db.prepare<[string], { village_id: string }>("SELECT village_id FROM registry_villages WHERE village_id = ?"),
    gateway: db.prepare<[string], { gateway_id: string }>("SELECT gateway_id FROM registry_gateways WHERE gateway_id = ?"),
    gateways: db.prepare<[], { gateway_id: string; secret_hash: string; enabled: number }>("SELECT gateway_id, secret_hash, enabled FROM registry_gateways"),
    cloudClients: db.prepare<[], { username: string; role: CloudRole; secret_hash: string }>("SELECT username, role, secret_hash FROM registry_cloud_clients"),
    tariffs: db.prepare<[string], TariffRow>(
      "SELECT tariff_id, version, effective_from_ms, prices_json FROM registry_tariffs WHERE tariff_id = ? ORDER BY version",
    ),
    meter: db.prepare<[string], MeterRow>(`SELECT ${METER_COLUMNS} FROM registry_meters WHERE meter_id = ?`),
    metersOf: db.prepare<[string], MeterRow>(
      `SELECT ${METER_COLUMNS} FROM registry_meters WHERE household_id = ? ORDER BY meter_id`,
    ),
    lastGrant: db.prepare<[string], GrantRow>(`SELECT ${GRANT_COLUMNS} FROM registry_grants WHERE meter_id = ? ORDER BY grant_seq DESC LIMIT 1`),
    grantByCommand: db.prepare<[string], GrantRow>(`SELECT ${GRANT_COLUMNS} FROM registry_grants WHERE command_id = ?`),
  };

  function requireRow(found: unknown, what: string): void {
    if (found === undefined) throw new RegistryError(C.UNKNOWN, `no ${what}`);
  }

  function insert(sql: string, params: unknown[], what: string): void {
    try {
      db.prepare(sql).run(...params);
    } catch (error) {
      if (isUniqueViolation(error)) throw new RegistryError(C.EXISTS, `${what} already exists`);
      throw error;
    }
  }

  function schedule(tariffId: string): Tariff[] {
    return q.tariffs.all(tariffId).map(toTariff);
  }

  const recordGrantTx = db.transaction((g: CheckedGrant): GrantRecord => {
    requireRow(q.meter.get(g.meterId), `meter ${g.meterId}`);
    const grantSeq = (q.lastGrant.get(g.meterId)?.grant_seq ?? 0) + 1;
    const { friendlyJson, warnJson } = grantJsonColumns(g);
    insert(
      "INSERT INTO registry_grants (meter_id, grant_seq, limit_wh, register_wh, command_id, gateway_id, issued_at_ms, expires_at_ms, friendly_json, warn_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      [g.meterId, grantSeq, g.limitWh, g.registerWh, g.commandId, g.gatewayId, g.issuedAtMs, g.expiresAtMs, friendlyJson, warnJson],
      `a grant with command id ${g.commandId}`,
    );
    return grantRecordOf(g, grantSeq);
  });

  return {
    ...landMethods(db, now),
    addVillage(input) {
      const v = parse(villageInputSchema, input, "village");
      insert("INSERT INTO registry_villages (village_id, name, created_at_ms) VALUES (?, ?, ?)", [v.villageId, v.name, now()], `village ${v.villageId}`);
    },
    addHousehold(input) {
      const h = parse(householdInputSchema, input, "household");
      requireRow(q.village.get(h.villageId), `village ${h.villageId}`);
      insert(
        "INSERT INTO registry_households (household_id, village_id, name, overdraft_fen, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        [h.householdId, h.villageId, h.name, h.overdraftFen, now()],
        `household ${h.householdId}`,
      );
      return h;
    },
    getHousehold(householdId) {
      const r = q.household.get(householdId);
      return r === undefined ? undefined : { householdId: r.household_id, villageId: r.village_id, name: r.name, overdraftFen: r.overdraft_fen };
    },
    addGateway(input) {
      const g = parse(gatewayInputSchema, input, "gateway");
      checkSecretHash(g.secretHash);
      if (g.villageId !== undefined) requireRow(q.village.get(g.villageId), `village ${g.villageId}`);
      insert(
        "INSERT INTO registry_gateways (gateway_id, village_id, secret_hash, enabled, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        [g.gatewayId, g.villageId ?? null, g.secretHash, g.enabled ? 1 : 0, now()],
        `gateway ${g.gatewayId}`,
      );
    },
    setGatewayEnabled(gatewayId, enabled) {
      const changes = db.prepare("UPDATE registry_gateways SET enabled = ? WHERE gateway_id = ?").run(enabled ? 1 : 0, gatewayId).changes;
      if (changes === 0) throw new RegistryError(C.UNKNOWN, `no gateway ${gatewayId}`);
    },
    setGatewaySecret(gatewayId, secretHash) {
      checkSecretHash(secretHash);
      const changes = db.prepare("UPDATE registry_gateways SET secret_hash = ? WHERE gateway_id = ?").run(secretHash, gatewayId).changes;
      if (changes === 0) throw new RegistryError(C.UNKNOWN, `no gateway ${gatewayId}`);
    },
    putCloudClient(input) {
      const c = parse(cloudClientInputSchema, input, "cloud client");
      checkSecretHash(c.secretHash);
      db.prepare(
        `INSERT INTO registry_cloud_clients (username, role, secret_hash, created_at_ms) VALUES (?, ?, ?, ?)
         ON CONFLICT (username) DO UPDATE SET role = excluded.role, secret_hash = excluded.secret_hash`,
      ).run(c.username, c.role, c.secretHash, now());
    },
    addTariff(tariff) {
      const t = parse(tariffSchema, tariff, "tariff");
      checkTariffJoins(schedule(t.tariffId), t);
      insert(
        "INSERT INTO registry_tariffs (tariff_id, version, effective_from_ms, prices_json, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        [t.tariffId, t.version, t.effectiveFrom, JSON.stringify(t.prices), now()],
        `tariff ${t.tariffId}@v${t.version}`,
      );
    },
    tariffSchedule: schedule,
    addMeter(input) {
      const m = parse(meterInputSchema, input, "meter");
      requireRow(q.gateway.get(m.gatewayId), `gateway ${m.gatewayId}`);
      requireRow(q.household.get(m.householdId), `household ${m.householdId}`);
      if (schedule(m.tariffId).length === 0) throw new RegistryError(C.UNKNOWN, `no tariff ${m.tariffId}`);
      insert(
        "INSERT INTO registry_meters (meter_id, gateway_id, household_id, tariff_id, initial_wh, reconnect, unit_id, profile_id, relay_json, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [m.meterId, m.gatewayId, m.householdId, m.tariffId, m.initialWh ?? null, m.reconnect, m.unitId ?? null, m.profileId ?? null, m.relay === undefined ? null : JSON.stringify(m.relay), now()],
        `meter ${m.meterId}`,
      );
      const stored = q.meter.get(m.meterId);
      if (stored === undefined) throw new RegistryError(C.UNKNOWN, `meter ${m.meterId} vanished after insert`);
      return toMeter(stored);
    },
    getMeter(meterId) {
      const r = q.meter.get(meterId);
      return r === undefined ? undefined : toMeter(r);
    },
    metersOfHousehold: (householdId) => q.metersOf.all(householdId).map(toMeter),
    lastGrant(meterId) {
      const r = q.lastGrant.get(meterId);
      return r === undefined ? undefined : toGrant(r);
    },
    recordGrant: (grant) => recordGrantTx.immediate(parse(newGrantSchema, grant, "grant")),
    highestLimitInForceWh(meterId) {
      const row = db
        .prepare<[string, string], { limit_wh: number | null }>(
          `SELECT MAX(limit_wh) AS limit_wh FROM registry_grants WHERE meter_id = ? AND grant_seq >=
             (SELECT COALESCE(MAX(grant_seq), 0) FROM registry_grants WHERE meter_id = ? AND ack_status = 'done')`,
        )
        .get(meterId, meterId);
      return row?.limit_wh ?? undefined;
    },
    recordCommandAck(commandId, status, reason, atMs) {
      const ack = parse(commandAckInputSchema, { commandId, status, ...(reason === undefined ? {} : { reason }), atMs }, "command ack");
      const row = q.grantByCommand.get(ack.commandId);
      if (row === undefined) return undefined;
      db.prepare(
        `UPDATE registry_grants SET ack_status = ?, ack_reason = ?, acked_at_ms = ?
          WHERE command_id = ? AND (? OR ack_status IS NULL OR ack_status = 'accepted')`,
      ).run(ack.status, ack.reason ?? null, ack.atMs, ack.commandId, isFinalAck(ack.status) ? 1 : 0);
      return toGrant(q.grantByCommand.get(ack.commandId) ?? row);
    },
    noteTopUp(householdId, postingId, atMs) {
      const n = parse(topUpNoticeInputSchema, { householdId, postingId, atMs }, "top-up notice");
      db.prepare("INSERT OR IGNORE INTO registry_topup_notices (household_id, posting_id, at_ms) VALUES (?, ?, ?)").run(n.householdId, n.postingId, n.atMs);
    },
    topUpNoticesAfter(noticeId) {
      return db
        .prepare<[number], { notice_id: number; household_id: string; posting_id: number }>(
          "SELECT notice_id, household_id, posting_id FROM registry_topup_notices WHERE notice_id > ? ORDER BY notice_id",
        )
        .all(parse(noticeCursorSchema, noticeId, "notice cursor"))
        .map((r) => ({ noticeId: r.notice_id, householdId: r.household_id, postingId: r.posting_id }));
    },
    recordUplink(gatewayId, kind, seq, json, atMs) {
      const u = parse(uplinkInputSchema, { gatewayId, kind, seq, atMs }, "uplink record");
      db.prepare("INSERT OR IGNORE INTO uplink_records (gateway_id, kind, seq, received_at_ms, json) VALUES (?, ?, ?, ?, ?)").run(u.gatewayId, u.kind, u.seq, u.atMs, JSON.stringify(json));
    },
    setGatewayStatus(gatewayId, state, at, reason, atMs) {
      parse(gatewayStatusInputSchema, { gatewayId, state, ...(at === undefined ? {} : { at }), ...(reason === undefined ? {} : { reason }), atMs }, "gateway status");
      db.prepare(
        `INSERT INTO gateway_status (gateway_id, state, at, reason, received_at_ms) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (gateway_id) DO UPDATE SET state = excluded.state, at = excluded.at, reason = excluded.reason, received_at_ms = excluded.received_at_ms`,
      ).run(gatewayId, state, at ?? null, reason ?? null, atMs);
    },
    gatewayStatus(gatewayId) {
      const r = db.prepare<[string], { state: string; at: string | null }>("SELECT state, at FROM gateway_status WHERE gateway_id = ?").get(gatewayId);
      return r === undefined ? undefined : r.at === null ? { state: r.state } : { state: r.state, at: r.at };
    },
    countUplinks(gatewayId, kind) {
      return db.prepare<[string, string], { n: number }>("SELECT COUNT(*) AS n FROM uplink_records WHERE gateway_id = ? AND kind = ?").get(gatewayId, kind)?.n ?? 0;
    },
    snapshot() {
      const gateways = new Map<string, GatewayRecord>(q.gateways.all().map((r) => [r.gateway_id, { secretHash: r.secret_hash, enabled: r.enabled === 1 }]));
      const cloudClients = new Map<string, CloudClientRecord>(q.cloudClients.all().map((r) => [r.username, { secretHash: r.secret_hash, role: r.role }]));
      return { gateways, cloudClients };
    },
    close() {
      if (db.open) db.close();
    },
  };
}
