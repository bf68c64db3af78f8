// Choosing the telemetry store from configuration (ARCHITECTURE.md §3): the embedded SQLite store with its retention
// window by default; InfluxDB through its 1.x API (`influx`), or any server speaking the 2.x write API
// (`@influxdata/influxdb-client`: InfluxDB 2.x/3.x, VictoriaMetrics) when configured. All three sit behind the same
// batched, retrying, bounded buffer (buffered-store.ts).

import { join } from "node:path";
import { z } from "zod";
import { openInfluxV1TelemetryStore } from "./influx-v1-store.js";
import { openInfluxV2TelemetryStore } from "./influx-v2-store.js";
import type { TelemetryStore } from "./sink.js";
import { openSqliteTelemetryStore } from "./sqlite-store.js";

export const telemetryConfigSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("sqlite"), retentionDays: z.int().min(1).max(3650).optional() }),
  z.strictObject({ kind: z.literal("influx-v1"), url: z.url(), database: z.string().min(1), username: z.string().optional(), password: z.string().optional() }),
  z.strictObject({ kind: z.literal("influx-v2"), url: z.url(), token: z.string().optional(), org: z.string().optional(), bucket: z.string().optional() }),
]);
export type TelemetryConfig = z.input<typeof telemetryConfigSchema>;

const opt = <K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> => (value === undefined ? {} : ({ [key]: value } as Record<K, V>));

export function openTelemetryStore(config: TelemetryConfig, dataDir: string, now: () => number): TelemetryStore {
  const c = telemetryConfigSchema.parse(config);
  switch (c.kind) {
    case "sqlite":
      return openSqliteTelemetryStore({ path: join(dataDir, "telemetry.db"), now, ...opt("retentionMs", c.retentionDays === undefined ? undefined : c.retentionDays * 86_400_000) });
    case "influx-v1":
      return openInfluxV1TelemetryStore({ url: c.url, database: c.database, ...opt("username", c.username), ...opt("password", c.password) });
    case "influx-v2":
      return openInfluxV2TelemetryStore({ url: c.url, ...opt("token", c.token), ...opt("org", c.org), ...opt("bucket", c.bucket) });
  }
}

/**
 * The telemetry config from the environment, for `agri-cloud serve`: AGRI_TELEMETRY=influx-v1 with INFLUX_URL,
 * INFLUX_DATABASE (INFLUX_USERNAME, INFLUX_PASSWORD); AGRI_TELEMETRY=influx-v2 with INFLUX_URL (INFLUX_TOKEN,
 * INFLUX_ORG, INFLUX_BUCKET); anything else the embedded store (AGRI_TELEMETRY_RETENTION_DAYS).
 */
export function telemetryConfigFromEnv(env: Readonly<Record<string, string | undefined>>): TelemetryConfig {
  const kind = env.AGRI_TELEMETRY ?? "sqlite";
  const raw =
    kind === "influx-v1"
      ? { kind, url: env.INFLUX_URL, database: env.INFLUX_DATABASE, ...opt("username", env.INFLUX_USERNAME), ...opt("password", env.INFLUX_PASSWORD) }
      : kind === "influx-v2"
        ? { kind, url: env.INFLUX_URL, ...opt("token", env.INFLUX_TOKEN), ...opt("org", env.INFLUX_ORG), ...opt("bucket", env.INFLUX_BUCKET) }
        : { kind, ...opt("retentionDays", env.AGRI_TELEMETRY_RETENTION_DAYS === undefined ? undefined : Number(env.AGRI_TELEMETRY_RETENTION_DAYS)) };
  return telemetryConfigSchema.parse(raw);
}
