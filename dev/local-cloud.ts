/**
 * The whole system on one machine: the stand-ins for the hosted services, migrations, and
 * `wrangler dev` running the Worker, its Durable Objects and its cron in workerd.
 * Used by `npm start` and by the end-to-end tests.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { redactUrl } from "../src/protocol/redact.js";
import { runMigrations } from "./migrate.js";
import { startEmbeddedBroker } from "./mqtt-broker.js";
import { startNeonProxy } from "./neon-proxy.js";
import { PortBusyError } from "./ports.js";
import { startEmbeddedPostgres } from "./postgres.js";
import { startQStashEmulator } from "./qstash-emulator.js";
import type { LocalSettings } from "./settings.js";
import { startUpstashBridge } from "./upstash-bridge.js";

export const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface ServiceRow {
  service: string;
  url: string;
  note: string;
}

export interface LocalCloud {
  workerUrl: string;
  adminToken: string;
  adminTokenGenerated: boolean;
  databaseUrl: string;
  redisRestUrl: string;
  redisRestToken: string;
  qstashUrl: string;
  qstashToken: string;
  qstashSigningKeys: { current: string; next: string };
  mqttUrl: string;
  /** The settings handed to the Worker (the same values wrangler dev received). */
  workerVars: Record<string, string>;
  services: ServiceRow[];
  /** Fire the Worker's scheduled() handler once, as the cron trigger would. */
  fireCron(): Promise<void>;
  stop(): Promise<void>;
}

export interface LocalCloudOptions {
  settings: LocalSettings;
  /** Extra Worker vars (tests use short thresholds). */
  vars?: Record<string, string>;
  /** Where wrangler's output goes; defaults to this process's stderr. */
  onWorkerOutput?: (line: string) => void;
  /** Fire the cron every settings.cronIntervalSecs (npm start); tests fire it themselves. */
  cron?: boolean;
  log?: (line: string) => void;
}

export async function startLocalCloud(options: LocalCloudOptions): Promise<LocalCloud> {
  const { settings } = options;
  const log = options.log ?? (() => {});
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    stops.length = 0;
  };

  try {
    // Fail on a taken Worker port before anything else starts.
    const workerPort = settings.workerPort === 0 ? await freePort() : settings.workerPort;
    await assertPortFree(workerPort, "the Worker (wrangler dev)", "FLEETDECK_PORT");

    log(`redis: connecting to ${settings.redisUrl}`);
    const bridge = await startUpstashBridge({
      port: settings.redisRestPort,
      token: settings.redisRestToken,
      redisUrl: settings.redisUrl,
    });
    stops.push(bridge.stop);

    let databaseUrl = settings.databaseUrl;
    let postgresNote = "DATABASE_URL";
    if (!databaseUrl) {
      log(`postgres: starting embedded PGlite in ${path.relative(process.cwd(), settings.pgDataDir) || "."}`);
      const embedded = await startEmbeddedPostgres({ dataDir: settings.pgDataDir, port: settings.pgPort });
      stops.push(embedded.stop);
      databaseUrl = embedded.url;
      postgresNote = "embedded PGlite";
    }
    log("postgres: applying migrations");
    await runMigrations(databaseUrl);

    const pgTarget = new URL(databaseUrl);
    const proxy = await startNeonProxy({
      port: settings.neonProxyPort,
      allowedTargets: [`${pgTarget.hostname}:${pgTarget.port || "5432"}`],
    });
    stops.push(proxy.stop);

    const qstash = await startQStashEmulator({
      port: settings.qstashPort,
      token: settings.qstashToken,
      currentSigningKey: settings.qstashCurrentSigningKey,
      nextSigningKey: settings.qstashNextSigningKey,
    });
    stops.push(qstash.stop);

    let mqttUrl = settings.mqttUrl;
    let mqttNote = "MQTT_URL";
    if (!mqttUrl) {
      const broker = await startEmbeddedBroker({ port: settings.mqttPort });
      stops.push(broker.stop);
      mqttUrl = broker.url;
      mqttNote = "embedded aedes (MQTT 3.1.1)";
    }

    const adminTokenGenerated = !settings.adminToken;
    const adminToken = settings.adminToken ?? `fd_admin_${randomBytes(24).toString("base64url")}`;
    const workerUrl = `http://127.0.0.1:${workerPort}`;
    const vars: Record<string, string> = {
      DATABASE_URL: databaseUrl,
      NEON_WS_PROXY: proxy.wsProxy,
      UPSTASH_REDIS_REST_URL: bridge.url,
      UPSTASH_REDIS_REST_TOKEN: bridge.token,
      QSTASH_URL: qstash.url,
      QSTASH_TOKEN: qstash.token,
      QSTASH_CURRENT_SIGNING_KEY: settings.qstashCurrentSigningKey,
      QSTASH_NEXT_SIGNING_KEY: settings.qstashNextSigningKey,
      ADMIN_TOKEN: adminToken,
      PUBLIC_URL: workerUrl,
      ...options.vars,
    };
    const worker = await startWranglerDev({
      port: workerPort,
      vars,
      dataDir: settings.dataDir,
      onOutput: options.onWorkerOutput ?? ((line) => process.stderr.write(`[wrangler] ${line}\n`)),
    });
    stops.push(worker.stop);

    const fireCron = async () => {
      const res = await fetch(`${workerUrl}/__scheduled?cron=${encodeURIComponent("* * * * *")}`);
      if (!res.ok) throw new Error(`cron trigger answered ${res.status}`);
      await res.text();
    };
    if (options.cron) {
      const timer = setInterval(() => {
        fireCron().catch((error: unknown) => log(`cron: ${String(error)}`));
      }, settings.cronIntervalSecs * 1000);
      stops.push(async () => clearInterval(timer));
    }

    return {
      workerUrl,
      adminToken,
      adminTokenGenerated,
      databaseUrl,
      redisRestUrl: bridge.url,
      redisRestToken: bridge.token,
      qstashUrl: qstash.url,
      qstashToken: qstash.token,
      qstashSigningKeys: qstash.signingKeys(),
      mqttUrl,
      workerVars: vars,
      services: [
        { service: "Worker (wrangler dev)", url: workerUrl, note: "API, Durable Objects, cron" },
        { service: "Postgres", url: redactUrl(databaseUrl), note: postgresNote },
        { service: "Neon WebSocket proxy", url: `ws://${proxy.wsProxy}/v1`, note: "NEON_WS_PROXY" },
        {
          service: "Upstash Redis (REST)",
          url: bridge.url,
          note: `bridge to ${redactUrl(settings.redisUrl)}`,
        },
        { service: "QStash", url: qstash.url, note: "emulator" },
        { service: "MQTT", url: mqttUrl, note: mqttNote },
      ],
      fireCron,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

interface WranglerDev {
  process: ChildProcess;
  stop(): Promise<void>;
}

async function startWranglerDev(options: {
  port: number;
  vars: Record<string, string>;
  dataDir: string;
  onOutput: (line: string) => void;
}): Promise<WranglerDev> {
  mkdirSync(options.dataDir, { recursive: true });
  // Secrets go in a file only this user can read, not on the command line.
  const envFile = path.join(options.dataDir, `worker-${options.port}.env`);
  writeFileSync(
    envFile,
    `${Object.entries(options.vars)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join("\n")}\n`,
    { mode: 0o600 },
  );
  chmodSync(envFile, 0o600);
  const inspectorPort = await freePort();
  const wrangler = path.join(REPO_ROOT, "node_modules", ".bin", "wrangler");
  const child = spawn(
    wrangler,
    [
      "dev",
      "--local",
      "--ip",
      "127.0.0.1",
      "--port",
      String(options.port),
      "--inspector-port",
      String(inspectorPort),
      "--test-scheduled",
      "--env-file",
      envFile,
      "--persist-to",
      path.join(options.dataDir, "wrangler-state"),
      "--show-interactive-dev-session=false",
      "--log-level",
      "log",
    ],
    {
      cwd: REPO_ROOT,
      // Its own process group, so stopping it stops workerd too.
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: process.env.CI ?? "" },
    },
  );
  let exited = false;
  // wrangler runs in its own process group (so Ctrl-C reaches us, not it): if this process
  // ends without stop() (an uncaught error, process.exit), take the group down with it.
  const killGroup = () => {
    if (!exited && child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    }
  };
  process.once("exit", killGroup);
  const exitPromise = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      exited = true;
      process.off("exit", killGroup);
      resolve(code);
    }),
  );
  const tail: string[] = [];
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 40) tail.shift();
      options.onOutput(line);
    }
  };
  child.stdout?.on("data", forward);
  child.stderr?.on("data", forward);

  const stop = async () => {
    if (exited || child.pid === undefined) return;
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 5000).unref());
    if ((await Promise.race([exitPromise, timeout])) === "timeout") {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
      await exitPromise;
    }
  };

  const url = `http://127.0.0.1:${options.port}/healthz`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (exited) {
      throw new Error(`wrangler dev exited during start-up. Its last output:\n${tail.join("\n")}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer ${url} within 90 s. Its last output:\n${tail.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { process: child, stop };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function assertPortFree(port: number, service: string, setting: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(error.code === "EADDRINUSE" ? new PortBusyError(port, service, setting) : error),
    );
    server.listen(port, "127.0.0.1", () => server.close(() => resolve()));
  });
}
