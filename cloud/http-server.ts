// The cloud's HTTP side wired together: the API core (buildApp: auth, users, audit, OpenAPI, problem+json), every
// domain plugin (provisioning, prepaid, telemetry, payments, subsidy settlement, fire alerts) and the web console,
// listening on one port. startCloud (server.ts) calls it with the stores it already opened, so the HTTP side and the
// MQTT side share one registry, one ledger and one alert service.

import { randomUUID } from "node:crypto";
import Database from "better-sqlite3";
import { openDurableDatabase } from "./sqlite.js";
import { openPostgresPool } from "./postgres.js";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { alertsRoutes } from "./alerts/routes.js";
import type { AlertService } from "./alerts/service.js";
import { buildApp, type RoutePlugin } from "./api/app.js";
import { paymentRoutes } from "./api/routes/payments.js";
import { prepaidRoutes } from "./api/routes/prepaid.js";
import { provisioningRoutes } from "./api/routes/provisioning.js";
import { telemetryRoutes } from "./api/routes/telemetry.js";
import type { AuthStore } from "./auth/auth-store.js";
import { openAuthAndAuditFor } from "./auth/open-auth.js";
import type { Ledger } from "./ledger/store/ledger.js";
import { createLocalProvider } from "./payments/local-provider.js";
import { openPaymentsStoreFor } from "./payments/open-payments-store.js";
import { createPaymentService } from "./payments/payment-service.js";
import type { PaymentProvider } from "./payments/provider.js";
import type { PrepaidService } from "./prepaid/service.js";
import type { Registry } from "./registry/registry.js";
import type { MeterFlagStore } from "./subsidy/meter-flags.js";
import { postgresUsageSource } from "./subsidy/postgres-usage-source.js";
import { subsidyRoutes } from "./subsidy/routes.js";
import { subsidyService, type SubsidyService } from "./subsidy/service.js";
import { openSubsidyStore } from "./subsidy/store.js";
import { sqliteUsageSource } from "./subsidy/usage-source.js";
import { registryLand } from "./subsidy/village-land.js";
import type { TelemetryStore } from "./telemetry/sink.js";
import { webRoutes } from "./web/web-routes.js";

export interface HttpOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Set behind TLS termination: session cookies get the Secure flag. */
  readonly secureCookies?: boolean;
  readonly trustProxy?: boolean;
  /** The local test payment provider's HMAC key (≥ 32 bytes); without it online payment orders are refused. */
  readonly localPaymentKey?: Buffer;
  /** This cloud's public base URL, for payment providers' callbacks; default the listening address. */
  readonly publicUrl?: string;
}

export interface HttpDeps {
  /** cloud.db: subsidy statements live there; the registry, users, audit log, payments and meter flags too unless databaseUrl. */
  readonly dbPath: string;
  /** A postgres:// URL puts users, sessions, API tokens, the audit log and payment orders there (as it does the ledger and registry). */
  readonly databaseUrl?: string | undefined;
  readonly registry: Registry;
  readonly ledger: Ledger;
  readonly prepaid: PrepaidService;
  readonly telemetry: TelemetryStore;
  readonly alerts: AlertService;
  readonly meterFlags: MeterFlagStore;
  readonly refreshRegistry: () => Promise<void>;
  readonly log: Logger;
  readonly now: () => number;
}

export interface RunningHttp {
  readonly url: string;
  readonly app: FastifyInstance;
  readonly auth: AuthStore;
  readonly subsidy: SubsidyService;
  close(): Promise<void>;
}

export async function startHttp(options: HttpOptions, deps: HttpDeps): Promise<RunningHttp> {
  const { registry, ledger, prepaid, telemetry, alerts, now } = deps;
  const closers: (() => Promise<void> | void)[] = [];
  const close = async (): Promise<void> => {
    for (const step of closers.splice(0).reverse()) await step();
  };
  try {
    const { auth, audit } = await openAuthAndAuditFor({
      databaseUrl: deps.databaseUrl,
      sqlitePath: deps.dbPath,
      now,
      villageOfHousehold: async (id) => (await registry.getHousehold(id))?.villageId,
    });
    closers.push(() => auth.close());
    const paymentsStore = await openPaymentsStoreFor({ databaseUrl: deps.databaseUrl, sqlitePath: deps.dbPath, now });
    closers.push(() => paymentsStore.close());

    // The settlement reads the meter-day usage the ledger writes with every charge: a read-only connection to the
    // ledger's SQLite file (WAL lets it read beside the writer), or a pool on the PostgreSQL ledger.
    let usage;
    if (deps.databaseUrl !== undefined && /^postgres(ql)?:\/\//i.test(deps.databaseUrl)) {
      const pool = openPostgresPool({ connectionString: deps.databaseUrl, poolSize: 2, applicationName: "agri-subsidy-usage" });
      closers.push(() => pool.end());
      usage = postgresUsageSource(pool);
    } else {
      const usageDb = new Database(deps.dbPath, { readonly: true, fileMustExist: true });
      closers.push(() => void usageDb.close());
      usage = sqliteUsageSource(usageDb);
    }
    const land = registryLand(registry);
    // Statements live in cloud.db on either engine (cloud/subsidy/README.md); their audit copies go to `audit`.
    const subsidyDb = openDurableDatabase(deps.dbPath, 10_000, () => undefined);
    closers.push(() => void subsidyDb.close());
    const subsidy = subsidyService({ store: openSubsidyStore(subsidyDb), land, usage, flags: deps.meterFlags, ledger, audit, now, newId: randomUUID });

    let publicUrl = options.publicUrl;
    const providers = new Map<string, PaymentProvider>();
    if (options.localPaymentKey !== undefined) providers.set("local", createLocalProvider({ key: options.localPaymentKey }));
    const payments = createPaymentService({
      store: paymentsStore,
      ledger,
      registry,
      providers,
      prepaid,
      audit,
      now,
      newOrderId: randomUUID,
      notifyUrl: (provider) => `${publicUrl ?? ""}/payments/${provider}/callback`,
    });

    const routes: RoutePlugin[] = [
      (app) => provisioningRoutes(app, { registry, ledger, audit, now, prepaid, onGatewaysChanged: deps.refreshRegistry }),
      (app) => prepaidRoutes(app, { registry, ledger, audit, prepaid, requests: paymentsStore, telemetry, now }),
      (app) => telemetryRoutes(app, { registry, telemetry }),
      (app) => paymentRoutes(app, { registry, payments }),
      (app) => subsidyRoutes(app, { service: subsidy, land }),
      (app) => alertsRoutes(app, { alerts }),
      (app) => webRoutes(app),
    ];
    const app = await buildApp({
      registry,
      ledger,
      prepaid,
      telemetry,
      auth,
      audit,
      log: deps.log,
      now,
      routes,
      options: { secureCookies: options.secureCookies ?? false, ...(options.trustProxy === undefined ? {} : { trustProxy: options.trustProxy }) },
    });
    closers.push(() => app.close());
    const url = await app.listen({ host: options.host, port: options.port });
    publicUrl ??= url;
    deps.log.info({ url }, "http: listening (API, /docs, /console/)");
    return { url, app, auth, subsidy, close };
  } catch (error) {
    await close();
    throw error;
  }
}
