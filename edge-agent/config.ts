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
import { ChannelSchema } from "./alerts/channels.js";
import { AlertRuleSchema } from "./alerts/rules.js";

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

const CollectorSchema = (intervalSecs: number) =>
  z
    .strictObject({
      enabled: z.boolean().default(true),
      intervalSecs: z.number().min(0.5).max(3600).default(intervalSecs),
    })
    .default({ enabled: true, intervalSecs });

const CollectorsSchema = z
  .strictObject({
    cpu: CollectorSchema(5),
    memory: CollectorSchema(5),
    disk: CollectorSchema(15),
    network: CollectorSchema(5),
    processes: z
      .strictObject({
        enabled: z.boolean().default(true),
        intervalSecs: z.number().min(0.5).max(3600).default(15),
        /** Top N by CPU and top N by memory: at most 2N series per process metric. */
        topN: z.number().int().min(1).max(50).default(5),
      })
      .default({ enabled: true, intervalSecs: 15, topN: 5 }),
    /** Consecutive failures before a collector is reported unhealthy. */
    failureThreshold: z.number().int().min(1).max(100).default(3),
    /** "linux" reads /proc; "portable" asks systeminformation (default: linux on Linux). */
    platform: z.enum(["linux", "portable"]).optional(),
  })
  .default({
    cpu: { enabled: true, intervalSecs: 5 },
    memory: { enabled: true, intervalSecs: 5 },
    disk: { enabled: true, intervalSecs: 15 },
    network: { enabled: true, intervalSecs: 5 },
    processes: { enabled: true, intervalSecs: 15, topN: 5 },
    failureThreshold: 3,
  });

const SelfLimitsSchema = z
  .strictObject({
    /** Percent of one core the agent may use on average before it collects less often. */
    cpuPercent: z.number().min(0.1).max(400).default(2),
    rssMb: z.number().min(16).max(16_384).default(128),
    checkIntervalSecs: z.number().min(1).max(3600).default(10),
  })
  .default({ cpuPercent: 2, rssMb: 128, checkIntervalSecs: 10 });

export const AgentConfigSchema = z
  .strictObject({
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
    /** /metrics and /healthz; 0 turns the endpoint off (collectors and alert rules still run). */
    metricsPort: z.number().int().min(0).max(65_535).default(9100),
    metricsHost: z.string().min(1).default("0.0.0.0"),
    collectors: CollectorsSchema,
    selfLimits: SelfLimitsSchema,
    alertRules: z.array(AlertRuleSchema).default([]),
    alertChannels: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), ChannelSchema).default({}),
    alertEvaluationIntervalSecs: z.number().min(0.2).max(3600).default(5),
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
  })
  .superRefine((config, ctx) => {
    const names = new Set<string>();
    config.alertRules.forEach((rule, i) => {
      if (names.has(rule.name))
        ctx.addIssue({
          code: "custom",
          path: ["alertRules", i, "name"],
          message: `a second rule named "${rule.name}"`,
        });
      names.add(rule.name);
      for (const channel of rule.channels ?? []) {
        if (!(channel in config.alertChannels))
          ctx.addIssue({
            code: "custom",
            path: ["alertRules", i, "channels"],
            message: `no channel named "${channel}" in alertChannels`,
          });
      }
    });
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
  METRICS_HOST: { key: "metricsHost", kind: "string" },
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
    else if (key === "alertChannels") out[key] = maskChannels(value as AgentConfig["alertChannels"]);
    else if (key === "alertRules")
      out[key] = (value as AgentConfig["alertRules"]).map(({ expression: _parsed, ...rule }) => rule);
    else out[key] = value;
  }
  return out;
}

/** Channel passwords, signing secrets, Slack webhook URLs (the URL is the credential) and header values. */
function maskChannels(channels: AgentConfig["alertChannels"]): Record<string, unknown> {
  const mask = "(masked)";
  return Object.fromEntries(
    Object.entries(channels).map(([name, c]) => {
      if (c.type === "email") return [name, { ...c, ...(c.pass ? { pass: mask } : {}) }];
      if (c.type === "slack") return [name, { ...c, webhookUrl: `${new URL(c.webhookUrl).origin}/${mask}` }];
      return [
        name,
        {
          ...c,
          ...(c.secret ? { secret: mask } : {}),
          headers: Object.fromEntries(Object.keys(c.headers).map((h) => [h, mask])),
        },
      ];
    }),
  );
}

/** The client id inside a client key. */
export function clientIdOf(clientKey: string): string {
  return clientKey.slice(3, 3 + 29);
}
