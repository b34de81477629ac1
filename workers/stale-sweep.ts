import { type Env, settingsOf } from "./env.js";
import type { FleetFeed } from "./fleet-feed.js";
import { log } from "./log.js";
import { openRedis } from "./redis.js";

/**
 * The fleet-wide backstop, run by the cron trigger every minute. Each ClientHub detects its
 * own host going stale by alarm, to the second; this catches what those miss (an alarm lost,
 * a hub that never got a heartbeat after a deploy). It reads the presence index once and
 * hands the overdue hosts to the FleetFeed in one call, which pokes their hubs in batches by
 * its own alarm: two subrequests per run whatever the fleet size. Running it twice, or
 * skipping a run, is harmless: a hub's liveness check is idempotent, and the next run reads
 * everything overdue again.
 */
export async function runStaleSweep(
  env: Env,
  now: number,
): Promise<{ overdue: number; subrequests: number }> {
  const settings = settingsOf(env);
  const cutoff = now - settings.STALE_HOST_THRESHOLD_SECONDS * 1000;
  let subrequests = 0;
  subrequests++;
  const overdue = (await openRedis(settings).zrange(settings.PRESENCE_KEY, "-inf", cutoff, {
    byScore: true,
  })) as string[];
  if (overdue.length > 0) {
    subrequests++;
    const feed = env.FLEET_FEED.get(env.FLEET_FEED.idFromName("fleet")) as unknown as DurableObjectStub &
      Pick<FleetFeed, "sweep">;
    await feed.sweep(overdue);
  }
  log("info", "stale sweep ran", {
    overdue: overdue.length,
    subrequests,
    cutoff: new Date(cutoff).toISOString(),
  });
  return { overdue: overdue.length, subrequests };
}
