import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCloud, type TestCloud } from "../support/local-cloud.js";

let cloud: TestCloud;

beforeAll(async () => {
  cloud = await startTestCloud();
}, 120_000);

afterAll(async () => {
  await cloud?.stop();
});

function portOpen(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("the local cloud under wrangler dev", () => {
  it("is ready: the Worker reaches Postgres through the Neon proxy and Redis through the REST bridge", async () => {
    const res = await fetch(`${cloud.workerUrl}/readyz`);
    const body = (await res.json()) as { status: string; checks: Record<string, { ok: boolean }> };
    expect(res.status).toBe(200);
    expect(body.checks.postgres?.ok).toBe(true);
    expect(body.checks.redis?.ok).toBe(true);
  });

  it("runs the cron trigger's scheduled() handler", async () => {
    await cloud.fireCron();
    await expect
      .poll(() => cloud.workerLog.some((l) => l.includes("stale sweep ran")), { timeout: 5000 })
      .toBe(true);
  });

  it("leaves no listening port behind when stopped", async () => {
    const urls = [cloud.workerUrl, cloud.redisRestUrl, cloud.qstashUrl];
    for (const url of urls) expect(await portOpen(url)).toBe(true);
    await cloud.stop();
    for (const url of urls) expect(await portOpen(url)).toBe(false);
    cloud = undefined as unknown as TestCloud;
  });
});
