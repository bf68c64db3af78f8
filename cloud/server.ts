// startCloud: the one-box cloud wired together (ARCHITECTURE.md §3, §5 "build the app in one file, listen in
// another": this file builds and starts; cli.ts parses arguments and handles signals). It runs
//   the broker (aedes, authn + ACL over a cached snapshot of the registry, refreshed every registryRefreshMs so
//     a gateway added or disabled by the CLI takes effect while serving),
//   the ingest — embedded: the broker hands it each gateway uplink and PUBACKs only once it is stored
//     (ingest/embedded.ts); external broker: an "ingest" cloud client on a shared subscription — with sinks: billing → prepaid charges and grants; telemetry → the
//     embedded telemetry store; birth / events / alarm → kept verbatim in uplink_records; status → gateway_status;
//     command acks → the grant they answer,
//   a "command" cloud client that publishes credit grants,
//   and a poller that re-grants households topped up by another process (the CLI) every topUpPollMs.
// The two internal cloud clients get fresh random secrets at every start, known only to this process.

import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import type { Logger } from "pino";
import { formatTopic } from "../protocols/mqtt/topics.js";
import { startBroker, type RunningBroker } from "./broker/broker.js";
import type { CloudClientRecord, RegistrySnapshot } from "./broker/policy.js";
import { hashSecret } from "./broker/secrets.js";
import { startEmbeddedIngest, type EmbeddedIngest } from "./ingest/embedded.js";
import { startIngest, type IngestSinks, type RunningIngest } from "./ingest/ingest.js";
import { startHttp, type HttpOptions, type RunningHttp } from "./http-server.js";
import { openLedger, type OpenedLedger } from "./ledger/store/open-ledger.js";
import { createPrepaidService, type PrepaidService } from "./prepaid/service.js";
import type { Registry } from "./registry/registry.js";
import { openRegistryFor } from "./registry/open-registry.js";
import { openMeterFlagStoreFor } from "./subsidy/meter-flags-open.js";
import { openTelemetryStore, type TelemetryConfig } from "./telemetry/open-store.js";
import { createAlertService, type AlertService } from "./alerts/service.js";
import { startWebhookWorker } from "./alerts/webhooks.js";
import type { TelemetryStore } from "./telemetry/sink.js";

export const INGEST_USERNAME = "cloud-ingest";
export const COMMAND_USERNAME = "cloud-command";

export interface CloudOptions {
  readonly dataDir: string;
  readonly mqtt: {
    readonly host: string;
    readonly port: number;
    readonly maxPacketBytes?: number;
    readonly maxConnectionsPerIpPerMinute?: number;
    /** Use an external broker (mosquitto, EMQX) instead of the embedded aedes: see ExternalBrokerOptions. */
    readonly external?: ExternalBrokerOptions;
  };
  readonly log: Logger;
  /** The HTTP API, web console and payment callbacks; not started when absent. */
  readonly http?: HttpOptions;
  /**
   * postgres://… (DATABASE_URL) puts the ledger, the registry (villages, households, plots, meters, tariffs, policies,
   * grants, top-up notices), users, sessions, API tokens, the audit log, payment orders and subsidy meter flags on
   * PostgreSQL, shared by every worker; otherwise they live in cloud.db. Subsidy statements (cloud.db), fire incidents
   * (alerts.db), telemetry and the ingest's dedupe window stay in this worker's files.
   */
  readonly databaseUrl?: string | undefined;
  /** Where telemetry goes; default the embedded SQLite store with its retention window. */
  readonly telemetry?: TelemetryConfig;
  readonly now?: () => number;
  readonly registryRefreshMs?: number;
  readonly topUpPollMs?: number;
  readonly commandTtlMs?: number;
  readonly cutReserveFen?: number;
}

/**
 * External-broker mode (ARCHITECTURE.md §3): no embedded broker is started; the ingest joins the MQTT 5 shared
 * subscription $share/<sharedGroup>/agri/v1/gw/+/up/# on `url`, so several cloud workers split the uplinks, and the
 * command client publishes there too. Authentication and topic ACLs are then the external broker's job; the user
 * needs read on agri/v1/gw/+/up/# and write on agri/v1/gw/+/down/#.
 */
export interface ExternalBrokerOptions {
  readonly url: string;
  readonly username: string;
  readonly password: string;
  readonly sharedGroup: string;
  /** This worker's stable id (its MQTT session survives a restart under it); default the username. */
  readonly workerId?: string;
}

export interface RunningCloud {
  readonly mqttPort: number;
  readonly mqttUrl: string;
  readonly registry: Registry;
  readonly ledger: OpenedLedger;
  readonly prepaid: PrepaidService;
  /** The HTTP side, when options.http was given. */
  readonly http: RunningHttp | undefined;
  /** The embedded broker; undefined in external-broker mode. */
  readonly broker: RunningBroker | undefined;
  /** Embedded: fed by the broker (handOffUplinks); external broker: an MQTT subscriber. */
  readonly ingest: RunningIngest | EmbeddedIngest;
  readonly telemetry: TelemetryStore;
  /** Fire incidents (issue #6): fed by the alarm and events sinks; alertsRoutes serves it over HTTP. */
  readonly alerts: AlertService;
  /** Re-read the registry now (after a change made in this process); resolves once the broker's snapshot has it. */
  refreshRegistry(): Promise<void>;
  stop(): Promise<void>;
}

export const cloudDbPath = (dataDir: string): string => join(dataDir, "cloud.db");

export async function startCloud(options: CloudOptions): Promise<RunningCloud> {
  const { log } = options;
  const now = options.now ?? Date.now;
  mkdirSync(options.dataDir, { recursive: true });
  const dbPath = cloudDbPath(options.dataDir);
  const cleanups: { name: string; run: () => Promise<void> | void }[] = [];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.splice(0).reverse()) {
      try {
        log.debug({ step: step.name }, "cloud: stopping");
        await step.run();
      } catch (error) {
        log.error({ err: error, step: step.name }, "cloud: error while stopping");
      }
    }
  };

  try {
    const ledger = await openLedger({ databaseUrl: options.databaseUrl, sqlitePath: dbPath, now });
    cleanups.push({ name: "ledger", run: () => ledger.close() });
    const registry = await openRegistryFor({ databaseUrl: options.databaseUrl, sqlitePath: dbPath, now });
    cleanups.push({ name: "registry", run: () => registry.close() });
    const telemetry = openTelemetryStore(options.telemetry ?? { kind: "sqlite" }, options.dataDir, now);
    cleanups.push({ name: "telemetry", run: () => telemetry.close() });
    // Fire incidents keep their own file (alerts/store.ts says why); the webhook worker delivers its outbox. Both stop
    // after the ingest. Meter flags (tamper, offline) go where the ledger goes: settlement on any worker reads them.
    const meterFlags = await openMeterFlagStoreFor({ databaseUrl: options.databaseUrl, sqlitePath: dbPath, now });
    cleanups.push({ name: "meter-flags", run: () => meterFlags.close() });
    const alerts = createAlertService({ path: join(options.dataDir, "alerts.db"), log: log.child({ part: "alerts" }), now });
    cleanups.push({ name: "alerts", run: () => alerts.stop() });
    const webhooks = startWebhookWorker({ service: alerts, log: log.child({ part: "webhooks" }), now });
    cleanups.push({ name: "webhooks", run: () => webhooks.stop() });

    // The embedded ingest needs no MQTT login: the broker hands it the uplinks.
    const commandSecret = randomBytes(24).toString("base64url");
    const internalClients = new Map<string, CloudClientRecord>([[COMMAND_USERNAME, { role: "command", secretHash: await hashSecret(commandSecret) }]]);
    let snapshot: RegistrySnapshot = { gateways: new Map(), cloudClients: new Map() };
    // One read at a time; a refresh asked for while one runs is answered by a fresh read right after it, so a change
    // made just before the call is always in the snapshot it resolves with.
    let refreshing: Promise<void> | undefined;
    let again = false;
    const readSnapshot = async (): Promise<void> => {
      do {
        again = false;
        const fresh = await registry.snapshot();
        snapshot = { gateways: fresh.gateways, cloudClients: new Map([...fresh.cloudClients, ...internalClients]) };
      } while (again);
    };
    const refreshRegistry = (): Promise<void> => {
      if (refreshing !== undefined) {
        again = true;
        return refreshing;
      }
      refreshing = readSnapshot().finally(() => {
        refreshing = undefined;
      });
      return refreshing;
    };
    await refreshRegistry();
    const refreshTimer = setInterval(() => {
      // The last good snapshot stays in force when a read fails (PostgreSQL restarting, say).
      refreshRegistry().catch((error: unknown) => log.error({ err: error }, "cloud: registry refresh failed"));
    }, options.registryRefreshMs ?? 1000);
    cleanups.push({ name: "registry-refresh", run: () => clearInterval(refreshTimer) });

    const maxPacketBytes = options.mqtt.maxPacketBytes ?? 256 * 1024;
    const external = options.mqtt.external;
    const workerId = external?.workerId ?? external?.username;
    const broker = external !== undefined ? undefined : await startBroker({
      host: options.mqtt.host,
      port: options.mqtt.port,
      registry: () => snapshot,
      maxPacketBytes,
      maxPayloadBytes: maxPacketBytes - 1024,
      maxConnectionsPerIpPerMinute: options.mqtt.maxConnectionsPerIpPerMinute ?? 600,
      // Gateway uplinks go to the ingest before aedes acknowledges them; only then are they forwarded to subscribers.
      handOffUplinks: true,
      // A persistent session tapping the uplinks (an "ingest" user debugging) that goes away must not grow this heap
      // without bound, nor stall the gateways: past 10,000 unacknowledged messages its copies are dropped — the
      // ingest has stored them. Gateways' own sessions (their commands) are not bounded here.
      boundedSessions: { maxMessages: 10_000, appliesTo: (clientId) => !snapshot.gateways.has(clientId) },
      log: log.child({ part: "broker" }),
    });
    if (broker !== undefined) cleanups.push({ name: "broker", run: () => broker.close() });
    const localHost = options.mqtt.host === "0.0.0.0" || options.mqtt.host === "::" ? "127.0.0.1" : options.mqtt.host;
    const mqttUrl = external?.url ?? `mqtt://${localHost.includes(":") ? `[${localHost}]` : localHost}:${broker?.port ?? options.mqtt.port}`;

    const commandClient: MqttClient = await mqtt.connectAsync(mqttUrl, {
      username: external?.username ?? COMMAND_USERNAME,
      password: external?.password ?? commandSecret,
      clientId: external === undefined ? COMMAND_USERNAME : `${workerId}-command`,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 1000,
    });
    commandClient.on("error", (error) => log.warn({ err: error }, "cloud: command client error"));
    cleanups.push({ name: "command-client", run: () => commandClient.endAsync(true) });

    const prepaid = createPrepaidService({
      ledger,
      registry,
      log: log.child({ part: "prepaid" }),
      now,
      publishCommand: async (gatewayId, command) => {
        await commandClient.publishAsync(formatTopic("command", { gatewayId }), JSON.stringify(command), { qos: 1, retain: false });
      },
      ...(options.commandTtlMs === undefined ? {} : { commandTtlMs: options.commandTtlMs }),
      ...(options.cutReserveFen === undefined ? {} : { cutReserveFen: options.cutReserveFen }),
    });

    // Runs after the ingest has stopped (cleanups run in reverse): let a billing step in flight finish its writes.
    cleanups.push({ name: "prepaid", run: () => prepaid.idle() });

    const uplinkLog = log.child({ part: "uplinks" });
    const sinks: IngestSinks = {
      telemetry: (batch, gatewayId) => telemetry.write(gatewayId, batch.samples),
      billing: (readings, gatewayId) => prepaid.onBilling(readings, gatewayId),
      // Group commit: the billing messages of one ingest batch charged in one ledger transaction.
      billingBatch: (items) => prepaid.onBillingBatch(items),
      async events(batch, gatewayId) {
        // Incidents first: they are committed before the ingest acknowledges the message (invariant 6).
        alerts.onEvents(batch, gatewayId);
        // Tamper, offline and monitoring-gap events flag a meter's subsidy lines for review (issue #5).
        await meterFlags.recordMeterFlags(gatewayId, batch);
        await registry.recordUplink(gatewayId, "events", batch.seq, batch, now());
        for (const e of batch.events) uplinkLog.info({ gatewayId, seq: batch.seq, event: e }, `gateway event ${e.type}`);
      },
      async alarm(message, gatewayId) {
        alerts.onAlarm(message, gatewayId);
        await registry.recordUplink(gatewayId, "alarm", message.seq, message, now());
        uplinkLog.warn({ gatewayId, seq: message.seq, event: message.event }, `ALARM ${message.event.type}`);
      },
      async birth(birth, gatewayId) {
        await registry.recordUplink(gatewayId, "birth", birth.seq, birth, now());
        uplinkLog.info({ gatewayId, version: birth.version, devices: birth.devices.length }, "gateway birth");
      },
      async status(status, gatewayId) {
        await registry.setGatewayStatus(gatewayId, status.state, status.at, status.reason, now());
        uplinkLog.info({ gatewayId, state: status.state, reason: status.reason ?? null }, "gateway status");
      },
      async commandAck(ack, gatewayId) {
        await registry.recordUplink(gatewayId, "commandAck", ack.seq, ack, now());
        await prepaid.onCommandAck(ack, gatewayId);
      },
    };
    const dedupePath = join(options.dataDir, "ingest-dedupe.db");
    const ingestLog = log.child({ part: "ingest" });
    let ingest: RunningIngest | EmbeddedIngest;
    if (external !== undefined) {
      ingest = await startIngest({
        url: mqttUrl,
        username: external.username,
        password: external.password,
        clientId: `${workerId}-ingest`,
        sharedGroup: external.sharedGroup,
        sinks,
        dedupePath,
        log: ingestLog,
        maxPayloadBytes: maxPacketBytes,
      });
    } else if (broker !== undefined) {
      const embedded = startEmbeddedIngest({ sinks, dedupePath, log: ingestLog, maxPayloadBytes: maxPacketBytes });
      broker.attachUplinks((uplink, done) => embedded.handle(uplink, done));
      ingest = embedded;
    } else throw new Error("startCloud: neither an embedded nor an external broker");
    cleanups.push({ name: "ingest", run: () => ingest.stop() });

    // Top-ups recorded by another process (agri-cloud topup) re-grant here; in-process ones re-grant at once and
    // come round again here as a no-op.
    let lastNotice = 0;
    let polling = false;
    const pollTopUps = async (): Promise<void> => {
      if (polling) return;
      polling = true;
      try {
        const notices = await registry.topUpNoticesAfter(lastNotice);
        for (const householdId of new Set(notices.map((n) => n.householdId))) await prepaid.regrantHousehold(householdId, "top-up noticed");
        lastNotice = notices.at(-1)?.noticeId ?? lastNotice;
      } catch (error) {
        log.error({ err: error }, "cloud: top-up poll failed");
      } finally {
        polling = false;
      }
    };
    const topUpTimer = setInterval(() => void pollTopUps(), options.topUpPollMs ?? 1000);
    cleanups.push({ name: "top-up-poll", run: () => clearInterval(topUpTimer) });

    const http =
      options.http === undefined
        ? undefined
        : await startHttp(options.http, { dbPath, databaseUrl: options.databaseUrl, registry, ledger, prepaid, telemetry, alerts, meterFlags, refreshRegistry, log: log.child({ part: "http" }), now });
    // Stops first (cleanups run in reverse): no new HTTP request reaches a store that is closing.
    if (http !== undefined) cleanups.push({ name: "http", run: () => http.close() });

    log.info({ mqtt: mqttUrl, http: http?.url ?? null, ledger: ledger.kind, dataDir: options.dataDir }, "cloud: running");
    let stopping: Promise<void> | undefined;
    return {
      mqttPort: broker?.port ?? Number(new URL(mqttUrl).port),
      mqttUrl,
      registry,
      ledger,
      prepaid,
      http,
      broker,
      ingest,
      telemetry,
      alerts,
      refreshRegistry,
      stop() {
        stopping ??= (async () => {
          await cleanup();
          log.info({}, "cloud: stopped");
        })();
        return stopping;
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
