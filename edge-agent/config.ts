/**
 * The agent's settings: a YAML file, then environment overrides, validated once at start-up.
 * A bad or missing setting stops the agent with the setting's name.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import YAML from "yaml";
import { z } from "zod";
import { redactUrl } from "../src/protocol/redact.js";

const ProcessSpecSchema = z
  .strictObject({
    /** Restart through systemd: `systemctl restart <unit>`. */
    systemdUnit: z.string().min(1).optional(),
    /** Or a command the agent itself starts and supervises (argv, no shell). */
    command: z.array(z.string().min(1)).min(1).optional(),
    cwd: z.string().optional(),
    env: z.record(z.string(), z.string()).optional(),
    /** Restart the supervised command when it dies, with backoff. */
    restartOnExit: z.boolean().default(false),
  })
  .refine((p) => Boolean(p.systemdUnit) !== Boolean(p.command), {
    message: "give exactly one of systemdUnit or command",
  });

const ScriptSchema = z.strictObject({
  argv: z.array(z.string().min(1)).min(1),
  /** Run through /bin/sh -c (argv joined); off unless the entry says so. */
  shell: z.boolean().default(false),
  /** Whether a command's payload may append arguments. */
  allowArgs: z.boolean().default(false),
  cwd: z.string().optional(),
  timeoutSec: z.number().int().min(1).max(86_400).optional(),
});

const AwsIotSchema = z.strictObject({
  endpoint: z.string().min(1),
  port: z.number().int().default(8883),
  clientId: z.string().min(1),
  certPath: z.string().optional(),
  keyPath: z.string().optional(),
  caPath: z.string().optional(),
  /** Plain TCP with no TLS: only for tests against a local broker. */
  insecure: z.boolean().default(false),
  topics: z.array(z.string()).default(["devices/+/telemetry", "devices/+/status", "devices/+/log"]),
});

export const AgentConfigSchema = z.strictObject({
  serverUrl: z.string().url(),
  clientKey: z.string().regex(/^sk_cl_[0-9A-Z]{26}_[A-Za-z0-9_-]{32,}$/, "expected sk_<clientId>_<secret>"),
  dataDir: z.string().min(1),
  redisUrl: z.string().url().optional(),
  upstashRedisRestUrl: z.string().url().optional(),
  upstashRedisRestToken: z.string().min(1).optional(),
  mqttUrl: z.string().url().optional(),
  mqttClientId: z.string().min(1).optional(),
  logBatchSize: z.number().int().min(1).max(10_000).default(100),
  logFlushIntervalSecs: z.number().min(0.05).max(3600).default(5),
  logQueueLimit: z.number().int().min(100).default(100_000),
  logStreamMaxLen: z.number().int().min(100).default(100_000),
  healthCheckIntervalSecs: z.number().min(1).max(3600).default(30),
  heartbeatIntervalSecs: z.number().min(0.2).max(300).default(5),
  monitoredProcessNames: z.array(z.string().min(1)).default([]),
  metricsPort: z.number().int().min(0).max(65_535).default(9100),
  /** How long running commands get to finish on SIGTERM before they are failed as interrupted. */
  shutdownGraceSecs: z.number().min(0).max(600).default(10),
  maxOutputBytes: z
    .number()
    .int()
    .min(1024)
    .max(10 * 1024 * 1024)
    .default(256 * 1024),
  screenshotMaxBytes: z
    .number()
    .int()
    .min(64)
    .max(1_500_000)
    .default(700 * 1024),
  processes: z.record(z.string(), ProcessSpecSchema).default({}),
  scripts: z.record(z.string(), ScriptSchema).default({}),
  logFiles: z.record(z.string(), z.string()).default({}),
  printer: z.string().optional(),
  display: z.string().optional(),
  awsIot: AwsIotSchema.optional(),
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Environment names and the settings they override. */
const ENV: Record<string, { key: keyof AgentConfig; kind: "string" | "number" | "list" }> = {
  FLEETDECK_SERVER_URL: { key: "serverUrl", kind: "string" },
  FLEETDECK_CLIENT_KEY: { key: "clientKey", kind: "string" },
  FLEETDECK_DATA_DIR: { key: "dataDir", kind: "string" },
  REDIS_URL: { key: "redisUrl", kind: "string" },
  UPSTASH_REDIS_REST_URL: { key: "upstashRedisRestUrl", kind: "string" },
  UPSTASH_REDIS_REST_TOKEN: { key: "upstashRedisRestToken", kind: "string" },
  MQTT_URL: { key: "mqttUrl", kind: "string" },
  MQTT_CLIENT_ID: { key: "mqttClientId", kind: "string" },
  LOG_BATCH_SIZE: { key: "logBatchSize", kind: "number" },
  LOG_FLUSH_INTERVAL_SECS: { key: "logFlushIntervalSecs", kind: "number" },
  HEALTH_CHECK_INTERVAL_SECS: { key: "healthCheckIntervalSecs", kind: "number" },
  HEARTBEAT_INTERVAL_SECS: { key: "heartbeatIntervalSecs", kind: "number" },
  MONITORED_PROCESS_NAME: { key: "monitoredProcessNames", kind: "list" },
  METRICS_PORT: { key: "metricsPort", kind: "number" },
  SHUTDOWN_GRACE_SECS: { key: "shutdownGraceSecs", kind: "number" },
};

const SECRET_KEYS = new Set<string>(["clientKey", "upstashRedisRestToken"]);

export function defaultDataDir(): string {
  if (process.platform === "win32") return path.join(process.env.LOCALAPPDATA ?? os.homedir(), "fleetdeck");
  if (process.platform === "darwin")
    return path.join(os.homedir(), "Library", "Application Support", "fleetdeck");
  return path.join(process.env.XDG_STATE_HOME ?? path.join(os.homedir(), ".local", "state"), "fleetdeck");
}

export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv } = {}): AgentConfig {
  const env = options.env ?? process.env;
  let fromFile: Record<string, unknown> = {};
  if (options.file) {
    let text: string;
    try {
      text = readFileSync(options.file, "utf8");
    } catch (error) {
      throw new ConfigError(`cannot read config file ${options.file}: ${(error as Error).message}`);
    }
    try {
      fromFile = (YAML.parse(text) as Record<string, unknown> | null) ?? {};
    } catch (error) {
      throw new ConfigError(`config file ${options.file} is not valid YAML: ${(error as Error).message}`);
    }
    if (typeof fromFile !== "object" || Array.isArray(fromFile)) {
      throw new ConfigError(`config file ${options.file} must hold a mapping of settings`);
    }
  }
  const merged: Record<string, unknown> = { dataDir: defaultDataDir(), ...fromFile };
  for (const [name, { key, kind }] of Object.entries(ENV)) {
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    if (kind === "number") {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new ConfigError(`${name}: expected a number, got "${raw}"`);
      merged[key] = n;
    } else if (kind === "list") {
      merged[key] = raw
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
    } else {
      merged[key] = raw;
    }
  }
  const parsed = AgentConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const envName = (key: string) => Object.entries(ENV).find(([, v]) => v.key === key)?.[0];
    const problems = parsed.error.issues.map((i) => {
      const key = i.path.join(".");
      const hint = envName(String(i.path[0])) ? ` (or ${envName(String(i.path[0]))})` : "";
      return `${key}${hint}: ${i.message}`;
    });
    throw new ConfigError(`invalid settings:\n  ${problems.join("\n  ")}`);
  }
  return parsed.data;
}

/** The effective settings with every secret masked, for --print-config. */
export function maskedConfig(config: AgentConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (SECRET_KEYS.has(key) && typeof value === "string") out[key] = `${value.slice(0, 6)}…(masked)`;
    else if ((key === "redisUrl" || key === "mqttUrl") && typeof value === "string")
      out[key] = redactUrl(value);
    else out[key] = value;
  }
  return out;
}

/** The client id inside a client key. */
export function clientIdOf(clientKey: string): string {
  return clientKey.slice(3, 3 + 29);
}
