#!/usr/bin/env node
// agri-cloud: a thin CLI over the cloud libraries. `serve` runs startCloud (server.ts) until SIGINT/SIGTERM; the other
// commands open the same stores `serve` does — cloud.db (WAL: safe next to a serving cloud, which notices gateways
// within a second and top-ups within a second), or PostgreSQL when DATABASE_URL says so. Exit codes: 0 ok, 1 failure, 2 bad input (usage, unknown or duplicate ids, bad amounts).

import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { pino } from "pino";
import { AgriError } from "../protocols/errors.js";
import { UnitError, fenToYuan, yuanPerKwhToPrice, yuanToFen } from "../protocols/units.js";
import type { AuditLog } from "./audit/audit-log.js";
import type { AuthStore } from "./auth/auth-store.js";
import { migrateAuthAndAuditFor, openAuthAndAuditFor } from "./auth/open-auth.js";
import { addUserFromCli } from "./auth/cli-add-user.js";
import { AuthError } from "./auth/errors.js";
import { hashSecret } from "./broker/secrets.js";
import { ledgerKind, migrateLedger, openLedger, redactUrl, type OpenedLedger } from "./ledger/store/open-ledger.js";
import { TOU_RATES, type TouRate } from "./ledger/tariff.js";
import { LedgerStoreError } from "./ledger/store/store-errors.js";
import { householdAccountId, openHouseholdAccount, openVillageAccounts } from "./prepaid/accounts.js";
import { PrepaidError, recordTopUp } from "./prepaid/top-up.js";
import { RegistryError } from "./registry/errors.js";
import { migratePaymentsFor } from "./payments/open-payments-store.js";
import { migrateRegistryFor, openRegistryFor } from "./registry/open-registry.js";
import { migrateMeterFlagsFor } from "./subsidy/meter-flags-open.js";
import type { RelayBinding, Registry } from "./registry/registry.js";
import { cloudDbPath, startCloud } from "./server.js";
import { telemetryConfigFromEnv } from "./telemetry/open-store.js";

const USAGE = `agri-cloud — the cloud service (broker, ingest, prepaid ledger)

usage: agri-cloud <command> [--data-dir DIR]   (default $AGRI_DATA_DIR/cloud or ./.agri-data/cloud)
  serve [--mqtt-host 127.0.0.1] [--mqtt-port 1883] [--http-host 127.0.0.1] [--http-port 8080]
        [--payment-key-file FILE] [--public-url URL]
        [--mqtt-external URL --shared-group NAME]   (consume from mosquitto/EMQX; AGRI_MQTT_USERNAME, AGRI_MQTT_PASSWORD)
      environment: DATABASE_URL=postgres://… puts the ledger, registry, users and audit log on PostgreSQL
        (every command below then works on it too; backup is for cloud.db only — use pg_dump there);
        AGRI_TELEMETRY=influx-v1 (INFLUX_URL, INFLUX_DATABASE[, INFLUX_USERNAME, INFLUX_PASSWORD]) or
        AGRI_TELEMETRY=influx-v2 (INFLUX_URL[, INFLUX_TOKEN, INFLUX_ORG, INFLUX_BUCKET]); default the embedded store
  migrate
  village add <villageId> --name NAME
  household add <householdId> --village ID --name NAME [--overdraft YUAN]
  gateway add <gatewayId> [--village ID] [--secret-file FILE]   (without a file a secret is generated and printed once)
  tariff add <tariffId> --version N (--price YUAN_PER_KWH | --tou RATE=HH:MM-HH:MM@YUAN,...) [--effective-from ISO8601]
             e.g. --tou valley=22:00-08:00@0.3021,flat=08:00-18:00@0.5283,peak=18:00-22:00@0.8452 (Asia/Shanghai)
  meter add <meterId> --gateway ID --household ID --tariff ID [--initial-wh WH] [--reconnect automatic|manual]
            [--unit 1..247] [--profile PROFILE_ID] [--relay meter-relay|contactor:DEVICE_ID:CHANNEL]
  topup <householdId> <yuan> --officer ID [--receipt ID]
  balance <householdId>
  user add <userId> --name NAME --role ROLE[,ROLE] [--village ID[,ID]] [--household ID] [--jurisdiction ID[,ID]]
           --password-file FILE [--reason TEXT]
             roles: farmer, village-officer, village-approver, police-dispatcher, admin
  backup <file>

Every change is written to the audit log as cli:<your OS user>, with --reason when given.
`;

class UsageError extends AgriError {
  constructor(message: string) {
    super("CLOUD_CLI_USAGE", false, message);
  }
}

const BAD_INPUT_CODES = new Set([
  "REGISTRY_INVALID_INPUT",
  "REGISTRY_UNKNOWN_ENTITY",
  "REGISTRY_ALREADY_EXISTS",
  "PREPAID_UNKNOWN_HOUSEHOLD",
  "PREPAID_TOP_UP_REFUSED",
  "AUTH_INVALID_INPUT",
  "AUTH_WEAK_PASSWORD",
  "AUTH_ALREADY_EXISTS",
]);

function isBadInput(error: unknown): boolean {
  return (
    error instanceof UsageError ||
    error instanceof UnitError ||
    ((error instanceof RegistryError || error instanceof PrepaidError || error instanceof AuthError) && BAD_INPUT_CODES.has(error.code))
  );
}

function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return "cli";
  }
}

const options = {
  "data-dir": { type: "string" },
  "mqtt-host": { type: "string" },
  "mqtt-port": { type: "string" },
  "http-host": { type: "string" },
  "http-port": { type: "string" },
  "payment-key-file": { type: "string" },
  "public-url": { type: "string" },
  "mqtt-external": { type: "string" },
  "shared-group": { type: "string" },
  name: { type: "string" },
  village: { type: "string" },
  overdraft: { type: "string" },
  "secret-file": { type: "string" },
  version: { type: "string" },
  price: { type: "string" },
  tou: { type: "string" },
  unit: { type: "string" },
  profile: { type: "string" },
  relay: { type: "string" },
  "effective-from": { type: "string" },
  gateway: { type: "string" },
  household: { type: "string" },
  tariff: { type: "string" },
  "initial-wh": { type: "string" },
  reconnect: { type: "string" },
  officer: { type: "string" },
  receipt: { type: "string" },
  role: { type: "string" },
  jurisdiction: { type: "string" },
  "password-file": { type: "string" },
  reason: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type Flags = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>["values"];

function required(flags: Flags, name: keyof Flags): string {
  const value = flags[name];
  if (typeof value !== "string" || value === "") throw new UsageError(`--${name} is required`);
  return value;
}

function positional(args: readonly string[], index: number, what: string): string {
  const value = args[index];
  if (value === undefined) throw new UsageError(`missing ${what}`);
  return value;
}

function integer(text: string, what: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new UsageError(`${what} must be an integer ${min}..${max}, got "${text}"`);
  return Number(text);
}

interface Stores {
  readonly registry: Registry;
  readonly ledger: OpenedLedger;
  readonly audit: AuditLog;
}

/** The stores `serve` would open, on the engine DATABASE_URL selects (cloud.db without it). */
async function openStores(dataDir: string): Promise<Stores & { close: () => Promise<void> }> {
  mkdirSync(dataDir, { recursive: true });
  const where = { databaseUrl: process.env.DATABASE_URL, sqlitePath: cloudDbPath(dataDir) };
  const opened: { close: () => Promise<void> | void }[] = [];
  const close = async (): Promise<void> => {
    for (const store of opened.splice(0).reverse()) await store.close();
  };
  try {
    const ledger = await openLedger({ ...where, poolSize: 2 });
    opened.push(ledger);
    const registry = await openRegistryFor({ ...where, poolSize: 2 });
    opened.push(registry);
    const { auth }: { auth: AuthStore } = await openAuthAndAuditFor({ ...where, poolSize: 2 });
    opened.push(auth);
    return { registry, ledger, audit: auth.audit, close };
  } catch (error) {
    await close();
    throw error;
  }
}

const out = (line: string): void => void process.stdout.write(`${line}\n`);

async function withStores(dataDir: string, body: (s: Stores) => Promise<void> | void): Promise<void> {
  const stores = await openStores(dataDir);
  try {
    await body(stores);
  } finally {
    await stores.close();
  }
}

async function serve(dataDir: string, flags: Flags): Promise<void> {
  const log = pino({ level: process.env.LOG_LEVEL ?? "info", base: { app: "agri-cloud" } });
  const port = integer(flags["mqtt-port"] ?? "1883", "--mqtt-port", 0, 65_535);
  const httpPort = integer(flags["http-port"] ?? "8080", "--http-port", 0, 65_535);
  const keyFile = flags["payment-key-file"];
  const localPaymentKey = keyFile === undefined ? undefined : readFileSync(resolve(keyFile));
  if (localPaymentKey !== undefined && localPaymentKey.length < 32) throw new UsageError(`--payment-key-file ${keyFile}: the key must be at least 32 bytes`);
  const externalUrl = flags["mqtt-external"];
  const external =
    externalUrl === undefined
      ? undefined
      : {
          url: externalUrl,
          username: process.env.AGRI_MQTT_USERNAME ?? "cloud-ingest",
          password: process.env.AGRI_MQTT_PASSWORD ?? "",
          sharedGroup: required(flags, "shared-group"),
        };
  const cloud = await startCloud({
    dataDir,
    mqtt: { host: flags["mqtt-host"] ?? "127.0.0.1", port, ...(external === undefined ? {} : { external }) },
    http: {
      host: flags["http-host"] ?? "127.0.0.1",
      port: httpPort,
      ...(localPaymentKey === undefined ? {} : { localPaymentKey }),
      ...(flags["public-url"] === undefined ? {} : { publicUrl: flags["public-url"] }),
    },
    databaseUrl: process.env.DATABASE_URL,
    telemetry: telemetryConfigFromEnv(process.env),
    log,
  });
  log.info({ mqtt: cloud.mqttUrl, http: cloud.http?.url, console: `${cloud.http?.url ?? ""}/console/`, docs: `${cloud.http?.url ?? ""}/docs` }, "agri-cloud: serving");
  await new Promise<void>((done) => {
    const stop = (signal: string): void => {
      log.info({ signal }, "agri-cloud: stopping");
      cloud.stop().then(done, (error: unknown) => {
        log.error({ err: error }, "agri-cloud: stop failed");
        process.exitCode = 1;
        done();
      });
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}

/** "meter-relay" or "contactor:<relay module device id>:<channel>". */
function relayBinding(text: string): RelayBinding {
  if (text === "meter-relay") return { kind: "meter-relay" };
  const m = /^contactor:([A-Za-z0-9._-]+):(\d+)$/.exec(text);
  if (m === null) throw new UsageError(`--relay must be meter-relay or contactor:DEVICE_ID:CHANNEL, got "${text}"`);
  return { kind: "contactor", deviceId: m[1] ?? "", channel: integer(m[2] ?? "", "--relay channel", 1, 64) };
}

/** "valley=22:00-08:00@0.3021,peak=…" → time-of-use prices; the tariff schema then checks cover, overlap and rates. */
function touPrices(text: string): { kind: "time-of-use"; periods: { rate: TouRate; from: string; to: string; priceCentiFenPerKwh: number }[] } {
  const periods = text.split(",").map((part) => {
    const m = /^\s*([a-z]+)=(\d\d:\d\d)-(\d\d:\d\d)@([0-9.]+)\s*$/.exec(part);
    if (m === null) throw new UsageError(`--tou: "${part}" is not RATE=HH:MM-HH:MM@YUAN_PER_KWH`);
    const rate = TOU_RATES.find((r) => r === m[1]);
    if (rate === undefined) throw new UsageError(`--tou: rate "${m[1] ?? ""}" is not one of ${TOU_RATES.join(", ")}`);
    return { rate, from: m[2] ?? "", to: m[3] ?? "", priceCentiFenPerKwh: yuanPerKwhToPrice(m[4] ?? "") };
  });
  return { kind: "time-of-use", periods };
}

/** One audit entry for a change made from the command line (after it succeeded: a refused change changed nothing). */
async function audited(audit: AuditLog, action: string, entityType: string, entityId: string, villageId: string | undefined, reason: string | undefined, after: unknown): Promise<void> {
  await audit.record({
    actor: cliActor(),
    action,
    entityType,
    entityId,
    atMs: Date.now(),
    after,
    ...(villageId === undefined ? {} : { villageId }),
    ...(reason === undefined ? {} : { reason }),
  });
}

function dataDirOf(argv: readonly string[]): string {
  const i = argv.indexOf("--data-dir");
  const given = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith("--data-dir="))?.slice("--data-dir=".length);
  return resolve(given ?? resolve(process.env.AGRI_DATA_DIR ?? ".agri-data", "cloud"));
}

async function run(argv: readonly string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values: flags, positionals: args } = parsed;
  if (flags.help === true || args.length === 0) {
    out(USAGE);
    if (flags.help !== true) process.exitCode = 2;
    return;
  }
  const dataDir = dataDirOf(argv);
  const command = `${args[0]}${args[0] === "village" || args[0] === "household" || args[0] === "gateway" || args[0] === "tariff" || args[0] === "meter" || args[0] === "user" ? ` ${args[1] ?? ""}` : ""}`;
  switch (command) {
    case "serve":
      return serve(dataDir, flags);
    case "migrate": {
      const where = { databaseUrl: process.env.DATABASE_URL, sqlitePath: cloudDbPath(dataDir) };
      mkdirSync(dataDir, { recursive: true });
      const m = await migrateLedger(where);
      const r = await migrateRegistryFor(where);
      const a = await migrateAuthAndAuditFor(where);
      const p = await migratePaymentsFor(where);
      const f = await migrateMeterFlagsFor(where);
      out(`migrated ${m.kind === "postgres" ? m.target : cloudDbPath(dataDir)}`);
      out(`  ledger (${m.kind}): schema ${m.fromVersion} → ${m.toVersion}`);
      out(`  registry (${r.kind}): schema ${r.fromVersion} → ${r.toVersion}`);
      out(`  users (${a.kind}): schema ${a.auth.fromVersion} → ${a.auth.toVersion}; audit log: schema ${a.audit.fromVersion} → ${a.audit.toVersion}`);
      out(`  payments (${p.kind}): schema ${p.fromVersion} → ${p.toVersion}`);
      out(`  meter flags (${f.kind}): schema ${f.fromVersion} → ${f.toVersion}`);
      return;
    }
    case "user add":
      return withStores(dataDir, async ({ registry }) => {
        const user = await addUserFromCli(
          { databaseUrl: process.env.DATABASE_URL, sqlitePath: cloudDbPath(dataDir) },
          registry,
          {
            userId: positional(args, 2, "<userId>"),
            name: required(flags, "name"),
            role: required(flags, "role"),
            village: flags.village,
            household: flags.household,
            jurisdiction: flags.jurisdiction,
            passwordFile: required(flags, "password-file"),
            reason: flags.reason,
          },
          (warning) => process.stderr.write(`warning: ${warning}\n`),
        );
        out(`user ${user.userId} added (${user.roles.join(", ")})`);
      });
    case "village add":
      return withStores(dataDir, async ({ registry, ledger, audit }) => {
        const villageId = positional(args, 2, "<villageId>");
        await registry.addVillage({ villageId, name: required(flags, "name") });
        await openVillageAccounts(ledger, villageId);
        await audited(audit, "village.create", "village", villageId, villageId, flags.reason, { name: flags.name });
        out(`village ${villageId} added`);
      });
    case "household add":
      return withStores(dataDir, async ({ registry, ledger, audit }) => {
        const householdId = positional(args, 2, "<householdId>");
        const household = await registry.addHousehold({
          householdId,
          villageId: required(flags, "village"),
          name: required(flags, "name"),
          overdraftFen: flags.overdraft === undefined ? 0 : yuanToFen(flags.overdraft),
        });
        await openHouseholdAccount(ledger, household.villageId, householdId);
        await audited(audit, "household.create", "household", householdId, household.villageId, flags.reason, household);
        out(`household ${householdId} added (overdraft ¥${fenToYuan(household.overdraftFen)})`);
      });
    case "gateway add":
      return withStores(dataDir, async ({ registry, audit }) => {
        const gatewayId = positional(args, 2, "<gatewayId>");
        const secretFile = flags["secret-file"];
        let secret: string;
        if (secretFile !== undefined) {
          const path = resolve(secretFile);
          if (!existsSync(path)) throw new UsageError(`--secret-file ${path}: no such file`);
          secret = readFileSync(path, "utf8").trim();
          if (secret.length < 8) throw new UsageError(`--secret-file ${path}: the secret must be at least 8 characters`);
        } else {
          secret = randomBytes(24).toString("base64url");
        }
        await registry.addGateway({ gatewayId, secretHash: await hashSecret(secret), ...(flags.village === undefined ? {} : { villageId: flags.village }) });
        await audited(audit, "gateway.create", "gateway", gatewayId, flags.village, flags.reason, { gatewayId, villageId: flags.village ?? null });
        out(`gateway ${gatewayId} added`);
        if (secretFile === undefined) out(`broker password (shown once; put it in the gateway's passwordFile): ${secret}`);
      });
    case "tariff add":
      return withStores(dataDir, async ({ registry, audit }) => {
        const tariffId = positional(args, 2, "<tariffId>");
        const effective = flags["effective-from"];
        const effectiveFrom = effective === undefined ? 0 : Date.parse(effective);
        if (Number.isNaN(effectiveFrom)) throw new UsageError(`--effective-from "${effective}" is not an ISO 8601 time`);
        const version = integer(required(flags, "version"), "--version", 1, 1_000_000);
        if ((flags.price === undefined) === (flags.tou === undefined)) throw new UsageError("give either --price (flat) or --tou (time-of-use)");
        const tariff = { tariffId, version, effectiveFrom, prices: flags.tou === undefined ? { kind: "flat" as const, priceCentiFenPerKwh: yuanPerKwhToPrice(required(flags, "price")) } : touPrices(flags.tou) };
        await registry.addTariff(tariff);
        await audited(audit, "tariff.publish", "tariff", `${tariffId}@v${version}`, undefined, flags.reason, tariff);
        out(`tariff ${tariffId}@v${version} added`);
      });
    case "meter add":
      return withStores(dataDir, async ({ registry, audit }) => {
        const meterId = positional(args, 2, "<meterId>");
        const reconnect = flags.reconnect ?? "automatic";
        if (reconnect !== "automatic" && reconnect !== "manual") throw new UsageError(`--reconnect must be automatic or manual, got "${reconnect}"`);
        const initial = flags["initial-wh"];
        const meter = await registry.addMeter({
          meterId,
          gatewayId: required(flags, "gateway"),
          householdId: required(flags, "household"),
          tariffId: required(flags, "tariff"),
          reconnect,
          ...(initial === undefined ? {} : { initialWh: integer(initial, "--initial-wh", 0, Number.MAX_SAFE_INTEGER) }),
          ...(flags.unit === undefined ? {} : { unitId: integer(flags.unit, "--unit", 1, 247) }),
          ...(flags.profile === undefined ? {} : { profileId: flags.profile }),
          ...(flags.relay === undefined ? {} : { relay: relayBinding(flags.relay) }),
        });
        await audited(audit, "meter.create", "meter", meterId, (await registry.getHousehold(meter.householdId))?.villageId, flags.reason, meter);
        out(`meter ${meterId} added`);
      });
    case "topup":
      return withStores(dataDir, async ({ registry, ledger, audit }) => {
        const householdId = positional(args, 1, "<householdId>");
        const amountFen = yuanToFen(positional(args, 2, "<yuan>"));
        const receiptId = flags.receipt ?? randomUUID();
        try {
          const officerId = required(flags, "officer");
          const atMs = Date.now();
          const villageId = (await registry.getHousehold(householdId))?.villageId;
          // The stored-credit cap of the village policy in force (the defaults where none was set).
          const maxBalanceFen = villageId === undefined ? undefined : (await registry.villagePolicyAt(villageId, atMs)).maxBalanceFen;
          // Under the household's lock: with PostgreSQL, a serving worker's grant sizing or refund check waits for it.
          const result = await registry.withHouseholdLock(householdId, () =>
            recordTopUp(ledger, registry, { householdId, amountFen, officerId, receiptId, atMs, ...(maxBalanceFen === undefined ? {} : { maxBalanceFen }) }),
          );
          if (!result.duplicate) {
            await audited(audit, "ledger.top-up", "household", householdId, (await registry.getHousehold(householdId))?.villageId, flags.reason ?? `cash receipt ${receiptId}`, {
              amountFen,
              receiptId,
              officerId,
              postingId: result.postingId,
            });
          }
          out(`${result.duplicate ? "already recorded" : "recorded"}: ¥${fenToYuan(amountFen)} for ${householdId}, receipt ${receiptId}; balance ¥${fenToYuan(result.balanceFen)}`);
        } catch (error) {
          if (error instanceof LedgerStoreError && error.code === "LEDGER_IDEMPOTENCY_CONFLICT") {
            throw new UsageError(`receipt ${receiptId} was already recorded for ${householdId} with other content; nothing posted`);
          }
          throw error;
        }
      });
    case "balance":
      return withStores(dataDir, async ({ registry, ledger }) => {
        const householdId = positional(args, 1, "<householdId>");
        const household = await registry.getHousehold(householdId);
        if (household === undefined) throw new UsageError(`no household ${householdId} in ${registry.target}`);
        await openHouseholdAccount(ledger, household.villageId, householdId);
        out(`${householdId}: ¥${fenToYuan(await ledger.balance(householdAccountId(householdId)))}`);
      });
    case "backup": {
      const target = resolve(positional(args, 1, "<file>"));
      if (ledgerKind(process.env.DATABASE_URL) === "postgres") {
        // The money is not in cloud.db then; a copy of it would look like a backup and restore nothing.
        throw new UsageError(`DATABASE_URL is set (${redactUrl(process.env.DATABASE_URL ?? "")}): the ledger, registry and users are in PostgreSQL; back them up with pg_dump (backup copies cloud.db only)`);
      }
      const source = cloudDbPath(dataDir);
      if (!existsSync(source)) throw new UsageError(`${source}: no cloud database to back up`);
      if (existsSync(target)) throw new UsageError(`${target} exists; refusing to overwrite a backup`);
      mkdirSync(dirname(target), { recursive: true });
      // SQLite's online backup API: a consistent copy while the cloud keeps writing (WAL).
      const db = new Database(source, { readonly: true });
      try {
        await db.backup(target);
      } finally {
        db.close();
      }
      out(`backed up ${source} to ${target}`);
      return;
    }
    default:
      throw new UsageError(`unknown command "${args.join(" ")}"\n\n${USAGE}`);
  }
}

run(process.argv.slice(2)).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof AgriError ? `${error.code}: ` : "";
  const url = process.env.DATABASE_URL;
  const database = ledgerKind(url) === "postgres" ? redactUrl(url ?? "") : cloudDbPath(dataDirOf(process.argv.slice(2)));
  const where = error instanceof UsageError || error instanceof UnitError ? "" : ` (database ${database})`;
  process.stderr.write(`agri-cloud: ${code}${message}${where}\n`);
  process.exitCode = isBadInput(error) ? 2 : 1;
});
