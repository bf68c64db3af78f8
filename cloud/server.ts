// startCloud: the one-box cloud wired together (ARCHITECTURE.md §3, §5 "build the app in one file, listen in
// another": this file builds and starts; cli.ts parses arguments and handles signals). It runs
//   the broker (aedes, authn + ACL over a cached snapshot of the registry, refreshed every registryRefreshMs so
//     a gateway added or disabled by the CLI takes effect while serving),
//   the ingest (an "ingest" cloud client) with sinks: billing → prepaid charges and grants; telemetry → the
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
import { startIngest, type IngestSinks, type RunningIngest } from "./ingest/ingest.js";
import { openSqliteLedger, type SqliteLedger } from "./ledger/store/sqlite-ledger.js";
import { createPrepaidService, type PrepaidService } from "./prepaid/service.js";
import { openRegistry, type Registry } from "./registry/registry.js";
import { openSqliteTelemetryStore } from "./telemetry/sqlite-store.js";
import type { TelemetryStore } from "./telemetry/sink.js";

export const INGEST_USERNAME = "cloud-ingest";
export const COMMAND_USERNAME = "cloud-command";

export interface CloudOptions {
  readonly dataDir: string;
  readonly mqtt: { readonly host: string; readonly port: number; readonly maxPacketBytes?: number; readonly maxConnectionsPerIpPerMinute?: number };
  readonly log: Logger;
  readonly now?: () => number;
  readonly registryRefreshMs?: number;
  readonly topUpPollMs?: number;
  readonly commandTtlMs?: number;
  readonly cutReserveFen?: number;
}

export interface RunningCloud {
  readonly mqttPort: number;
  readonly mqttUrl: string;
  readonly registry: Registry;
  readonly ledger: SqliteLedger;
  readonly prepaid: PrepaidService;
  readonly broker: RunningBroker;
  readonly ingest: RunningIngest;
  readonly telemetry: TelemetryStore;
  /** Re-read the registry now (after a change made in this process). */
  refreshRegistry(): void;
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
    const ledger = openSqliteLedger({ path: dbPath, now });
    cleanups.push({ name: "ledger", run: () => ledger.close() });
    const registry = openRegistry({ path: dbPath, now });
    cleanups.push({ name: "registry", run: () => registry.close() });
    const telemetry = openSqliteTelemetryStore({ path: join(options.dataDir, "telemetry.db"), now });
    cleanups.push({ name: "telemetry", run: () => telemetry.close() });

    const ingestSecret = randomBytes(24).toString("base64url");
    const commandSecret = randomBytes(24).toString("base64url");
    const internalClients = new Map<string, CloudClientRecord>([
      [INGEST_USERNAME, { role: "ingest", secretHash: await hashSecret(ingestSecret) }],
      [COMMAND_USERNAME, { role: "command", secretHash: await hashSecret(commandSecret) }],
    ]);
    let snapshot: RegistrySnapshot = { gateways: new Map(), cloudClients: new Map() };
    const refreshRegistry = (): void => {
      const fresh = registry.snapshot();
      snapshot = { gateways: fresh.gateways, cloudClients: new Map([...fresh.cloudClients, ...internalClients]) };
    };
    refreshRegistry();
    const refreshTimer = setInterval(() => {
      try {
        refreshRegistry();
      } catch (error) {
        // The last good snapshot stays in force.
        log.error({ err: error }, "cloud: registry refresh failed");
      }
    }, options.registryRefreshMs ?? 1000);
    cleanups.push({ name: "registry-refresh", run: () => clearInterval(refreshTimer) });

    const maxPacketBytes = options.mqtt.maxPacketBytes ?? 256 * 1024;
    const broker = await startBroker({
      host: options.mqtt.host,
      port: options.mqtt.port,
      registry: () => snapshot,
      maxPacketBytes,
      maxPayloadBytes: maxPacketBytes - 1024,
      maxConnectionsPerIpPerMinute: options.mqtt.maxConnectionsPerIpPerMinute ?? 600,
      log: log.child({ part: "broker" }),
    });
    cleanups.push({ name: "broker", run: () => broker.close() });
    const localHost = options.mqtt.host === "0.0.0.0" || options.mqtt.host === "::" ? "127.0.0.1" : options.mqtt.host;
    const mqttUrl = `mqtt://${localHost.includes(":") ? `[${localHost}]` : localHost}:${broker.port}`;

    const commandClient: MqttClient = await mqtt.connectAsync(mqttUrl, {
      username: COMMAND_USERNAME,
      password: commandSecret,
      clientId: COMMAND_USERNAME,
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
      events(batch, gatewayId) {
        registry.recordUplink(gatewayId, "events", batch.seq, batch, now());
        for (const e of batch.events) uplinkLog.info({ gatewayId, seq: batch.seq, event: e }, `gateway event ${e.type}`);
      },
      alarm(message, gatewayId) {
        registry.recordUplink(gatewayId, "alarm", message.seq, message, now());
        uplinkLog.warn({ gatewayId, seq: message.seq, event: message.event }, `ALARM ${message.event.type}`);
      },
      birth(birth, gatewayId) {
        registry.recordUplink(gatewayId, "birth", birth.seq, birth, now());
        uplinkLog.info({ gatewayId, version: birth.version, devices: birth.devices.length }, "gateway birth");
      },
      status(status, gatewayId) {
        registry.setGatewayStatus(gatewayId, status.state, status.at, status.reason, now());
        uplinkLog.info({ gatewayId, state: status.state, reason: status.reason ?? null }, "gateway status");
      },
      async commandAck(ack, gatewayId) {
        registry.recordUplink(gatewayId, "commandAck", ack.seq, ack, now());
        await prepaid.onCommandAck(ack, gatewayId);
      },
    };
    const ingest = await startIngest({
      url: mqttUrl,
      username: INGEST_USERNAME,
      password: ingestSecret,
      clientId: INGEST_USERNAME,
      sinks,
      dedupePath: join(options.dataDir, "ingest-dedupe.db"),
      log: log.child({ part: "ingest" }),
      maxPayloadBytes: maxPacketBytes,
    });
    cleanups.push({ name: "ingest", run: () => ingest.stop() });

    // Top-ups recorded by another process (agri-cloud topup) re-grant here; in-process ones re-grant at once and
    // come round again here as a no-op.
    let lastNotice = 0;
    let polling = false;
    const pollTopUps = async (): Promise<void> => {
      if (polling) return;
      polling = true;
      try {
        const notices = registry.topUpNoticesAfter(lastNotice);
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

    log.info({ mqtt: mqttUrl, dataDir: options.dataDir }, "cloud: running");
    let stopping: Promise<void> | undefined;
    return {
      mqttPort: broker.port,
      mqttUrl,
      registry,
      ledger,
      prepaid,
      broker,
      ingest,
      telemetry,
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
