import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { openDatabase } from "../../workers/db.js";
import { settingsOf } from "../../workers/env.js";
import { ADMIN, api, createClient, openFeed, runHubAlarm } from "./helpers.js";

describe("sessions through the API", () => {
  it("moves a session through its lifecycle, publishes its events and keeps its history", async () => {
    const client = await createClient();
    const feed = await openFeed(ADMIN, "session.*");
    const created = await api("POST", "/api/sessions", {
      token: ADMIN,
      body: { clientId: client.id, name: "kiosk", spec: { image: "kiosk:1" } },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: "pending", name: "kiosk", clientId: client.id });
    const id = created.body.id;
    // The host's own agent moves it.
    for (const to of ["starting", "running", "stopping"]) {
      const moved = await api("POST", `/api/sessions/${id}/transition`, { token: client.key, body: { to } });
      expect(moved.status).toBe(200);
      expect(moved.body.status).toBe(to);
    }
    const stopped = await api("POST", `/api/sessions/${id}/transition`, {
      token: ADMIN,
      body: { to: "stopped", exitCode: 0 },
    });
    expect(stopped.body).toMatchObject({ status: "stopped", exitCode: 0 });
    expect(stopped.body.startedAt).toBeGreaterThan(0);
    expect(stopped.body.endedAt).toBeGreaterThanOrEqual(stopped.body.startedAt);

    const again = await api("POST", `/api/sessions/${id}/transition`, {
      token: ADMIN,
      body: { to: "running" },
    });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({
      code: "INVALID_TRANSITION",
      retryable: false,
      details: { current: "stopped" },
    });

    const read = await api("GET", `/api/sessions/${id}`, { token: ADMIN });
    expect(read.body.history.map((h: { to: string }) => h.to)).toEqual([
      "pending",
      "starting",
      "running",
      "stopping",
      "stopped",
    ]);

    await runHubAlarm(client.id, ["feed"]);
    const topics = [];
    for (let i = 0; i < 3; i++) topics.push((await feed.next()).event);
    expect(topics).toEqual(["session.starting", "session.running", "session.stopped"]);
    await feed.close();
  });

  it("lets any non-terminal session crash, and refuses skipping a step", async () => {
    const client = await createClient();
    const id = (
      await api("POST", "/api/sessions", { token: ADMIN, body: { clientId: client.id, name: "w", spec: {} } })
    ).body.id;
    expect(
      (await api("POST", `/api/sessions/${id}/transition`, { token: ADMIN, body: { to: "running" } })).status,
    ).toBe(409);
    const crashed = await api("POST", `/api/sessions/${id}/transition`, {
      token: ADMIN,
      body: { to: "crashed", exitCode: 137, reason: "oom" },
    });
    expect(crashed.body).toMatchObject({ status: "crashed", exitCode: 137 });
    expect(
      (await api("POST", `/api/sessions/${id}/transition`, { token: ADMIN, body: { to: "bogus" } })).status,
    ).toBe(422);
  });

  it("keeps another client's sessions out of reach, and lands sessions in Postgres", async () => {
    const a = await createClient();
    const b = await createClient();
    const id = (
      await api("POST", "/api/sessions", { token: ADMIN, body: { clientId: a.id, name: "mine", spec: {} } })
    ).body.id;
    expect((await api("GET", `/api/sessions/${id}`, { token: b.key })).status).toBe(404);
    expect(
      (await api("POST", `/api/sessions/${id}/transition`, { token: b.key, body: { to: "starting" } }))
        .status,
    ).toBe(404);
    expect(
      (await api("POST", "/api/sessions", { token: b.key, body: { clientId: a.id, name: "x", spec: {} } }))
        .status,
    ).toBe(404);
    const listed = await api("GET", `/api/sessions?clientId=${a.id}&status=pending`, { token: ADMIN });
    expect(listed.body.sessions.map((s: { id: string }) => s.id)).toEqual([id]);
    await runHubAlarm(a.id, ["outbox"]);
    const handle = openDatabase(settingsOf(env));
    try {
      const { rows } = await handle.pool.query("select status from sessions where id = $1", [id]);
      expect(rows).toEqual([{ status: "pending" }]);
      const events = await handle.pool.query("select to_status from session_events where session_id = $1", [
        id,
      ]);
      expect(events.rows).toEqual([{ to_status: "pending" }]);
    } finally {
      await handle.close();
    }
  });
});
