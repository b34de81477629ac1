/**
 * Settings of the local cloud (`npm start`, `npm run db:migrate`), parsed once from the
 * environment. Every value has a default that works on a fresh machine with no accounts.
 */
import path from "node:path";
import { z } from "zod";

const port = (fallback: number) => z.coerce.number().int().min(1).max(65_535).default(fallback);

const LocalSettingsSchema = z.object({
  DATABASE_URL: z.string().url().optional(),
  REDIS_URL: z.string().url().default("redis://127.0.0.1:6379"),
  MQTT_URL: z.string().url().optional(),
  ADMIN_TOKEN: z.string().min(16).optional(),
  FLEETDECK_DATA_DIR: z.string().default(".fleetdeck"),
  FLEETDECK_PORT: port(8787),
  FLEETDECK_PG_PORT: port(5433),
  FLEETDECK_NEON_PROXY_PORT: port(4444),
  FLEETDECK_REDIS_REST_PORT: port(8079),
  FLEETDECK_QSTASH_PORT: port(8080),
  FLEETDECK_MQTT_PORT: port(1884),
  FLEETDECK_CRON_INTERVAL_SECS: z.coerce.number().int().min(1).default(60),
  /** Local-only credentials for the stand-ins; production values come from Upstash. */
  UPSTASH_REDIS_REST_TOKEN: z.string().min(8).default("fleetdeck-local-redis-token"),
  QSTASH_TOKEN: z.string().min(8).default("fleetdeck-local-qstash-token"),
  QSTASH_CURRENT_SIGNING_KEY: z.string().min(8).default("sig_fleetdeck_local_current_signing_key"),
  QSTASH_NEXT_SIGNING_KEY: z.string().min(8).default("sig_fleetdeck_local_next_signing_key"),
});

export interface LocalSettings {
  databaseUrl: string | undefined;
  redisUrl: string;
  mqttUrl: string | undefined;
  adminToken: string | undefined;
  dataDir: string;
  pgDataDir: string;
  workerPort: number;
  pgPort: number;
  neonProxyPort: number;
  redisRestPort: number;
  qstashPort: number;
  mqttPort: number;
  cronIntervalSecs: number;
  redisRestToken: string;
  qstashToken: string;
  qstashCurrentSigningKey: string;
  qstashNextSigningKey: string;
}

export class SettingsError extends Error {
  override readonly name = "SettingsError";
}

export function localSettings(env: NodeJS.ProcessEnv): LocalSettings {
  const parsed = LocalSettingsSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new SettingsError(`invalid setting ${problems}`);
  }
  const s = parsed.data;
  const dataDir = path.resolve(s.FLEETDECK_DATA_DIR);
  return {
    databaseUrl: s.DATABASE_URL,
    redisUrl: s.REDIS_URL,
    mqttUrl: s.MQTT_URL,
    adminToken: s.ADMIN_TOKEN,
    dataDir,
    pgDataDir: path.join(dataDir, "pgdata"),
    workerPort: s.FLEETDECK_PORT,
    pgPort: s.FLEETDECK_PG_PORT,
    neonProxyPort: s.FLEETDECK_NEON_PROXY_PORT,
    redisRestPort: s.FLEETDECK_REDIS_REST_PORT,
    qstashPort: s.FLEETDECK_QSTASH_PORT,
    mqttPort: s.FLEETDECK_MQTT_PORT,
    cronIntervalSecs: s.FLEETDECK_CRON_INTERVAL_SECS,
    redisRestToken: s.UPSTASH_REDIS_REST_TOKEN,
    qstashToken: s.QSTASH_TOKEN,
    qstashCurrentSigningKey: s.QSTASH_CURRENT_SIGNING_KEY,
    qstashNextSigningKey: s.QSTASH_NEXT_SIGNING_KEY,
  };
}
