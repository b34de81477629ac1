import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "../support/http.js";
import { startTestCloud, type TestCloud } from "../support/local-cloud.js";
import { connectSse } from "../support/sse-client.js";

let cloud: TestCloud;
let db: pg.Client;

beforeAll(async () => {
  cloud = await startTestCloud({ SSE_HEARTBEAT_MS: "1000" });
  db = new pg.Client({ connectionString: cloud.database.url });
  await db.connect();
}, 120_000);

afterAll(async () => {
  await db?.end();
  await cloud?.stop();
});

const admin = () => cloud.adminToken;
const api = (method: string, path: string, token?: string, body?: unknown) =>
  call(cloud.workerUrl, method, path, token, body);

async function newClient() {
  const res = await api("POST", "/api/clients", admin(), { name: "e2e-host", tags: ["e2e"] });
  expect(res.status).toBe(201);
  return { id: res.body.id as string, key: res.body.clientKey as string };
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("the command plane under wrangler dev, with real Postgres and Redis", () => {
  it("runs the whole lifecycle and lands every transition in Postgres", async () => {
    const client = await newClient();
    const stream = await connectSse(`${cloud.workerUrl}/api/events/${client.id}`, client.key);
    expect(stream.status).toBe(200);
    const created = await api("POST", "/api/commands", admin(), {
      clientId: client.id,
      action: "print",
      payload: { file: "report.pdf", copies: 2 },
    });
    expect(created.status).toBe(201);
    const event = await stream.next();
    expect(event.event).toBe("command");
    const delivered = JSON.parse(event.data);
    expect(delivered).toMatchObject({ id: created.body.id, action: "print", payload: { copies: 2 } });
    expect((await api("POST", `/api/commands/${delivered.id}/ack`, client.key)).body.status).toBe("running");
    const result = { success: true, data: { jobId: "lp-17" }, durationMs: 40 };
    expect((await api("POST", `/api/commands/${delivered.id}/result`, client.key, result)).body.status).toBe(
      "completed",
    );
    const read = await api("GET", `/api/commands/${delivered.id}`, admin());
    expect(read.body).toMatchObject({ status: "completed", result });
    stream.close();

    const rows = await waitFor(async () => {
      const r = await db.query("select to_status from command_logs where command_id = $1 order by seq", [
        delivered.id,
      ]);
      return r.rows.length === 4 ? r.rows.map((x) => x.to_status) : undefined;
    });
    expect(rows).toEqual(["pending", "dispatched", "running", "completed"]);
    const { rows: cmd } = await db.query("select status, result from commands where id = $1", [delivered.id]);
    expect(cmd[0]).toEqual({ status: "completed", result });
    // The fleet-wide listing (from Postgres) shows it too.
    const listed = await api("GET", "/api/commands?status=completed", admin());
    expect(listed.body.commands.map((c: { id: string }) => c.id)).toContain(delivered.id);
  });

  it("delivers what an agent missed while disconnected when it resumes with Last-Event-ID", async () => {
    const client = await newClient();
    const first = await connectSse(`${cloud.workerUrl}/api/events/${client.id}`, client.key);
    const a = (await api("POST", "/api/commands", admin(), { clientId: client.id, action: "exec" })).body.id;
    const seen = await first.next();
    await api("POST", `/api/commands/${a}/ack`, client.key);
    first.close();
    await first.closed;
    const missed = [];
    for (let i = 0; i < 3; i++) {
      missed.push(
        (await api("POST", "/api/commands", admin(), { clientId: client.id, action: "exec" })).body.id,
      );
    }
    const resumed = await connectSse(`${cloud.workerUrl}/api/events/${client.id}`, client.key, {
      lastEventId: seen.id!,
    });
    const got = [];
    for (let i = 0; i < 3; i++) got.push(JSON.parse((await resumed.next()).data).id);
    expect(got).toEqual(missed);
    await expect(resumed.next(1500)).rejects.toThrow(/no event/);
    resumed.close();
  });

  it("times a command out by the hub's own alarm, and retries it", async () => {
    const client = await newClient();
    const stream = await connectSse(`${cloud.workerUrl}/api/events/${client.id}`, client.key);
    const id = (
      await api("POST", "/api/commands", admin(), { clientId: client.id, action: "exec", timeoutSec: 1 })
    ).body.id;
    await stream.next();
    const cancel = await stream.next(5000);
    expect(cancel.event).toBe("cancel");
    expect((await api("GET", `/api/commands/${id}`, admin())).body.status).toBe("timed_out");
    const retried = await api("POST", `/api/commands/${id}/retry`, admin());
    expect(retried.body).toMatchObject({ attempt: 2, status: "dispatched" });
    expect(JSON.parse((await stream.next()).data)).toMatchObject({ id, attempt: 2 });
    stream.close();
  });

  it("cancels a queued command and a running one", async () => {
    const client = await newClient();
    const queued = (await api("POST", "/api/commands", admin(), { clientId: client.id, action: "exec" })).body
      .id;
    expect((await api("POST", `/api/commands/${queued}/cancel`, admin())).body.status).toBe("canceled");
    const stream = await connectSse(`${cloud.workerUrl}/api/events/${client.id}`, client.key);
    const running = (await api("POST", "/api/commands", admin(), { clientId: client.id, action: "exec" }))
      .body.id;
    expect(JSON.parse((await stream.next()).data).id).toBe(running);
    await api("POST", `/api/commands/${running}/ack`, client.key);
    expect((await api("POST", `/api/commands/${running}/cancel`, admin())).body.status).toBe("canceled");
    const event = await stream.next();
    expect([event.event, JSON.parse(event.data).id]).toEqual(["cancel", running]);
    // The canceled command was never delivered.
    expect(
      stream.received.filter((e) => e.event === "command").map((e) => JSON.parse(e.data).id),
    ).not.toContain(queued);
    stream.close();
  });
});
