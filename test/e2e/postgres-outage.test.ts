import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../dev/local-cloud.js";
import { call } from "../support/http.js";
import { startTestCloud, type TestCloud } from "../support/local-cloud.js";
import { createPrivatePostgres, type PrivatePostgres } from "../support/private-postgres.js";
import { connectSse } from "../support/sse-client.js";

let postgres: PrivatePostgres;
let cloud: TestCloud;

beforeAll(async () => {
  postgres = createPrivatePostgres(await freePort());
  postgres.start();
  cloud = await startTestCloud({}, postgres.url);
}, 120_000);

afterAll(async () => {
  await cloud?.stop();
  postgres?.destroy();
});

describe("Postgres stopped while commands are created and dispatched", () => {
  it("keeps dispatching from Durable Object storage and loses nothing when Postgres returns", async () => {
    const api = (method: string, path: string, token?: string, body?: unknown) =>
      call(cloud.workerUrl, method, path, token, body);
    const created = await api("POST", "/api/clients", cloud.adminToken, { name: "outage" });
    const client = { id: created.body.id as string, key: created.body.clientKey as string };
    const stream = await connectSse(`${cloud.workerUrl}/api/events/${client.id}`, client.key);

    postgres.stop();
    const ready = await api("GET", "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body.error.details.failed).toEqual(["postgres"]);

    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await api("POST", "/api/commands", cloud.adminToken, {
        clientId: client.id,
        action: "exec",
        payload: { i },
      });
      expect(res.status).toBe(201);
      ids.push(res.body.id);
    }
    for (const id of ids) {
      const event = await stream.next();
      expect(JSON.parse(event.data).id).toBe(id);
      expect((await api("POST", `/api/commands/${id}/ack`, client.key)).status).toBe(200);
      const done = await api("POST", `/api/commands/${id}/result`, client.key, {
        success: true,
        durationMs: 1,
      });
      expect(done.body.status).toBe("completed");
    }
    stream.close();
    // The audit copy really was blocked: the outbox tried and failed while Postgres was down.
    await expect
      .poll(() => cloud.workerLog.some((l) => l.includes("outbox drain failed")), { timeout: 10_000 })
      .toBe(true);

    postgres.start();
    const db = new pg.Client({ connectionString: cloud.database.url });
    await db.connect();
    try {
      const until = Date.now() + 60_000;
      let commands = 0;
      let logs = 0;
      while (Date.now() < until) {
        commands = (
          await db.query(
            "select count(*)::int as n from commands where client_id = $1 and status = 'completed'",
            [client.id],
          )
        ).rows[0].n;
        logs = (
          await db.query("select count(*)::int as n from command_logs where command_id = any($1)", [ids])
        ).rows[0].n;
        if (commands === 10 && logs === 40) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(commands).toBe(10);
      expect(logs).toBe(40);
    } finally {
      await db.end();
    }
  });
});
