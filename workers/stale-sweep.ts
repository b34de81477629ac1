import type { Env } from "./env.js";
import { log } from "./log.js";

/**
 * The fleet-wide backstop, run by the cron trigger every minute. Per-host detection runs
 * on each ClientHub's own alarm; this catches what those miss. (The real sweep over the
 * presence index is built with fleet liveness; for now it reports that it ran.)
 */
export async function runStaleSweep(_env: Env, scheduledTime: number, cron: string): Promise<{ ran: true }> {
  log("info", "stale sweep ran", { cron, scheduled_time: new Date(scheduledTime).toISOString() });
  return { ran: true };
}
