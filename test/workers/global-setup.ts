/**
 * Runs in Node before the workerd tests: a fresh database on the real Postgres with the
 * migrations applied, the Neon WebSocket proxy in front of it, and the Upstash REST bridge in
 * front of the real Redis. Their addresses are handed to the Worker's bindings.
 */
import type { TestProject } from "vitest/node";
import { runMigrations } from "../../dev/migrate.js";
import { startNeonProxy } from "../../dev/neon-proxy.js";
import { startUpstashBridge } from "../../dev/upstash-bridge.js";
import { createTestDatabase } from "../support/postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    neonWsProxy: string;
    redisRestUrl: string;
    redisRestToken: string;
  }
}

export default async function setup(project: TestProject) {
  const database = await createTestDatabase("fleetdeck_workers");
  await runMigrations(database.url);
  const pgUrl = new URL(database.url);
  const proxy = await startNeonProxy({
    port: 0,
    allowedTargets: [`${pgUrl.hostname}:${pgUrl.port || 5432}`],
  });
  const token = `test-${Math.random().toString(36).slice(2)}`;
  const bridge = await startUpstashBridge({
    port: 0,
    token,
    redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
  });

  project.provide("databaseUrl", database.url);
  project.provide("neonWsProxy", proxy.wsProxy);
  project.provide("redisRestUrl", bridge.url);
  project.provide("redisRestToken", token);

  return async function teardown() {
    await bridge.stop();
    await proxy.stop();
    await database.drop();
  };
}
