import { z } from "zod";
import { FleetdeckError } from "../src/protocol/errors.js";

/** The bindings and settings the Worker receives (wrangler.toml vars, secrets, Durable Objects). */
export interface Env {
  CLIENT_HUB: DurableObjectNamespace;
  FLEET_FEED: DurableObjectNamespace;
  LOG_LEVEL?: string;
  STALE_HOST_THRESHOLD_SECONDS?: string;
  READYZ_TIMEOUT_MS?: string;
  NEON_WS_PROXY?: string;
  DATABASE_URL?: string;
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
  QSTASH_URL?: string;
  QSTASH_TOKEN?: string;
  QSTASH_CURRENT_SIGNING_KEY?: string;
  QSTASH_NEXT_SIGNING_KEY?: string;
  ADMIN_TOKEN?: string;
  PUBLIC_URL?: string;
  CORS_ORIGINS?: string;
  MAX_BODY_BYTES?: string;
  RATE_LIMIT_PER_MINUTE?: string;
  RATE_LIMIT_IP_PER_MINUTE?: string;
  SSE_HEARTBEAT_MS?: string;
  OUTBOX_FLUSH_MS?: string;
  OUTBOX_MAX_CONCURRENT_DRAINS?: string;
  PRESENCE_KEY?: string;
  SUBSCRIPTION_RETRIES?: string;
}

const SettingsSchema = z.object({
  DATABASE_URL: z.string().min(1),
  UPSTASH_REDIS_REST_URL: z.string().url(),
  UPSTASH_REDIS_REST_TOKEN: z.string().min(1),
  NEON_WS_PROXY: z.string().default(""),
  READYZ_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(2000),
  STALE_HOST_THRESHOLD_SECONDS: z.coerce.number().int().min(1).max(3600).default(15),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** Comma-separated origins allowed by CORS; empty sends no CORS headers. */
  CORS_ORIGINS: z.string().default(""),
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(1_900_000).default(1_048_576),
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(600),
  RATE_LIMIT_IP_PER_MINUTE: z.coerce.number().int().min(1).default(1200),
  SSE_HEARTBEAT_MS: z.coerce.number().int().min(100).max(15_000).default(15_000),
  /** How long a hub gathers changes before draining them to Postgres in one transaction. */
  OUTBOX_FLUSH_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
  /** Hubs in one isolate drain through at most this many Postgres connections at a time. */
  OUTBOX_MAX_CONCURRENT_DRAINS: z.coerce.number().int().min(1).max(256).default(8),
  /** The Redis sorted set of hosts by last heartbeat, read by the cron sweep. */
  PRESENCE_KEY: z.string().min(1).default("fd:presence"),
  /** QStash retries per subscriber delivery before it is dead-lettered. */
  SUBSCRIPTION_RETRIES: z.coerce.number().int().min(0).max(5).default(3),
});
export type Settings = z.infer<typeof SettingsSchema>;

/**
 * Parse the settings once per isolate. A missing or bad setting is an error that names it;
 * it is never papered over with a default for a secret.
 */
let cached: { source: Env; settings: Settings } | undefined;
export function settingsOf(env: Env): Settings {
  if (cached?.source === env) return cached.settings;
  const parsed = SettingsSchema.safeParse(env);
  if (!parsed.success) {
    const names = [...new Set(parsed.error.issues.map((i) => i.path.join(".")))];
    throw new FleetdeckError("MISCONFIGURED", `missing or invalid setting: ${names.join(", ")}`, {
      details: parsed.error.issues.map((i) => ({ setting: i.path.join("."), problem: i.message })),
    });
  }
  cached = { source: env, settings: parsed.data };
  return parsed.data;
}
