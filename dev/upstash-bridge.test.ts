import { randomBytes } from "node:crypto";
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startUpstashBridge, type UpstashBridge } from "./upstash-bridge.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `fdtest:${randomBytes(4).toString("hex")}:`;
let bridge: UpstashBridge;
let redis: Redis;

beforeAll(async () => {
  bridge = await startUpstashBridge({ port: 0, token: "bridge-test-token", redisUrl: REDIS_URL });
  redis = new Redis({ url: bridge.url, token: bridge.token, enableTelemetry: false });
});

afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await bridge.stop();
});

describe("Upstash REST bridge through @upstash/redis", () => {
  it("round-trips strings, JSON values and binary-unsafe text with base64 responses", async () => {
    expect(await redis.set(`${prefix}s`, "hello wörld ✓")).toBe("OK");
    expect(await redis.get(`${prefix}s`)).toBe("hello wörld ✓");
    await redis.set(`${prefix}json`, { a: 1, b: ["x"] });
    expect(await redis.get(`${prefix}json`)).toEqual({ a: 1, b: ["x"] });
    expect(await redis.incrby(`${prefix}n`, 5)).toBe(5);
    expect(await redis.get(`${prefix}missing`)).toBeNull();
  });

  it("supports hashes, lists and sorted sets", async () => {
    await redis.hset(`${prefix}h`, { name: "gw-1", zone: "eu" });
    expect(await redis.hgetall(`${prefix}h`)).toEqual({ name: "gw-1", zone: "eu" });
    expect(await redis.hget(`${prefix}h`, "zone")).toBe("eu");
    await redis.rpush(`${prefix}l`, "a", "b", "c");
    expect(await redis.lrange(`${prefix}l`, 0, -1)).toEqual(["a", "b", "c"]);
    await redis.zadd(
      `${prefix}z`,
      { score: 3, member: "c" },
      { score: 1, member: "a" },
      { score: 2, member: "b" },
    );
    expect(await redis.zrange(`${prefix}z`, 0, -1)).toEqual(["a", "b", "c"]);
    expect(await redis.zrange(`${prefix}z`, 0, 1, { withScores: true })).toEqual(["a", 1, "b", 2]);
    expect(await redis.zrange(`${prefix}z`, 2, 3, { byScore: true })).toEqual(["b", "c"]);
  });

  it("supports streams with XADD, XRANGE and MAXLEN trimming", async () => {
    const key = `${prefix}stream`;
    for (let i = 0; i < 20; i++) {
      await redis.xadd(
        key,
        "*",
        { line: `entry ${i}` },
        { trim: { type: "MAXLEN", threshold: 10, comparison: "=" } },
      );
    }
    expect(await redis.xlen(key)).toBe(10);
    const entries = await redis.xrange(key, "-", "+");
    const lines = Object.values(entries).map((e) => (e as { line: string }).line);
    expect(lines[0]).toBe("entry 10");
    expect(lines.at(-1)).toBe("entry 19");
  });

  it("expires keys", async () => {
    await redis.set(`${prefix}ttl`, "x", { px: 150 });
    const ttl = await redis.pttl(`${prefix}ttl`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(150);
    await new Promise((r) => setTimeout(r, 300));
    expect(await redis.get(`${prefix}ttl`)).toBeNull();
  });

  it("runs pipelines and reports a failing command in place without failing the rest", async () => {
    const p = redis.pipeline();
    p.set(`${prefix}p1`, "1");
    p.incr(`${prefix}p1`);
    p.get(`${prefix}p1`);
    expect(await p.exec()).toEqual(["OK", 2, 2]);

    const res = await fetch(`${bridge.url}/pipeline`, {
      method: "POST",
      headers: { authorization: `Bearer ${bridge.token}` },
      body: JSON.stringify([
        ["SET", `${prefix}p2`, "v"],
        ["INCR", `${prefix}p2`],
        ["GET", `${prefix}p2`],
      ]),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as unknown[];
    expect(body[0]).toEqual({ result: "OK" });
    expect(body[1]).toEqual({ error: "ERR value is not an integer or out of range" });
    expect(body[2]).toEqual({ result: "v" });
  });

  it("runs transactions atomically with MULTI/EXEC", async () => {
    const tx = redis.multi();
    tx.set(`${prefix}t`, "0");
    tx.incr(`${prefix}t`);
    tx.incr(`${prefix}t`);
    expect(await tx.exec()).toEqual(["OK", 1, 2]);
  });

  it("batches concurrent calls with auto-pipelining", async () => {
    const auto = new Redis({
      url: bridge.url,
      token: bridge.token,
      enableAutoPipelining: true,
      enableTelemetry: false,
    });
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        auto.set(`${prefix}auto:${i}`, String(i)).then(() => auto.get(`${prefix}auto:${i}`)),
      ),
    );
    expect(results).toEqual(Array.from({ length: 25 }, (_, i) => i));
  });

  it("serves @upstash/ratelimit", async () => {
    const limiter = new Ratelimit({
      redis,
      limiter: Ratelimit.fixedWindow(3, "10 s"),
      prefix: `${prefix}rl`,
    });
    const outcomes = [];
    for (let i = 0; i < 5; i++) outcomes.push((await limiter.limit("client-a")).success);
    expect(outcomes).toEqual([true, true, true, false, false]);
    const sliding = new Ratelimit({
      redis,
      limiter: Ratelimit.slidingWindow(2, "10 s"),
      prefix: `${prefix}rls`,
    });
    expect((await sliding.limit("b")).success).toBe(true);
    expect((await sliding.limit("b")).success).toBe(true);
    const third = await sliding.limit("b");
    expect(third.success).toBe(false);
    expect(third.remaining).toBe(0);
  });
});

describe("Upstash REST bridge on bad input", () => {
  const post = (path: string, body: string, token = bridge.token) =>
    fetch(`${bridge.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body });

  it("answers a wrong or missing token with 401", async () => {
    const wrong = await post("/", JSON.stringify(["PING"]), "nope");
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({ error: "Unauthorized" });
    const none = await fetch(`${bridge.url}/`, { method: "POST", body: JSON.stringify(["PING"]) });
    expect(none.status).toBe(401);
    const sdk = new Redis({ url: bridge.url, token: "wrong", retry: false, enableTelemetry: false });
    await expect(sdk.get("x")).rejects.toThrow(/Unauthorized/);
  });

  it("answers malformed JSON, a non-array body and an unknown command with 400 and an ERR message", async () => {
    const malformed = await post("/", "{not json");
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: string }).error).toMatch(/^ERR /);
    const notArray = await post("/", JSON.stringify({ cmd: "GET" }));
    expect(notArray.status).toBe(400);
    const unknown = await post("/", JSON.stringify(["NOSUCHCOMMAND", "x"]));
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/unknown command/i);
    const sdk = new Redis({ url: bridge.url, token: bridge.token, enableTelemetry: false });
    await expect(sdk.eval("return redis.call('NOSUCH')", [], [])).rejects.toThrow(/ERR/);
  });

  it("refuses commands that would block or take over the shared connection", async () => {
    const res = await post("/", JSON.stringify(["BLPOP", `${prefix}nothing`, "0"]));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/not supported/);
  });

  it("keeps serving after bad requests", async () => {
    const res = await post("/", JSON.stringify(["PING"]));
    expect(await res.json()).toEqual({ result: "PONG" });
  });
});
