import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ClientHub } from "../../workers/client-hub.js";
import { ADMIN, api, createClient, createCommand, openFeed, openStream } from "./helpers.js";

function stubOf(clientId: string) {
  return env.CLIENT_HUB.get(env.CLIENT_HUB.idFromName(clientId));
}

/** Move the host's last heartbeat `ms` into the past and run its due alarm: a controlled clock. */
async function ageHost(clientId: string, ms: number) {
  const stub = stubOf(clientId);
  await runInDurableObject(stub, async (_hub: ClientHub, state) => {
    const row = state.storage.sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'liveness'")
      .one();
    const liveness = JSON.parse(row.value);
    liveness.lastSeen -= ms;
    state.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'liveness'", JSON.stringify(liveness));
    state.storage.sql.exec(
      "UPDATE schedule SET due_at = ? WHERE kind IN ('liveness', 'feed')",
      Date.now() - 1,
    );
    await state.storage.setAlarm(Date.now() - 1);
  });
  await runDurableObjectAlarm(stub);
}

async function deliverFeed(clientId: string) {
  const stub = stubOf(clientId);
  await runInDurableObject(stub, async (_hub: ClientHub, state) => {
    state.storage.sql.exec("UPDATE schedule SET due_at = ? WHERE kind = 'feed'", Date.now() - 1);
    await state.storage.setAlarm(Date.now() - 1);
  });
  await runDurableObjectAlarm(stub);
}

const heartbeat = (key: string) =>
  api("POST", "/api/heartbeat", { token: key, body: { agentVersion: "0.1.0", cpuPercent: 3 } });

describe("host liveness and the fleet stream", () => {
  it("publishes host.online, host.suspect and host.stale with evidence, then host.online again", async () => {
    const client = await createClient();
    const feed = await openFeed(ADMIN, "host.*");
    expect(feed.status).toBe(200);

    expect((await heartbeat(client.key)).status).toBe(200);
    await deliverFeed(client.id);
    const online = await feed.next();
    expect(online.event).toBe("host.online");
    expect(JSON.parse(online.data)).toMatchObject({ topic: "host.online", clientId: client.id });
    expect((await api("GET", `/api/hosts/${client.id}`, { token: ADMIN })).body).toMatchObject({
      status: "online",
      agentVersion: "0.1.0",
    });

    // The agent's stream closes: suspect.
    const agent = await openStream(client.id, client.key);
    await agent.close();
    await expect
      .poll(async () => (await api("GET", `/api/hosts/${client.id}`, { token: ADMIN })).body.status)
      .toBe("suspect");
    await deliverFeed(client.id);
    expect((await feed.next()).event).toBe("host.suspect");

    // Past the threshold (15 s) with no heartbeat: stale, with the evidence.
    await ageHost(client.id, 16_000);
    const stale = await feed.next();
    expect(stale.event).toBe("host.stale");
    const evidence = JSON.parse(stale.data).data;
    expect(evidence.status).toBe("offline");
    expect(evidence.thresholdSec).toBe(15);
    expect(evidence.lastHeartbeatAt).toBeLessThan(Date.now() - 15_000);
    expect(evidence.lastStreamCloseAt).toBeGreaterThan(0);
    expect((await api("GET", `/api/hosts/${client.id}`, { token: ADMIN })).body.status).toBe("offline");

    await heartbeat(client.key);
    await deliverFeed(client.id);
    expect((await feed.next()).event).toBe("host.online");
    await feed.close();
  });

  it("keeps one ordered timeline per host: connectivity and command transitions", async () => {
    const client = await createClient();
    await heartbeat(client.key);
    const cmd = (await createCommand(client.id)).body;
    await api("POST", `/api/commands/${cmd.id}/cancel`, { token: ADMIN });
    const page = await api("GET", `/api/hosts/${client.id}/timeline?limit=10`, { token: ADMIN });
    const kinds = page.body.entries.map(
      (e: { kind: string; data: { to: string } }) => `${e.kind}:${e.data.to}`,
    );
    expect(kinds).toEqual(["command:canceled", "command:pending", "connectivity:online"]);
    const older = await api(
      "GET",
      `/api/hosts/${client.id}/timeline?limit=1&cursor=${page.body.entries[0].seq}`,
      { token: ADMIN },
    );
    expect(older.body.entries[0].data.to).toBe("pending");
    expect(
      (await api("GET", `/api/hosts/${client.id}/timeline`, { token: (await createClient()).key })).status,
    ).toBe(404);
  });

  it("filters the stream by topic and resumes after Last-Event-ID without gap or duplicate", async () => {
    const client = await createClient();
    const commandsOnly = await openFeed(ADMIN, "command.canceled");
    await heartbeat(client.key);
    const a = (await createCommand(client.id)).body;
    await api("POST", `/api/commands/${a.id}/cancel`, { token: ADMIN });
    await deliverFeed(client.id);
    const first = await commandsOnly.next();
    expect(first.event).toBe("command.canceled");
    expect(JSON.parse(first.data).data.commandId).toBe(a.id);
    await commandsOnly.close();

    const b = (await createCommand(client.id)).body;
    await api("POST", `/api/commands/${b.id}/cancel`, { token: ADMIN });
    await deliverFeed(client.id);
    const resumed = await openFeed(ADMIN, "command.*", first.id);
    const next = await resumed.next();
    expect(JSON.parse(next.data).data.commandId).toBe(b.id);
    await expect(resumed.next(300)).rejects.toThrow(/no event/);
    await resumed.close();
    expect((await api("GET", "/api/stream?topics=bad topic", { token: ADMIN })).status).toBe(422);
    expect((await api("GET", "/api/stream", { token: client.key })).status).toBe(403);
  });

  it("lists hosts from Postgres with their status once the outbox drains", async () => {
    const client = await createClient("listed");
    await heartbeat(client.key);
    const stub = stubOf(client.id);
    await runInDurableObject(stub, async (_hub: ClientHub, state) => {
      state.storage.sql.exec("UPDATE schedule SET due_at = ? WHERE kind = 'outbox'", Date.now() - 1);
      await state.storage.setAlarm(Date.now() - 1);
    });
    await runDurableObjectAlarm(stub);
    const list = await api("GET", "/api/hosts?status=online&limit=500", { token: ADMIN });
    const mine = list.body.hosts.find((h: { clientId: string }) => h.clientId === client.id);
    expect(mine).toMatchObject({ status: "online", name: "listed", agentVersion: "0.1.0" });
  });

  it("takes a host's own stale threshold", async () => {
    const client = await createClient();
    await heartbeat(client.key);
    const set = await api("PUT", `/api/hosts/${client.id}/settings`, {
      token: ADMIN,
      body: { staleThresholdSec: 60 },
    });
    expect(set.status).toBe(200);
    expect(set.body.staleThresholdSec).toBe(60);
    // 20 s of silence: stale under the default 15 s; under this host's 60 s not even suspect (30 s).
    await ageHost(client.id, 20_000);
    expect((await api("GET", `/api/hosts/${client.id}`, { token: ADMIN })).body.status).toBe("online");
    const back = await api("PUT", `/api/hosts/${client.id}/settings`, {
      token: ADMIN,
      body: { staleThresholdSec: null },
    });
    expect(back.body).toMatchObject({ staleThresholdSec: 15, status: "offline" });
    expect(
      (
        await api("PUT", `/api/hosts/${client.id}/settings`, {
          token: client.key,
          body: { staleThresholdSec: 5 },
        })
      ).status,
    ).toBe(403);
  });

  it("turns device status changes carried by heartbeats into device.online and device.offline events", async () => {
    const client = await createClient();
    const feed = await openFeed(ADMIN, "device.*");
    const beat = (status: string) =>
      api("POST", "/api/heartbeat", {
        token: client.key,
        body: { agentVersion: "1", devices: [{ id: "lamp-1", status, at: Date.now() }] },
      });
    await beat("online");
    await beat("online");
    await beat("offline");
    await deliverFeed(client.id);
    const first = await feed.next();
    const second = await feed.next();
    expect([first.event, second.event]).toEqual(["device.online", "device.offline"]);
    expect(JSON.parse(second.data).data).toMatchObject({ deviceId: "lamp-1", reported: "offline" });
    await expect(feed.next(300)).rejects.toThrow(/no event/);
    await feed.close();
  });
});
