import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createApp } from "../../workers/app.js";
import { ADMIN, api, createClient } from "./helpers.js";

describe("bad input at the edge", () => {
  it("answers an oversized body with 413 before parsing it", async () => {
    const client = await createClient();
    const huge = `{"clientId":"${client.id}","action":"exec","payload":{"x":"${"a".repeat(1_100_000)}"}}`;
    const res = await api("POST", "/api/commands", { token: ADMIN, body: huge });
    expect(res.status).toBe(413);
    expect(res.body.error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", retryable: false });
  });

  it("answers malformed JSON with 400 INVALID_JSON", async () => {
    const res = await api("POST", "/api/commands", { token: ADMIN, body: "{not json" });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: { code: "INVALID_JSON", message: "request body is not valid JSON", retryable: false },
    });
  });

  it("answers a body that is not JSON with 415", async () => {
    const res = await api("POST", "/api/commands", {
      token: ADMIN,
      body: "clientId=x",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
  });

  it("answers a schema violation with 422 and every failing path, unknown fields included", async () => {
    const client = await createClient();
    const res = await api("POST", "/api/commands", {
      token: ADMIN,
      body: { clientId: client.id, action: "Not Kebab", priority: 11, sneaky: true },
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("VALIDATION_FAILED");
    const paths = res.body.error.details.issues.map((i: { path: string[] }) => i.path.join("."));
    expect(paths).toEqual(expect.arrayContaining(["action", "priority"]));
    expect(res.body.error.details.issues.some((i: { code: string }) => i.code === "unrecognized_keys")).toBe(
      true,
    );
  });

  it("answers another client's command id with 404, and a command for an unknown client with 404", async () => {
    const res = await api("GET", "/api/commands/cmd_nonsense", { token: ADMIN });
    expect(res.status).toBe(404);
    const unknown = await api("POST", "/api/commands", {
      token: ADMIN,
      body: { clientId: "cl_01JZZZZZZZZZZZZZZZZZZZZZZZ", action: "exec" },
    });
    expect(unknown.status).toBe(404);
  });

  it("answers a malformed listing cursor with 422, not as if Postgres were down", async () => {
    const res = await api("GET", "/api/commands?cursor=not-a-cursor", { token: ADMIN });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("VALIDATION_FAILED");
  });

  it("creates a batch with each item's own outcome", async () => {
    const client = await createClient();
    const res = await api("POST", "/api/commands/batch", {
      token: ADMIN,
      body: {
        commands: [
          { clientId: client.id, action: "health-check" },
          { clientId: client.id, action: "BAD" },
          { clientId: "cl_01JZZZZZZZZZZZZZZZZZZZZZZZ", action: "exec" },
          { clientId: client.id, action: "exec", idempotencyKey: "b-1" },
        ],
      },
    });
    expect(res.status).toBe(200);
    expect(res.body.results.map((r: { status: number }) => r.status)).toEqual([201, 422, 404, 201]);
    expect(res.body.results[1].error.code).toBe("VALIDATION_FAILED");
  });

  it("rate-limits per token with 429 and Retry-After", async () => {
    const app = createApp();
    const limited = { ...env, RATE_LIMIT_PER_MINUTE: "3" };
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    const who = await api("POST", "/api/tokens", { token: ADMIN, body: { name: "rl", role: "viewer" } });
    for (let i = 0; i < 5; i++) {
      const ctx = createExecutionContext();
      const res = await app.fetch(
        new Request("http://fleetdeck.test/api/clients", {
          headers: { authorization: `Bearer ${who.body.token}` },
        }),
        limited,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      statuses.push(res.status);
      if (res.status === 429) {
        retryAfter = res.headers.get("retry-after");
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe("RATE_LIMITED");
      } else await res.text();
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThan(0);
  });

  it("sends CORS headers only for the configured origins", async () => {
    const app = createApp();
    const ctx = createExecutionContext();
    const preflight = await app.fetch(
      new Request("http://fleetdeck.test/api/clients", {
        method: "OPTIONS",
        headers: { origin: "https://ops.example", "access-control-request-method": "GET" },
      }),
      { ...env, CORS_ORIGINS: "https://ops.example" },
      ctx,
    );
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://ops.example");
    const none = await api("GET", "/api/clients", {
      token: ADMIN,
      headers: { origin: "https://ops.example" },
    });
    expect(none.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("API documentation", () => {
  it("serves an OpenAPI 3.1 document generated from the schemas", async () => {
    const res = await api("GET", "/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    for (const path of ["/api/commands", "/api/commands/{id}/result", "/api/clients", "/api/tokens"]) {
      expect(Object.keys(res.body.paths)).toContain(path);
    }
    const create = res.body.paths["/api/commands"].post;
    expect(create.requestBody.content["application/json"].schema.properties.priority).toMatchObject({
      maximum: 10,
    });
  });

  it("serves interactive docs at /docs", async () => {
    const res = await api("GET", "/docs");
    expect(res.status).toBe(200);
    expect(String(res.body)).toContain("/openapi.json");
  });
});
