/**
 * What `npm start` adds so a new user sees things move in the first minute: a demo agent
 * registered against the local stack (its key kept in the data folder and reused), and a
 * simulated MQTT device that publishes telemetry and answers device commands.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import YAML from "yaml";
import { freePort, REPO_ROOT } from "./local-cloud.js";

export interface Demo {
  clientId: string;
  deviceId: string;
  /** The demo agent's /metrics, or null when no port was free for it. */
  metricsUrl: string | null;
  stop(): Promise<void>;
}

interface DemoOptions {
  workerUrl: string;
  adminToken: string;
  dataDir: string;
  mqttUrl: string;
  redisRestUrl: string;
  redisRestToken: string;
  onAgentOutput: (line: string) => void;
}

async function ensureDemoClient(o: DemoOptions): Promise<{ id: string; key: string }> {
  const keyFile = path.join(o.dataDir, "demo-client.json");
  if (existsSync(keyFile)) {
    const saved = JSON.parse(readFileSync(keyFile, "utf8")) as { id: string; key: string };
    const res = await fetch(`${o.workerUrl}/api/clients/${saved.id}`, {
      headers: { authorization: `Bearer ${saved.key}` },
    });
    await res.arrayBuffer();
    if (res.ok) return saved;
  }
  const res = await fetch(`${o.workerUrl}/api/clients`, {
    method: "POST",
    headers: { authorization: `Bearer ${o.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "demo-host", tags: ["demo"], metadata: { createdBy: "npm start" } }),
  });
  if (res.status !== 201)
    throw new Error(`could not register the demo agent: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { id: string; clientKey: string };
  const saved = { id: body.id, key: body.clientKey };
  writeFileSync(keyFile, JSON.stringify(saved), { mode: 0o600 });
  return saved;
}

export async function startDemo(o: DemoOptions): Promise<Demo> {
  mkdirSync(o.dataDir, { recursive: true });
  const client = await ensureDemoClient(o);
  const agentDir = path.join(o.dataDir, "demo-agent");
  const metricsPort = await demoMetricsPort();
  const webhook = process.env.DEMO_ALERT_WEBHOOK;
  const configFile = path.join(o.dataDir, "demo-agent.yaml");
  writeFileSync(
    configFile,
    YAML.stringify({
      serverUrl: o.workerUrl,
      clientKey: client.key,
      dataDir: agentDir,
      upstashRedisRestUrl: o.redisRestUrl,
      upstashRedisRestToken: o.redisRestToken,
      mqttUrl: o.mqttUrl,
      logFlushIntervalSecs: 1,
      metricsPort,
      metricsHost: "127.0.0.1",
      alertRules: [
        {
          name: "demo-cpu-busy",
          expr: 'fleetdeck_cpu_usage_percent{mode="busy"}',
          op: ">",
          threshold: 80,
          for: "10s",
          severity: "warning",
          summary: "CPU busy above 80% for 10 s",
        },
      ],
      alertChannels: webhook ? { "demo-webhook": { type: "webhook", url: webhook } } : {},
      scripts: {
        uptime: { argv: ["uptime"] },
        "disk-usage": { argv: ["df", "-h", "/"] },
      },
      processes: { "demo-worker": { command: ["sleep", "86400"], restartOnExit: true } },
      logFiles: { agent: path.join(agentDir, "agent.log") },
    }),
    { mode: 0o600 },
  );
  const agent: ChildProcess = spawn(
    process.execPath,
    [path.join(REPO_ROOT, "edge-agent/bin/fleetdeck-agent.js"), "--config", configFile],
    {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line.trim()) o.onAgentOutput(line);
  };
  agent.stdout?.on("data", forward);
  agent.stderr?.on("data", forward);

  const deviceId = "demo-sensor-1";
  const device: MqttClient = await mqtt.connectAsync(o.mqttUrl, {
    clientId: `fleetdeck-demo-${deviceId}`,
    will: {
      topic: `devices/${deviceId}/status`,
      payload: Buffer.from('{"status":"offline"}'),
      qos: 1,
      retain: false,
    },
  });
  await device.publishAsync(`devices/${deviceId}/status`, JSON.stringify({ status: "online" }), { qos: 1 });
  await device.subscribeAsync(`devices/${deviceId}/command`, { qos: 1 });
  let setpoint = 21;
  device.on("message", (_topic, payload, packet) => {
    try {
      const req = JSON.parse(payload.toString()) as {
        correlationId: string;
        replyTo: string;
        command: { setpoint?: number };
      };
      if (typeof req.command?.setpoint === "number") setpoint = req.command.setpoint;
      void device.publishAsync(
        req.replyTo,
        JSON.stringify({ correlationId: req.correlationId, ok: true, setpoint }),
        {
          qos: 1,
          ...(packet.properties?.correlationData
            ? { properties: { correlationData: packet.properties.correlationData } }
            : {}),
        },
      );
    } catch {}
  });
  let t = 20;
  const telemetry = setInterval(() => {
    t += (setpoint - t) * 0.2 + (Math.random() - 0.5) * 0.3;
    void device
      .publishAsync(
        `devices/${deviceId}/telemetry`,
        JSON.stringify({ temperatureC: Math.round(t * 100) / 100, setpoint, at: Date.now() }),
        { qos: 1 },
      )
      .catch(() => {});
  }, 2000);

  return {
    clientId: client.id,
    deviceId,
    metricsUrl: metricsPort ? `http://127.0.0.1:${metricsPort}/metrics` : null,
    stop: async () => {
      clearInterval(telemetry);
      await device.endAsync().catch(() => {});
      if (agent.exitCode === null) {
        const exited = new Promise((r) => agent.once("exit", r));
        agent.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (agent.exitCode === null) agent.kill("SIGKILL");
      }
    },
  };
}

/** DEMO_METRICS_PORT, else 9100 when free, else any free port (a node_exporter may hold 9100). */
async function demoMetricsPort(): Promise<number> {
  const wanted = Number(process.env.DEMO_METRICS_PORT ?? 9100);
  if (!Number.isInteger(wanted) || wanted < 0 || wanted > 65_535)
    throw new Error(`DEMO_METRICS_PORT: expected a port number, got "${process.env.DEMO_METRICS_PORT}"`);
  if (wanted === 0) return 0;
  const net = await import("node:net");
  const free = await new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(wanted, "127.0.0.1", () => server.close(() => resolve(true)));
  });
  return free ? wanted : freePort();
}
