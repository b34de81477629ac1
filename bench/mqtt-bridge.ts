/**
 * bench/mqtt-bridge: device messages per second from Mosquitto into Redis streams through the
 * agent's bridge (MqttBridge + BulkLogger, TCP Redis), against a bare mqtt.js subscriber on the
 * same broker in the same run; and the latency the bridge adds to receiving a message.
 *
 *   npm run bench:mqtt-bridge [-- --messages 20000]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { Redis as IORedis } from "ioredis";
import mqtt from "mqtt";
import { BulkLogger, TcpRedisLogSink } from "../edge-agent/bulk-logger.js";
import { MqttBridge } from "../edge-agent/mqtt-bridge.js";
import { benchArgs, machine, runBench, summarise, table } from "./lib.js";

const args = benchArgs();
const MESSAGES = Number(args.get("messages") ?? 20_000);
const LATENCY_SAMPLES = Number(args.get("samples") ?? 500);
const MQTT_URL = process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const run = Math.random().toString(36).slice(2, 8);

async function publishAll(device: mqtt.MqttClient, count: number, topic: string): Promise<void> {
  // QoS 1 with up to 256 publishes in flight.
  let next = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < count) {
        const i = next++;
        await device.publishAsync(
          topic,
          JSON.stringify({ i, t: performance.now() + performance.timeOrigin }),
          { qos: 1 },
        );
      }
    }),
  );
}

async function main() {
  console.log(`bench/mqtt-bridge on ${machine()}`);
  console.log(
    `${MESSAGES} QoS 1 device messages per system; ${LATENCY_SAMPLES} latency samples one at a time\n`,
  );
  const device = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5, clientId: `bench-device-${run}` });
  const redis = new IORedis(REDIS_URL);
  const rows: (string | number)[][] = [];

  // Bare mqtt.js subscriber: the reference.
  const bare = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5, clientId: `bench-bare-${run}` });
  const bareTopic = `devices/bare-${run}/telemetry`;
  await bare.subscribeAsync(bareTopic, { qos: 1 });
  let bareCount = 0;
  let bareDone: () => void = () => {};
  const bareLatency: number[] = [];
  let bareWaiter: ((t: number) => void) | null = null;
  bare.on("message", () => {
    bareCount++;
    bareWaiter?.(performance.now());
    if (bareCount === MESSAGES) bareDone();
  });
  for (let k = 0; k < LATENCY_SAMPLES; k++) {
    const arrived = new Promise<number>((r) => {
      bareWaiter = r;
    });
    const t0 = performance.now();
    await device.publishAsync(bareTopic, "{}", { qos: 1 });
    bareLatency.push((await arrived) - t0);
  }
  bareWaiter = null;
  bareCount = 0;
  let started = performance.now();
  await Promise.all([new Promise<void>((r) => (bareDone = r)), publishAll(device, MESSAGES, bareTopic)]);
  const bareRate = MESSAGES / ((performance.now() - started) / 1000);
  await bare.endAsync();

  // The agent's bridge: MQTT in, per-device Redis stream out.
  const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-bench-bridge-"));
  const sinkRedis = new IORedis(REDIS_URL);
  const logger = new BulkLogger({
    sink: new TcpRedisLogSink(sinkRedis),
    spoolDir: dir,
    batchSize: 100,
    flushIntervalMs: 50,
    queueLimit: MESSAGES * 2,
    maxLen: MESSAGES * 2,
  });
  const bridge = new MqttBridge({
    url: MQTT_URL,
    clientId: `bench-bridge-${run}`,
    replyTopic: `bench/${run}/replies`,
  });
  const deviceId = `bridge-${run}`;
  const stream = `fd:bench:${run}:dev:${deviceId}:telemetry`;
  let bridgeWaiter: ((t: number) => void) | null = null;
  bridge.on("device", (m) => {
    logger.logSync({
      stream,
      fields: { device: m.deviceId, kind: m.kind, payload: m.payload, at: String(Date.now()) },
    });
    bridgeWaiter?.(performance.now());
  });
  if (!(await bridge.start())) throw new Error(`no MQTT broker at ${MQTT_URL}`);
  const bridgeLatency: number[] = [];
  const topic = `devices/${deviceId}/telemetry`;
  for (let k = 0; k < LATENCY_SAMPLES; k++) {
    const arrived = new Promise<number>((r) => {
      bridgeWaiter = r;
    });
    const t0 = performance.now();
    await device.publishAsync(topic, "{}", { qos: 1 });
    bridgeLatency.push((await arrived) - t0);
  }
  bridgeWaiter = null;
  await logger.flush();
  await redis.del(stream);
  started = performance.now();
  await publishAll(device, MESSAGES, topic);
  for (;;) {
    await logger.flush();
    if ((await redis.xlen(stream)) >= MESSAGES) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const bridgeRate = MESSAGES / ((performance.now() - started) / 1000);
  const inRedis = await redis.xlen(stream);

  await bridge.stop();
  await logger.close();
  await device.endAsync();
  await redis.del(stream);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });

  const b = summarise(bareLatency);
  const r = summarise(bridgeLatency);
  rows.push(["bare mqtt.js subscriber", bareRate, 1, b.p50, b.p99, "-"]);
  rows.push([
    "fleetdeck bridge -> Redis stream",
    bridgeRate,
    bridgeRate / bareRate,
    r.p50,
    r.p99,
    `${inRedis}/${MESSAGES}`,
  ]);
  console.log(table(["system", "msgs/s", "x bare", "receive p50 ms", "receive p99 ms", "in Redis"], rows));
  console.log(`\nAdded at p50: ${(r.p50 - b.p50).toFixed(3)} ms (bridge receive vs bare receive).`);
  console.log("Goal: at least 0.5x the bare subscriber's rate, with no more than 1 ms added at p50.");
}

runBench(main, 20);
