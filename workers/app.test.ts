import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type ClientHub, HUB_SCHEMA_VERSION } from "./client-hub.js";

const worker = (exports as unknown as { default: Fetcher }).default;

describe("the Worker", () => {
  it("answers liveness without touching any dependency", async () => {
    const res = await worker.fetch("http://fleetdeck.test/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("is ready when Postgres (through the Neon driver) and Redis (through REST) answer", async () => {
    const res = await worker.fetch("http://fleetdeck.test/readyz");
    const body = (await res.json()) as {
      status: string;
      checks: Record<string, { ok: boolean; latencyMs: number }>;
    };
    expect(body.checks.postgres?.ok).toBe(true);
    expect(body.checks.redis?.ok).toBe(true);
    expect(res.status).toBe(200);
    expect(body.status).toBe("ready");
    expect(body.checks.postgres!.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it("answers an unknown path with the JSON error shape, not HTML", async () => {
    const res = await worker.fetch("http://fleetdeck.test/nope");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toContain("application/json");
    expect(await res.json()).toEqual({
      error: { code: "NOT_FOUND", message: "no route for GET /nope", retryable: false },
    });
  });
});

describe("ClientHub storage", () => {
  it("applies its schema once, before serving, and keeps it across requests", async () => {
    const stub = env.CLIENT_HUB.get(env.CLIENT_HUB.idFromName("hub-schema"));
    const first = (await (await stub.fetch("http://hub/status")).json()) as {
      status: string;
      schemaVersion: number;
    };
    expect(first).toMatchObject({ status: "ready", schemaVersion: HUB_SCHEMA_VERSION });
    const tables = await runInDurableObject(stub, (_hub: ClientHub, state) =>
      state.storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .toArray(),
    );
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(["_schema", "meta", "schedule"]));
  });

  it("does each due duty once when the alarm fires twice", async () => {
    const stub = env.CLIENT_HUB.get(env.CLIENT_HUB.idFromName("hub-alarm"));
    await runInDurableObject(stub, async (_hub: ClientHub, state) => {
      state.storage.sql.exec(
        "INSERT INTO schedule (kind, ref, due_at) VALUES ('probe', 'a', ?)",
        Date.now() - 1,
      );
      await state.storage.setAlarm(Date.now() - 1);
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    // Nothing is left to do, so a second firing finds no alarm and changes nothing.
    expect(await runDurableObjectAlarm(stub)).toBe(false);
    const left = await runInDurableObject(
      stub,
      (_hub: ClientHub, state) =>
        state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM schedule").one().n,
    );
    expect(left).toBe(0);
  });
});
