import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ADMIN, api, createClient, createCommand, openStream, sleep } from "../test/workers/helpers.js";
import type { ClientHub } from "./client-hub.js";
import { openDatabase } from "./db.js";
import { settingsOf } from "./env.js";
import { hubFor } from "./hub-client.js";

function stubOf(clientId: string) {
  return env.CLIENT_HUB.get(env.CLIENT_HUB.idFromName(clientId));
}

/** Make every scheduled duty due now and run the alarm, as the runtime would later. */
async function fireDueAlarm(clientId: string, kinds: string[] = ["timeout", "expire", "outbox"]) {
  const stub = stubOf(clientId);
  await runInDurableObject(stub, async (_hub: ClientHub, state) => {
    for (const kind of kinds)
      state.storage.sql.exec("UPDATE schedule SET due_at = ? WHERE kind = ?", Date.now() - 1, kind);
    await state.storage.setAlarm(Date.now() - 1);
  });
  return runDurableObjectAlarm(stub);
}

describe("ClientHub dispatch over SSE", () => {
  it("pushes a new command to the connected agent at once", async () => {
    const client = await createClient();
    const stream = await openStream(client.id, client.key);
    expect(stream.status).toBe(200);
    const created = await createCommand(client.id, { action: "restart-process", payload: { name: "app" } });
    expect(created.status).toBe(201);
    const event = await stream.next();
    expect(event.event).toBe("command");
    expect(JSON.parse(event.data)).toMatchObject({
      id: created.body.id,
      action: "restart-process",
      payload: { name: "app" },
    });
    expect((await api("GET", `/api/commands/${created.body.id}`, { token: ADMIN })).body.status).toBe(
      "dispatched",
    );
    await stream.close();
  });

  it("queues while the agent is away and dispatches by priority, then age, when it connects", async () => {
    const client = await createClient();
    const low = await createCommand(client.id, { priority: 1 });
    const high = await createCommand(client.id, { priority: 9 });
    const mid1 = await createCommand(client.id, { priority: 5 });
    const mid2 = await createCommand(client.id, { priority: 5 });
    expect(low.body.status).toBe("pending");
    const stream = await openStream(client.id, client.key);
    const order = [];
    for (let i = 0; i < 4; i++) order.push(JSON.parse((await stream.next()).data).id);
    expect(order).toEqual([high.body.id, mid1.body.id, mid2.body.id, low.body.id]);
    await stream.close();
  });

  it("replays unacknowledged commands after reconnect, in order, once", async () => {
    const client = await createClient();
    const first = await openStream(client.id, client.key);
    const ids: string[] = [];
    const eventIds: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await createCommand(client.id)).body.id);
    for (let i = 0; i < 3; i++) eventIds.push((await first.next()).id!);
    expect(eventIds.map(Number)).toEqual([...eventIds.map(Number)].sort((a, b) => a - b));
    // The agent acknowledges the first, then loses its connection having seen all three.
    expect((await api("POST", `/api/commands/${ids[0]}/ack`, { token: client.key })).status).toBe(200);
    await first.close();
    // Two more arrive while it is away.
    for (let i = 0; i < 2; i++) ids.push((await createCommand(client.id)).body.id);

    // Resuming after the first event: the unacknowledged second and third, then the new ones.
    const resumed = await openStream(client.id, client.key, eventIds[0]);
    const replayed = [];
    for (let i = 0; i < 4; i++) replayed.push(JSON.parse((await resumed.next()).data).id);
    expect(replayed).toEqual(ids.slice(1));
    await expect(resumed.next(400)).rejects.toThrow(/no event/);
    await resumed.close();

    // A fresh connection (no Last-Event-ID) gets every unacknowledged command once.
    const fresh = await openStream(client.id, client.key);
    const again = [];
    for (let i = 0; i < 4; i++) again.push(JSON.parse((await fresh.next()).data).id);
    expect(again).toEqual(ids.slice(1));
    await expect(fresh.next(400)).rejects.toThrow(/no event/);
    await fresh.close();
  });

  it("sends a named heartbeat and a retry hint", async () => {
    const client = await createClient();
    const stream = await openStream(client.id, client.key);
    await sleep(500);
    expect(stream.received.some((e) => e.event === "heartbeat")).toBe(true);
    expect(stream.received.every((e) => e.event !== "heartbeat" || e.id === undefined)).toBe(true);
    await stream.close();
  });

  it("replaces the first agent stream with a second one", async () => {
    const client = await createClient();
    const first = await openStream(client.id, client.key);
    const second = await openStream(client.id, client.key);
    const created = await createCommand(client.id);
    expect(JSON.parse((await second.next()).data).id).toBe(created.body.id);
    await expect(first.next(300)).rejects.toThrow(/closed: true/);
    await second.close();
  });

  it("lets an operator watch a client's stream read-only without taking the agent's place", async () => {
    const client = await createClient();
    const agent = await openStream(client.id, client.key);
    const watcher = await openStream(client.id, ADMIN);
    expect(watcher.status).toBe(200);
    const created = await createCommand(client.id);
    expect(JSON.parse((await agent.next()).data).id).toBe(created.body.id);
    expect(JSON.parse((await watcher.next()).data).id).toBe(created.body.id);
    await agent.close();
    await watcher.close();
  });
});

describe("ClientHub lifecycle", () => {
  it("runs a command through ack and result, and answers a repeated result with the same body", async () => {
    const client = await createClient();
    const stream = await openStream(client.id, client.key);
    const { body: cmd } = await createCommand(client.id);
    await stream.next();
    const ack = await api("POST", `/api/commands/${cmd.id}/ack`, { token: client.key });
    expect(ack.body.status).toBe("running");
    const result = { success: true, data: { load: 0.3 }, durationMs: 12 };
    const first = await api("POST", `/api/commands/${cmd.id}/result`, { token: client.key, body: result });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ status: "completed", result });
    const again = await api("POST", `/api/commands/${cmd.id}/result`, { token: client.key, body: result });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    const other = await api("POST", `/api/commands/${cmd.id}/result`, {
      token: client.key,
      body: { success: false, durationMs: 1, error: { code: "X", message: "no" } },
    });
    expect(other.status).toBe(409);
    expect(other.body.error.details.current).toBe("completed");
    const logs = await api("GET", `/api/commands/${cmd.id}/logs`, { token: ADMIN });
    expect(logs.body.logs.map((l: { to: string }) => l.to)).toEqual([
      "pending",
      "dispatched",
      "running",
      "completed",
    ]);
    await stream.close();
  });

  it("times a command out by alarm and tells the agent to stop", async () => {
    const client = await createClient();
    const stream = await openStream(client.id, client.key);
    const { body: cmd } = await createCommand(client.id, { timeoutSec: 30 });
    await stream.next();
    await fireDueAlarm(client.id, ["timeout"]);
    expect((await api("GET", `/api/commands/${cmd.id}`, { token: ADMIN })).body.status).toBe("timed_out");
    const cancel = await stream.next();
    expect(cancel.event).toBe("cancel");
    expect(JSON.parse(cancel.data)).toMatchObject({ id: cmd.id, reason: "timed out" });
    // Retry brings it back with the next attempt, dispatched at once.
    const retried = await api("POST", `/api/commands/${cmd.id}/retry`, { token: ADMIN });
    expect(retried.body).toMatchObject({ status: "dispatched", attempt: 2 });
    expect(JSON.parse((await stream.next()).data)).toMatchObject({ id: cmd.id, attempt: 2 });
    await stream.close();
  });

  it("does not act twice when the alarm fires twice", async () => {
    const client = await createClient();
    const stream = await openStream(client.id, client.key);
    const { body: cmd } = await createCommand(client.id);
    await stream.next();
    await fireDueAlarm(client.id, ["timeout"]);
    await fireDueAlarm(client.id, ["timeout"]);
    await runDurableObjectAlarm(stubOf(client.id));
    const logs = await api("GET", `/api/commands/${cmd.id}/logs`, { token: ADMIN });
    expect(logs.body.logs.filter((l: { to: string }) => l.to === "timed_out")).toHaveLength(1);
    expect((await stream.next()).event).toBe("cancel");
    await expect(stream.next(300)).rejects.toThrow(/no event/);
    await stream.close();
  });

  it("expires a queued command whose deadline passes before delivery", async () => {
    const client = await createClient();
    const { body: cmd } = await createCommand(client.id, { ttlSec: 60 });
    expect(cmd.deadline).toBeGreaterThan(Date.now());
    await fireDueAlarm(client.id, ["expire"]);
    expect((await api("GET", `/api/commands/${cmd.id}`, { token: ADMIN })).body.status).toBe("expired");
    // It is never delivered afterwards.
    const stream = await openStream(client.id, client.key);
    await expect(stream.next(300)).rejects.toThrow(/no event/);
    await stream.close();
  });

  it("cancels a queued command, and a running one with a cancel event", async () => {
    const client = await createClient();
    const queued = (await createCommand(client.id)).body;
    expect((await api("POST", `/api/commands/${queued.id}/cancel`, { token: ADMIN })).body.status).toBe(
      "canceled",
    );
    const stream = await openStream(client.id, client.key);
    const running = (await createCommand(client.id)).body;
    expect(JSON.parse((await stream.next()).data).id).toBe(running.id);
    await api("POST", `/api/commands/${running.id}/ack`, { token: client.key });
    const canceled = await api("POST", `/api/commands/${running.id}/cancel`, { token: ADMIN });
    expect(canceled.body.status).toBe("canceled");
    const event = await stream.next();
    expect(event.event).toBe("cancel");
    expect(JSON.parse(event.data).id).toBe(running.id);
    const again = await api("POST", `/api/commands/${running.id}/cancel`, { token: ADMIN });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: "INVALID_TRANSITION", details: { current: "canceled" } });
    await stream.close();
  });

  it("replaces an older queued command with the same coalesceKey", async () => {
    const client = await createClient();
    const older = (await createCommand(client.id, { coalesceKey: "sync-config" })).body;
    const newer = (await createCommand(client.id, { coalesceKey: "sync-config" })).body;
    const olderNow = (await api("GET", `/api/commands/${older.id}`, { token: ADMIN })).body;
    expect(olderNow.status).toBe("canceled");
    const logs = (await api("GET", `/api/commands/${older.id}/logs`, { token: ADMIN })).body.logs;
    expect(logs.at(-1).cause).toBe(`coalesced into ${newer.id}`);
    expect(newer.status).toBe("pending");
  });

  it("answers a repeated Idempotency-Key with the original, and refuses it with another body", async () => {
    const client = await createClient();
    const key = { "idempotency-key": "create-42" };
    const first = await createCommand(client.id, { payload: { n: 1 } }, key);
    const second = await createCommand(client.id, { payload: { n: 1 } }, key);
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    const other = await createCommand(client.id, { payload: { n: 2 } }, key);
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe("IDEMPOTENCY_KEY_REUSED");
    const list = await api("GET", `/api/commands?clientId=${client.id}`, { token: ADMIN });
    expect(list.body.commands).toHaveLength(1);
  });

  it("keeps its queue and resumes streams after the object is evicted", async () => {
    const client = await createClient();
    const stream = await openStream(client.id, client.key);
    const a = (await createCommand(client.id)).body;
    const firstEvent = await stream.next();
    await stream.close();
    const b = (await createCommand(client.id)).body;
    await evictDurableObject(stubOf(client.id));
    const resumed = await openStream(client.id, client.key, firstEvent.id);
    expect(JSON.parse((await resumed.next()).data).id).toBe(b.id);
    await resumed.close();
    expect((await api("GET", `/api/commands/${a.id}`, { token: ADMIN })).body.status).toBe("dispatched");
  });

  it("serialises concurrent requests, including those that arrive during initialisation", async () => {
    const client = await createClient();
    await evictDurableObject(stubOf(client.id));
    const created = await Promise.all(Array.from({ length: 20 }, () => createCommand(client.id)));
    expect(created.every((r) => r.status === 201)).toBe(true);
    expect(new Set(created.map((r) => r.body.id)).size).toBe(20);
    const stream = await openStream(client.id, client.key);
    const seqs = [];
    for (let i = 0; i < 20; i++) seqs.push(Number((await stream.next()).id));
    expect(new Set(seqs).size).toBe(20);
    await stream.close();
  });
});

describe("ClientHub outbox", () => {
  it("drains commands and their logs to Postgres by alarm, idempotently", async () => {
    const client = await createClient();
    const stream = await openStream(client.id, client.key);
    const { body: cmd } = await createCommand(client.id);
    await stream.next();
    await api("POST", `/api/commands/${cmd.id}/ack`, { token: client.key });
    await api("POST", `/api/commands/${cmd.id}/result`, {
      token: client.key,
      body: { success: true, durationMs: 3 },
    });
    await stream.close();
    await fireDueAlarm(client.id, ["outbox"]);
    // Replaying the same rows (as after a crash before they were deleted) changes nothing.
    await fireDueAlarm(client.id, ["outbox"]);
    const handle = openDatabase(settingsOf(env));
    try {
      const { rows } = await handle.pool.query("select status, version from commands where id = $1", [
        cmd.id,
      ]);
      expect(rows).toEqual([{ status: "completed", version: 4 }]);
      const logs = await handle.pool.query(
        "select to_status from command_logs where command_id = $1 order by seq",
        [cmd.id],
      );
      expect(logs.rows.map((r) => r.to_status)).toEqual(["pending", "dispatched", "running", "completed"]);
    } finally {
      await handle.close();
    }
    const left = await runInDurableObject(
      stubOf(client.id),
      (_hub: ClientHub, state) =>
        state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n,
    );
    expect(left).toBe(0);
  });

  it("refuses a key after rotation, at once", async () => {
    const client = await createClient();
    const rotated = await api("POST", `/api/clients/${client.id}/rotate-key`, { token: ADMIN });
    expect(rotated.status).toBe(200);
    expect((await api("GET", `/api/clients/${client.id}`, { token: client.key })).status).toBe(401);
    expect((await api("GET", `/api/clients/${client.id}`, { token: rotated.body.clientKey })).status).toBe(
      200,
    );
    expect(await hubFor(env, client.id).verifyKey("0".repeat(64))).toBe(false);
  });
});
