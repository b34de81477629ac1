import { Redis } from "@upstash/redis/cloudflare";

/** Upstash Redis over REST; locally the REST bridge in dev/ stands in for Upstash. */
export function openRedis(settings: {
  UPSTASH_REDIS_REST_URL: string;
  UPSTASH_REDIS_REST_TOKEN: string;
}): Redis {
  return new Redis({
    url: settings.UPSTASH_REDIS_REST_URL,
    token: settings.UPSTASH_REDIS_REST_TOKEN,
    // Callers decide about retries; readiness checks must fail fast.
    retry: { retries: 1, backoff: () => 50 },
    enableTelemetry: false,
  });
}
