import { openDatabase } from "./db.js";
import type { Env } from "./env.js";
import { settingsOf } from "./env.js";
import { openRedis } from "./redis.js";

export interface CheckResult {
  ok: boolean;
  latencyMs: number;
  error?: string;
}

async function timed(name: string, timeoutMs: number, probe: () => Promise<void>): Promise<CheckResult> {
  const started = Date.now();
  let timer: ReturnType<typeof setTimeout> | null = null;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([probe(), timeout]);
    return { ok: true, latencyMs: Date.now() - started };
  } catch (error) {
    return {
      ok: false,
      latencyMs: Date.now() - started,
      error: error instanceof Error ? error.message : String(error),
    };
  } finally {
    if (timer !== null) clearTimeout(timer);
  }
}

/** Checks every dependency in parallel; the answer names each one with its latency or its error. */
export async function checkReadiness(
  env: Env,
  waitUntil: (p: Promise<unknown>) => void,
): Promise<{ ready: boolean; checks: Record<string, CheckResult> }> {
  const settings = settingsOf(env);
  const timeoutMs = settings.READYZ_TIMEOUT_MS;
  const [postgres, redis] = await Promise.all([
    timed("postgres", timeoutMs, async () => {
      const handle = openDatabase(settings);
      try {
        await handle.pool.query("select 1");
      } finally {
        waitUntil(handle.close());
      }
    }),
    timed("redis", timeoutMs, async () => {
      const pong = await openRedis(settings).ping();
      if (pong !== "PONG") throw new Error(`unexpected PING reply ${String(pong)}`);
    }),
  ]);
  return { ready: postgres.ok && redis.ok, checks: { postgres, redis } };
}
