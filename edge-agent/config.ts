/**
 * The agent's settings: a YAML file, then environment overrides, validated once at start-up.
 * A bad or missing setting stops the agent with the setting's name.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
// js-yaml rather than yaml: read once at start-up, and 0.35 MiB less resident in the built agent (bench/RESULTS.md).
import { CORE_SCHEMA, load as loadYaml } from "js-yaml";
import * as v from "valibot";
import { redactUrl } from "../src/protocol/redact.js";
import { ChannelSchema } from "./alerts/channels.js";
import { AlertRuleSchema } from "./alerts/rules.js";
import { int, num, pathTo, problemsOf, stringMap, text, url } from "./validate.js";

const ProcessSpecSchema = v.pipe(
  v.strictObject({
    /** Restart through systemd: `systemctl restart <unit>`. */
    systemdUnit: v.optional(text()),
    /** Or a command the agent itself starts and supervises (argv, no shell). */
    command: v.optional(v.pipe(v.array(text()), v.minLength(1, "expected at least one argument"))),
    cwd: v.optional(v.string()),
    env: v.optional(stringMap()),
    /** Restart the supervised command when it dies, with backoff. */
    restartOnExit: v.optional(v.boolean(), false),
  }),
  v.check((p) => Boolean(p.systemdUnit) !== Boolean(p.command), "give exactly one of systemdUnit or command"),
);

const ScriptSchema = v.strictObject({
  argv: v.pipe(v.array(text()), v.minLength(1, "expected at least one argument")),
  /** Run through /bin/sh -c (argv joined); off unless the entry says so. */
  shell: v.optional(v.boolean(), false),
  /** Whether a command's payload may append arguments. */
  allowArgs: v.optional(v.boolean(), false),
  cwd: v.optional(v.string()),
  timeoutSec: v.optional(int(1, 86_400)),
});

const AwsIotSchema = v.strictObject({
  endpoint: text(),
  port: v.optional(int(1, 65_535), 8883),
  clientId: text(),
  certPath: v.optional(v.string()),
  keyPath: v.optional(v.string()),
  caPath: v.optional(v.string()),
  /** Plain TCP with no TLS: only for tests against a local broker. */
  insecure: v.optional(v.boolean(), false),
  topics: v.optional(v.array(v.string()), ["devices/+/telemetry", "devices/+/status", "devices/+/log"]),
});

// A default given to v.optional is itself validated, so `{}` fills in every nested default.
const CollectorSchema = (intervalSecs: number) =>
  v.optional(
    v.strictObject({
      enabled: v.optional(v.boolean(), true),
      intervalSecs: v.optional(num(0.5, 3600), intervalSecs),
    }),
    {},
  );

const CollectorsSchema = v.optional(
  v.strictObject({
    cpu: CollectorSchema(5),
    memory: CollectorSchema(5),
    disk: CollectorSchema(15),
    network: CollectorSchema(5),
    processes: v.optional(
      v.strictObject({
        enabled: v.optional(v.boolean(), true),
        intervalSecs: v.optional(num(0.5, 3600), 15),
        /** Top N by CPU and top N by memory: at most 2N series per process metric. */
        topN: v.optional(int(1, 50), 5),
      }),
      {},
    ),
    /** Consecutive failures before a collector is reported unhealthy. */
    failureThreshold: v.optional(int(1, 100), 3),
    /** "linux" reads /proc; "portable" asks systeminformation (default: linux on Linux). */
    platform: v.optional(v.picklist(["linux", "portable"])),
  }),
  {},
);

const SelfLimitsSchema = v.optional(
  v.strictObject({
    /** Percent of one core the agent may use on average before it collects less often. */
    cpuPercent: v.optional(num(0.1, 400), 2),
    rssMb: v.optional(num(16, 16_384), 128),
    checkIntervalSecs: v.optional(num(1, 3600), 10),
  }),
  {},
);

export const AgentConfigSchema = v.pipe(
  v.strictObject({
    serverUrl: url(),
    clientKey: v.pipe(
      v.string(),
      v.regex(/^sk_cl_[0-9A-Z]{26}_[A-Za-z0-9_-]{32,}$/, "expected sk_<clientId>_<secret>"),
    ),
    dataDir: text(),
    redisUrl: v.optional(url()),
    upstashRedisRestUrl: v.optional(url()),
    upstashRedisRestToken: v.optional(text()),
    mqttUrl: v.optional(url()),
    mqttClientId: v.optional(text()),
    logBatchSize: v.optional(int(1, 10_000), 100),
    logFlushIntervalSecs: v.optional(num(0.05, 3600), 5),
    logQueueLimit: v.optional(int(100), 100_000),
    logStreamMaxLen: v.optional(int(100), 100_000),
    healthCheckIntervalSecs: v.optional(num(1, 3600), 30),
    heartbeatIntervalSecs: v.optional(num(0.2, 300), 5),
    monitoredProcessNames: v.optional(v.array(text()), []),
    /** /metrics and /healthz; 0 turns the endpoint off (collectors and alert rules still run). */
    metricsPort: v.optional(int(0, 65_535), 9100),
    metricsHost: v.optional(text(), "0.0.0.0"),
    collectors: CollectorsSchema,
    selfLimits: SelfLimitsSchema,
    alertRules: v.optional(v.array(AlertRuleSchema), []),
    alertChannels: v.optional(
      v.record(
        v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits and _.- only")),
        ChannelSchema,
      ),
      {},
    ),
    alertEvaluationIntervalSecs: v.optional(num(0.2, 3600), 5),
    /** How long running commands get to finish on SIGTERM before they are failed as interrupted. */
    shutdownGraceSecs: v.optional(num(0, 600), 10),
    maxOutputBytes: v.optional(int(1024, 10 * 1024 * 1024), 256 * 1024),
    screenshotMaxBytes: v.optional(int(64, 1_500_000), 700 * 1024),
    processes: v.optional(v.record(v.string(), ProcessSpecSchema), {}),
    scripts: v.optional(v.record(v.string(), ScriptSchema), {}),
    logFiles: v.optional(stringMap(), {}),
    printer: v.optional(v.string()),
    display: v.optional(v.string()),
    awsIot: v.optional(AwsIotSchema),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const config = dataset.value;
    const names = new Set<string>();
    config.alertRules.forEach((rule, i) => {
      if (names.has(rule.name))
        addIssue({ message: `a second rule named "${rule.name}"`, path: pathTo("alertRules", i, "name") });
      names.add(rule.name);
      for (const channel of rule.channels ?? []) {
        if (!(channel in config.alertChannels))
          addIssue({
            message: `no channel named "${channel}" in alertChannels`,
            path: pathTo("alertRules", i, "channels"),
          });
      }
    });
  }),
);
export type AgentConfig = v.InferOutput<typeof AgentConfigSchema>;

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
      // YAML 1.2 core schema: plain scalars are strings, numbers, booleans or null, never dates.
      fromFile = (loadYaml(text, { schema: CORE_SCHEMA }) as Record<string, unknown> | null) ?? {};
    } catch (error) {
      // The reason and position only: js-yaml's message quotes the lines around the error, which
      // may hold the client key.
      const { reason, mark } = error as { reason?: string; mark?: { line: number; column: number } };
      const where = mark ? ` at line ${mark.line + 1}, column ${mark.column + 1}` : "";
      throw new ConfigError(
        `config file ${options.file} is not valid YAML${where}: ${reason ?? (error as Error).message}`,
      );
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
  const parsed = v.safeParse(AgentConfigSchema, merged);
  if (!parsed.success) {
    const envName = (key: string) => Object.entries(ENV).find(([, e]) => e.key === key)?.[0];
    const problems = problemsOf(parsed.issues).map(({ path, message }) => {
      const hint = envName(String(path[0])) ? ` (or ${envName(String(path[0]))})` : "";
      return `${path.join(".")}${hint}: ${message}`;
    });
    throw new ConfigError(`invalid settings:\n  ${problems.join("\n  ")}`);
  }
  return parsed.output;
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
