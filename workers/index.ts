import { createApp } from "./app.js";
import type { Env } from "./env.js";
import { runStaleSweep } from "./stale-sweep.js";

export { ClientHub } from "./client-hub.js";
export { FleetFeed } from "./fleet-feed.js";

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    ctx.waitUntil(runStaleSweep(env, controller.scheduledTime));
  },
} satisfies ExportedHandler<Env>;
