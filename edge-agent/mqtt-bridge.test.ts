import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis as IORedis } from "ioredis";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../dev/local-cloud.js";
import { startEmbeddedBroker } from "../dev/mqtt-broker.js";
import { createPrivateMosquitto, type PrivateMosquitto } from "../test/support/private-mosquitto.js";
import { Agent } from "./agent.js";
import { AgentConfigSchema } from "./config.js";
import { MemoryJournal } from "./journal.js";
import { parseOrThrow } from "./validate.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
let broker: PrivateMosquitto;
let agent: Agent;
let redis: IORedis;
let dataDir: string;
const clientUlid = Array.from(randomBytes(26), (b) => "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[b % 32]).join("");
const clientId = `cl_${clientUlid}`;

beforeAll(async () => {
  broker = createPrivateMosquitto(await freePort());
  await broker.start();
  redis = new IORedis(REDIS_URL);
  dataDir = mkdtempSync(path.join(tmpdir(), "fleetdeck-bridge-"));
  const config = parseOrThrow(AgentConfigSchema, {
    // No edge here: the MQTT side works on its own while the link keeps retrying.
    serverUrl: "http://127.0.0.1:9",
    metricsPort: 0,
    clientKey: `sk_${clientId}_${"k".repeat(43)}`,
    dataDir,
    redisUrl: REDIS_URL,
    mqttUrl: broker.url,
    logBatchSize: 1,
    logFlushIntervalSecs: 0.1,
    healthCheckIntervalSecs: 3600,
    scripts: { hello: { argv: ["echo", "hello over mqtt"] } },
  });
  agent = new Agent(config, { journal: new MemoryJournal() });
  await agent.start();
});

afterAll(async () => {
  await agent?.stop();
  const keys = await redis.keys(`fd:*:${clientId}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await broker?.destroy();
  rmSync(dataDir, { recursive: true, force: true });
});

async function subscriber() {
  const c = await mqtt.connectAsync(broker.url, {
    protocolVersion: 5,
    clientId: `t-${randomBytes(4).toString("hex")}`,
  });
  const messages: { topic: string; body: any }[] = [];
  c.on("message", (topic, payload) => messages.push({ topic, body: JSON.parse(payload.toString()) }));
  return { c, messages };
}

describe("MQTT bridge (MQTT 5 on Mosquitto)", () => {
  it("runs manager/command once per id and answers on manager/command/result", async () => {
    const { c, messages } = await subscriber();
    await c.subscribeAsync("manager/command/result", { qos: 1 });
    const cmd = JSON.stringify({ id: "m-1", action: "exec", payload: { script: "hello" } });
    await c.publishAsync("manager/command", cmd, { qos: 1 });
    await c.publishAsync("manager/command", cmd, { qos: 1 });
    await expect.poll(() => messages.length, { timeout: 5000 }).toBe(1);
    expect(messages[0]!.body).toMatchObject({
      id: "m-1",
      success: true,
      data: { stdout: "hello over mqtt\n" },
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(messages).toHaveLength(1);
    await c.publishAsync("manager/command", "not json", { qos: 1 });
    await expect.poll(() => messages.length, { timeout: 5000 }).toBe(2);
    expect(messages[1]!.body.error.code).toBe("INVALID_COMMAND");
    await c.endAsync();
  });

  it("answers manager/health on manager/health/report", async () => {
    const { c, messages } = await subscriber();
    await c.subscribeAsync("manager/health/report", { qos: 1 });
    await c.publishAsync("manager/health", "{}", { qos: 1 });
    await expect.poll(() => messages.length, { timeout: 5000 }).toBeGreaterThan(0);
    expect(messages[0]!.body).toMatchObject({ clientId });
    expect(messages[0]!.body.memoryPercent).toBeGreaterThan(0);
    await c.endAsync();
  });

  it("writes device telemetry into per-device Redis streams", async () => {
    const device = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: "thermo-1" });
    for (let i = 0; i < 5; i++)
      await device.publishAsync("devices/thermo-1/telemetry", JSON.stringify({ t: 20 + i }), { qos: 1 });
    const stream = `fd:dev:${clientId}:thermo-1:telemetry`;
    await expect.poll(() => redis.xlen(stream), { timeout: 5000 }).toBe(5);
    const entries = await redis.xrange(stream, "-", "+");
    expect(entries.map(([, f]) => JSON.parse(f[f.indexOf("payload") + 1]!).t)).toEqual([20, 21, 22, 23, 24]);
    await device.endAsync();
  });

  it("drops a redelivered QoS 1 message (same packet id and content)", async () => {
    const bridge = agent.mqtt!;
    const before = bridge.duplicatesDropped;
    const client = (bridge as unknown as { client: mqtt.MqttClient }).client;
    const packet = {
      cmd: "publish",
      qos: 1,
      messageId: 4242,
      dup: true,
      topic: "devices/d9/log",
      payload: Buffer.from("x"),
      retain: false,
    } as mqtt.IPublishPacket;
    client.emit("message", "devices/d9/log", Buffer.from("x"), packet);
    client.emit("message", "devices/d9/log", Buffer.from("x"), packet);
    expect(bridge.duplicatesDropped - before).toBe(1);
  });

  it("reconnects after the broker restarts and keeps bridging, without duplicates", async () => {
    const stream = `fd:dev:${clientId}:pump-1:telemetry`;
    const device = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      clientId: "pump-1",
      reconnectPeriod: 200,
    });
    await device.publishAsync("devices/pump-1/telemetry", JSON.stringify({ n: 1 }), { qos: 1 });
    await expect.poll(() => redis.xlen(stream), { timeout: 5000 }).toBe(1);
    await broker.stop();
    await expect.poll(() => agent.mqtt!.connected, { timeout: 5000 }).toBe(false);
    await broker.start();
    await expect.poll(() => agent.mqtt!.connected, { timeout: 15_000 }).toBe(true);
    await expect.poll(() => device.connected, { timeout: 15_000 }).toBe(true);
    await device.publishAsync("devices/pump-1/telemetry", JSON.stringify({ n: 2 }), { qos: 1 });
    await expect.poll(() => redis.xlen(stream), { timeout: 10_000 }).toBe(2);
    await new Promise((r) => setTimeout(r, 500));
    expect(await redis.xlen(stream)).toBe(2);
    expect(agent.mqtt!.reconnects).toBeGreaterThan(0);
    await device.endAsync();
  });
});

describe("MQTT bridge on an MQTT 3.1.1-only broker (aedes)", () => {
  it("falls back to 3.1.1 and still bridges", async () => {
    const aedes = await startEmbeddedBroker({ port: 0 });
    const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-bridge-"));
    const legacyClient = `cl_${Array.from(randomBytes(26), (b) => "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[b % 32]).join("")}`;
    const legacy = new Agent(
      parseOrThrow(AgentConfigSchema, {
        serverUrl: "http://127.0.0.1:9",
        metricsPort: 0,
        clientKey: `sk_${legacyClient}_${"k".repeat(43)}`,
        dataDir: dir,
        redisUrl: REDIS_URL,
        mqttUrl: aedes.url,
        logBatchSize: 1,
        logFlushIntervalSecs: 0.1,
      }),
      { journal: new MemoryJournal() },
    );
    try {
      await legacy.start();
      const device = await mqtt.connectAsync(aedes.url, { protocolVersion: 4 });
      await device.publishAsync("devices/old-1/status", "online", { qos: 1 });
      await expect.poll(() => redis.xlen(`fd:dev:${legacyClient}:old-1:status`), { timeout: 5000 }).toBe(1);
      await device.endAsync();
    } finally {
      await legacy.stop();
      await aedes.stop();
      await redis.del(`fd:dev:${legacyClient}:old-1:status`, `fd:logs:${legacyClient}`);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
