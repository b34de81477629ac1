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
import { REPO_ROOT } from "./local-cloud.js";

export interface Demo {
  clientId: string;
  deviceId: string;
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
      metricsPort: 0,
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
