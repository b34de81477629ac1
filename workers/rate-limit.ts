/**
 * Rate limits per caller (token or client key) and per IP, with @upstash/ratelimit over
 * Upstash Redis, in fixed one-minute windows. The cached algorithm answers from this
 * isolate's count after its first look at Redis in a window and updates Redis after the
 * response (waitUntil), so a request does not wait on a Redis round trip; the price is that
 * isolates learn of each other's requests only at the next window, so a burst spread over
 * many isolates can pass the limit briefly. When Redis is unreachable the limit is not
 * enforced (logged): dispatch must go on without Redis.
 */
import { Ratelimit } from "@upstash/ratelimit";
import { createMiddleware } from "hono/factory";
import { wrapTime } from "hono/timing";
import { FleetdeckError } from "../src/protocol/errors.js";
import type { AppEnv } from "./app-env.js";
import { identityOf } from "./auth.js";
import { settingsOf } from "./env.js";
import { log } from "./log.js";
import { openRedis } from "./redis.js";

// Shared by requests in one isolate: blocked callers are refused without a Redis round trip.
const ephemeralCache = new Map<string, number>();

type Limiters = { perCaller: Ratelimit; perIp: Ratelimit };
// One pair of limiters (and one Redis client) per isolate and settings, not per request.
let limiters: { key: string; value: Limiters } | undefined;

function limitersFor(settings: ReturnType<typeof settingsOf>): Limiters {
  const key = [
    settings.UPSTASH_REDIS_REST_URL,
    settings.UPSTASH_REDIS_REST_TOKEN,
    settings.RATE_LIMIT_PER_MINUTE,
    settings.RATE_LIMIT_IP_PER_MINUTE,
  ].join("\n");
  if (limiters?.key === key) return limiters.value;
  const redis = openRedis(settings);
  const value = {
    perCaller: new Ratelimit({
      redis,
      limiter: Ratelimit.cachedFixedWindow(settings.RATE_LIMIT_PER_MINUTE, "60 s"),
      prefix: "fd:rl:caller",
      ephemeralCache,
      analytics: false,
    }),
    perIp: new Ratelimit({
      redis,
      limiter: Ratelimit.cachedFixedWindow(settings.RATE_LIMIT_IP_PER_MINUTE, "60 s"),
      prefix: "fd:rl:ip",
      ephemeralCache,
      analytics: false,
    }),
  };
  limiters = { key, value };
  return value;
}

export const rateLimit = createMiddleware<AppEnv>(async function rateLimit(c, next) {
  const settings = settingsOf(c.env);
  const identity = identityOf(c);
  const caller = identity.kind === "client" ? `client:${identity.clientId}` : `token:${identity.tokenId}`;
  const ip = c.req.header("cf-connecting-ip") ?? "local";
  const { perCaller, perIp } = limitersFor(settings);
  let outcomes: { success: boolean; reset: number; limit: number; remaining: number }[];
  try {
    outcomes = await wrapTime(
      c,
      "ratelimit",
      Promise.all([perCaller.limit(caller), perIp.limit(ip)]),
      "rate limits (Redis on a window's first request)",
    );
    for (const o of outcomes as { pending?: Promise<unknown> }[]) {
      if (o.pending) c.executionCtx.waitUntil(o.pending.catch(() => {}));
    }
  } catch (error) {
    log("warn", "rate limit not enforced: Redis unavailable", { error: String(error) });
    return next();
  }
  const refused = outcomes.find((o) => !o.success);
  const tightest = outcomes.reduce((a, b) => (a.remaining <= b.remaining ? a : b));
  c.header("RateLimit-Limit", String(tightest.limit));
  c.header("RateLimit-Remaining", String(Math.max(0, tightest.remaining)));
  if (refused) {
    const retryAfterSec = Math.max(1, Math.ceil((refused.reset - Date.now()) / 1000));
    throw new FleetdeckError("RATE_LIMITED", "too many requests", {
      retryAfterSec,
      details: { limit: refused.limit, resetAt: refused.reset },
    });
  }
  return next();
});
