import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis as UpstashRedis } from "@upstash/redis";
import { Redis as IORedis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../dev/local-cloud.js";
import { startUpstashBridge, type UpstashBridge } from "../dev/upstash-bridge.js";
import { createPrivateRedis, type PrivateRedis } from "../test/support/private-redis.js";
import { BulkLogger, type LogSink, TcpRedisLogSink, UpstashLogSink } from "./bulk-logger.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `fdtest:bulk:${randomBytes(4).toString("hex")}`;
let bridge: UpstashBridge;
let reader: IORedis;
const dirs: string[] = [];

function spoolDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), "fleetdeck-spool-"));
  dirs.push(d);
  return d;
}

async function lines(stream: string, redis: IORedis = reader): Promise<string[]> {
  const entries = await redis.xrange(stream, "-", "+");
  return entries.map(([, fields]) => fields[fields.indexOf("message") + 1]!);
}

beforeAll(async () => {
  bridge = await startUpstashBridge({ port: 0, token: "bulk-token", redisUrl: REDIS_URL });
  reader = new IORedis(REDIS_URL);
});

afterAll(async () => {
  const keys = await reader.keys(`${prefix}*`);
  if (keys.length) await reader.del(...keys);
  reader.disconnect();
  await bridge.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sinks: [string, () => LogSink][] = [
  [
    "Upstash REST",
    () =>
      new UpstashLogSink(new UpstashRedis({ url: bridge.url, token: "bulk-token", enableTelemetry: false })),
  ],
  ["TCP Redis", () => new TcpRedisLogSink(new IORedis(REDIS_URL))],
];

describe.each(sinks)("BulkLogger through %s", (name, makeSink) => {
  it("flushes a full batch at once, in order, into the per-client stream", async () => {
    const stream = `${prefix}:${name}:batch`;
    const logger = new BulkLogger({
      sink: makeSink(),
      spoolDir: spoolDir(),
      batchSize: 10,
      flushIntervalMs: 60_000,
      queueLimit: 1000,
      maxLen: 1000,
    });
    for (let i = 0; i < 25; i++) logger.logSync({ stream, fields: { level: "info", message: `line ${i}` } });
    await expect.poll(() => lines(stream).then((l) => l.length)).toBe(20);
    await logger.close();
    expect(await lines(stream)).toEqual(Array.from({ length: 25 }, (_, i) => `line ${i}`));
  });

  it("writes a batch that holds several streams into each, with every field, in order", async () => {
    const streams = [`${prefix}:${name}:multi-a`, `${prefix}:${name}:multi-b`];
    const logger = new BulkLogger({
      sink: makeSink(),
      spoolDir: spoolDir(),
      batchSize: 7,
      flushIntervalMs: 60_000,
      queueLimit: 1000,
      maxLen: 1000,
    });
    for (let i = 0; i < 30; i++)
      logger.logSync({
        stream: streams[i % 2]!,
        fields: { level: "info", message: `line ${i}`, n: String(i) },
      });
    await logger.close();
    for (const [k, stream] of streams.entries()) {
      const entries = await reader.xrange(stream, "-", "+");
      const expected = Array.from({ length: 15 }, (_, j) => 2 * j + k);
      expect(entries.map(([, f]) => f)).toEqual(
        expected.map((i) => ["level", "info", "message", `line ${i}`, "n", String(i)]),
      );
    }
  });

  it("flushes a partial batch on the interval", async () => {
    const stream = `${prefix}:${name}:interval`;
    const logger = new BulkLogger({
      sink: makeSink(),
      spoolDir: spoolDir(),
      batchSize: 100,
      flushIntervalMs: 100,
      queueLimit: 1000,
      maxLen: 1000,
    });
    await logger.log({ stream, fields: { level: "info", message: "lonely" } });
    await expect.poll(() => lines(stream), { timeout: 2000 }).toEqual(["lonely"]);
    await logger.close();
  });

  it("trims the stream with MAXLEN ~", async () => {
    const stream = `${prefix}:${name}:trim`;
    const logger = new BulkLogger({
      sink: makeSink(),
      spoolDir: spoolDir(),
      batchSize: 500,
      flushIntervalMs: 60_000,
      queueLimit: 10_000,
      maxLen: 100,
    });
    for (let i = 0; i < 2000; i++) logger.logSync({ stream, fields: { message: String(i) } });
    await logger.close();
    const length = await reader.xlen(stream);
    expect(length).toBeLessThan(2000);
    expect(length).toBeGreaterThanOrEqual(100);
  });
});

describe("BulkLogger when Redis goes away", () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    redis = createPrivateRedis(await freePort());
    await redis.start();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it("spools to disk while Redis is down and replays every line in order when it returns", async () => {
    const stream = `${prefix}:outage`;
    const tcp = new IORedis(redis.url, {
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => 200,
    });
    tcp.on("error", () => {});
    await new Promise((r) => tcp.once("ready", r));
    const dir = spoolDir();
    const logger = new BulkLogger({
      sink: new TcpRedisLogSink(tcp),
      spoolDir: dir,
      batchSize: 10,
      flushIntervalMs: 100,
      queueLimit: 10_000,
      maxLen: 100_000,
    });
    for (let i = 0; i < 30; i++) logger.logSync({ stream, fields: { message: `before ${i}` } });
    await logger.flush();
    const early = new IORedis(redis.url);
    expect(await lines(stream, early)).toHaveLength(30);
    early.disconnect();
    await redis.stop();
    for (let i = 0; i < 50; i++) logger.logSync({ stream, fields: { message: `during ${i}` } });
    await logger.flush();
    expect(logger.statistics().spooledEntries).toBe(50);
    expect(readdirSync(dir).length).toBe(5);
    expect(logger.statistics().redisHealthy).toBe(false);

    await redis.start();
    for (let i = 0; i < 20; i++) logger.logSync({ stream, fields: { message: `after ${i}` } });
    const check = new IORedis(redis.url);
    try {
      // The restarted Redis keeps nothing on disk, so it starts empty: what it holds now is
      // exactly the spooled lines, then the new ones, in order.
      await expect.poll(() => lines(stream, check).then((l) => l.length), { timeout: 10_000 }).toBe(70);
      expect(await lines(stream, check)).toEqual([
        ...Array.from({ length: 50 }, (_, i) => `during ${i}`),
        ...Array.from({ length: 20 }, (_, i) => `after ${i}`),
      ]);
      expect(logger.statistics()).toMatchObject({ spooledEntries: 0, dropped: 0, redisHealthy: true });
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      check.disconnect();
      await logger.close();
    }
  });

  it("replays a spool left by an earlier run before anything new", async () => {
    const stream = `${prefix}:restart`;
    const dir = spoolDir();
    await redis.stop();
    const down = new IORedis(redis.url, {
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      lazyConnect: true,
      retryStrategy: () => null,
    });
    down.on("error", () => {});
    const first = new BulkLogger({
      sink: new TcpRedisLogSink(down),
      spoolDir: dir,
      batchSize: 5,
      flushIntervalMs: 60_000,
      queueLimit: 100,
      maxLen: 1000,
    });
    for (let i = 0; i < 12; i++) first.logSync({ stream, fields: { message: `old ${i}` } });
    await first.close();
    await redis.start();
    const up = new IORedis(redis.url);
    const second = new BulkLogger({
      sink: new TcpRedisLogSink(up),
      spoolDir: dir,
      batchSize: 5,
      flushIntervalMs: 60_000,
      queueLimit: 100,
      maxLen: 1000,
    });
    expect(second.statistics().spooledEntries).toBe(12);
    second.logSync({ stream, fields: { message: "new" } });
    await second.close();
    const check = new IORedis(redis.url);
    expect(await lines(stream, check)).toEqual([...Array.from({ length: 12 }, (_, i) => `old ${i}`), "new"]);
    check.disconnect();
  });

  it("keeps two batches on one connection at once, and spools a failed one and all after it in order", async () => {
    const dir = spoolDir();
    const written: string[] = [];
    let inFlight = 0;
    let mostInFlight = 0;
    let calls = 0;
    let connected = true;
    // Records what a TCP connection would: batches applied in the order sent; a dropped
    // connection fails the batch it was on and the one behind it.
    const sink: LogSink = {
      kind: "recording",
      maxInFlight: 2,
      write: async (batch) => {
        calls++;
        if (calls === 4) connected = false; // while batch 3 is still on the wire
        inFlight++;
        mostInFlight = Math.max(mostInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        if (!connected) throw new Error("connection reset");
        written.push(...batch.map((e) => e.fields.message!));
      },
      close: async () => {},
    };
    const logger = new BulkLogger({
      sink,
      spoolDir: dir,
      batchSize: 10,
      flushIntervalMs: 60_000,
      queueLimit: 1000,
      maxLen: 1000,
    });
    for (let i = 0; i < 60; i++) logger.logSync({ stream: "s", fields: { message: String(i) } });
    await logger.flush();
    expect(mostInFlight).toBe(2);
    expect(written).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    expect(logger.statistics()).toMatchObject({ spooledEntries: 40, written: 20 });
    connected = true;
    await logger.close();
    expect(written).toEqual(Array.from({ length: 60 }, (_, i) => String(i)));
    expect(logger.statistics()).toMatchObject({ spooledEntries: 0, written: 60, dropped: 0 });
  });

  it("drops the oldest queued lines past the bound, and counts them", async () => {
    const dir = spoolDir();
    const never: LogSink = {
      kind: "never",
      maxInFlight: 1,
      write: () => new Promise(() => {}),
      close: async () => {},
    };
    const logger = new BulkLogger({
      sink: never,
      spoolDir: dir,
      batchSize: 1000,
      flushIntervalMs: 60_000,
      queueLimit: 100,
      maxLen: 10,
    });
    for (let i = 0; i < 150; i++) logger.logSync({ stream: "x", fields: { message: String(i) } });
    expect(logger.statistics()).toMatchObject({ queued: 100, dropped: 50 });
  });

  it("after dropping the oldest, sends what is left in order, a batch at a time", async () => {
    const batches: string[][] = [];
    const recording: LogSink = {
      kind: "recording",
      maxInFlight: 2,
      write: async (batch) => {
        batches.push(batch.map((e) => e.fields.message!));
      },
      close: async () => {},
    };
    const logger = new BulkLogger({
      sink: recording,
      spoolDir: spoolDir(),
      batchSize: 30,
      flushIntervalMs: 60_000,
      queueLimit: 100,
      maxLen: 10,
    });
    // Synchronous callers outrun the writes: the queue passes its bound while batches are out.
    for (let i = 0; i < 400; i++) logger.logSync({ stream: "x", fields: { message: String(i) } });
    await logger.close();
    const sent = batches.flat().map(Number);
    expect(batches.every((b) => b.length > 0 && b.length <= 30)).toBe(true);
    expect(sent).toEqual([...sent].sort((a, b) => a - b));
    expect(new Set(sent).size).toBe(sent.length);
    expect(logger.statistics().dropped).toBeGreaterThan(0);
    expect(sent.length + logger.statistics().dropped).toBe(400);
    expect(sent.at(-1)).toBe(399);
  });
});
