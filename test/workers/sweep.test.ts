import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ClientHub } from "../../workers/client-hub.js";
import { settingsOf } from "../../workers/env.js";
import type { FleetFeed } from "../../workers/fleet-feed.js";
import { openRedis } from "../../workers/redis.js";
import { runStaleSweep } from "../../workers/stale-sweep.js";
import { ADMIN, api, createClient, openFeed } from "./helpers.js";

const feedStub = () => env.FLEET_FEED.get(env.FLEET_FEED.idFromName("fleet"));
const redis = () => openRedis(settingsOf(env));

async function emptySweepQueue() {
  await runInDurableObject(feedStub(), async (_feed: FleetFeed, state) => {
    state.storage.sql.exec("DELETE FROM sweep_queue");
    await state.storage.deleteAlarm();
  });
}

describe("the cron sweep (backstop)", () => {
  it("catches a host whose own alarm was lost, once, however often it runs", async () => {
    const client = await createClient();
    const key = `fd:test:presence:${client.id}`;
    const sweepEnv = { ...env, PRESENCE_KEY: key };
    expect(
      (await api("POST", "/api/heartbeat", { token: client.key, body: { agentVersion: "1" } })).status,
    ).toBe(200);
    // The heartbeat put the host in the real presence index.
    expect(await redis().zscore(settingsOf(env).PRESENCE_KEY, client.id)).toBeGreaterThan(0);
    // Its hub loses its alarm, and 20 s pass without a heartbeat.
    const hub = env.CLIENT_HUB.get(env.CLIENT_HUB.idFromName(client.id));
    await runInDurableObject(hub, async (_h: ClientHub, state) => {
      const liveness = JSON.parse(
        state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'liveness'").one()
          .value,
      );
      liveness.lastSeen -= 20_000;
      state.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'liveness'", JSON.stringify(liveness));
      state.storage.sql.exec("DELETE FROM schedule WHERE kind = 'liveness'");
      await state.storage.deleteAlarm();
    });
    await redis().zadd(key, { score: Date.now() - 20_000, member: client.id });
    const feed = await openFeed(ADMIN, "host.stale");
    try {
      for (let run = 0; run < 2; run++) {
        const result = await runStaleSweep(sweepEnv, Date.now());
        expect(result).toEqual({ overdue: 1, subrequests: 2 });
        await runDurableObjectAlarm(feedStub());
      }
      expect((await api("GET", `/api/hosts/${client.id}`, { token: ADMIN })).body.status).toBe("offline");
      await runInDurableObject(hub, async (_h: ClientHub, state) => {
        state.storage.sql.exec("UPDATE schedule SET due_at = ? WHERE kind = 'feed'", Date.now() - 1);
        await state.storage.setAlarm(Date.now() - 1);
      });
      await runDurableObjectAlarm(hub);
      const stale = await feed.next();
      expect(JSON.parse(stale.data)).toMatchObject({ topic: "host.stale", clientId: client.id });
      await expect(feed.next(300)).rejects.toThrow(/no event/);
    } finally {
      await feed.close();
      await redis().del(key);
    }
  });

  it("makes the same number of subrequests for 10 overdue hosts as for 10,000", async () => {
    const counts = [];
    for (const n of [10, 10_000]) {
      const key = `fd:test:presence:bulk:${n}:${Date.now()}`;
      const old = Date.now() - 3_600_000;
      const members = Array.from({ length: n }, (_, i) => ({
        score: old,
        member: `cl_FAKE${String(i).padStart(21, "0")}`,
      }));
      for (let i = 0; i < members.length; i += 1000) {
        const [first, ...rest] = members.slice(i, i + 1000);
        await redis().zadd(key, first!, ...rest);
      }
      const result = await runStaleSweep({ ...env, PRESENCE_KEY: key }, Date.now());
      expect(result.overdue).toBe(n);
      counts.push(result.subrequests);
      await emptySweepQueue();
      await redis().del(key);
    }
    expect(counts).toEqual([2, 2]);
  });

  it("is one read and nothing else when no host is overdue (a skipped run catches up next time)", async () => {
    const key = `fd:test:presence:empty:${Date.now()}`;
    expect(await runStaleSweep({ ...env, PRESENCE_KEY: key }, Date.now())).toEqual({
      overdue: 0,
      subrequests: 1,
    });
  });
});
