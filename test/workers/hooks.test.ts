import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { signStandardWebhook } from "../../workers/subscriber-delivery.js";
import { ADMIN, api, createClient } from "./helpers.js";

const worker = (exports as unknown as { default: Fetcher }).default;

async function newHook(clientId: string) {
  const res = await api("POST", "/api/hooks", {
    token: ADMIN,
    body: {
      name: "alertmanager",
      template: {
        clientId,
        action: "restart-process",
        payload: { name: "{{alert.labels.service}}" },
        priority: "{{alert.priority}}",
      },
    },
  });
  expect(res.status).toBe(201);
  return res.body as { id: string; secret: string };
}

async function post(hookId: string, body: string, headers: Record<string, string>) {
  const res = await worker.fetch(`http://fleetdeck.test/api/hooks/${hookId}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function signed(secret: string, id: string, body: string, ts = Math.floor(Date.now() / 1000)) {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(ts),
    "webhook-signature": await signStandardWebhook(secret, id, ts, body),
  };
}

async function count(clientId: string) {
  return (await api("GET", `/api/commands?clientId=${clientId}`, { token: ADMIN })).body.commands.length;
}

describe("inbound webhooks (Standard Webhooks)", () => {
  it("turns a signed payload into the command its rule's template makes", async () => {
    const client = await createClient();
    const hook = await newHook(client.id);
    const body = JSON.stringify({ alert: { labels: { service: "kiosk" }, priority: 9 } });
    const res = await post(hook.id, body, await signed(hook.secret, "evt-1", body));
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      clientId: client.id,
      action: "restart-process",
      payload: { name: "kiosk" },
      priority: 9,
    });
    const listed = await api("GET", "/api/hooks", { token: ADMIN });
    expect(listed.body.hooks.find((h: { id: string }) => h.id === hook.id).secret).toBeUndefined();
  });

  it("refuses a wrong secret, a stale or future timestamp, a tampered body and a replay with 401, creating nothing more", async () => {
    const client = await createClient();
    const hook = await newHook(client.id);
    const body = JSON.stringify({ alert: { labels: { service: "kiosk" }, priority: 1 } });
    const now = Math.floor(Date.now() / 1000);
    const wrongSecret = `whsec_${btoa("not the right secret 123")}`;
    const cases: [string, Record<string, string>, string][] = [
      ["wrong secret", await signed(wrongSecret, "w1", body), body],
      ["six minutes old", await signed(hook.secret, "w2", body, now - 360), body],
      ["six minutes ahead", await signed(hook.secret, "w3", body, now + 360), body],
      ["tampered body", await signed(hook.secret, "w4", body), body.replace("kiosk", "sshd")],
      ["no signature", { "webhook-id": "w5", "webhook-timestamp": String(now) }, body],
    ];
    for (const [name, headers, sent] of cases) {
      const res = await post(hook.id, sent, headers);
      expect(res.status, name).toBe(401);
      expect(res.body.error.code, name).toBe("UNAUTHORIZED");
    }
    expect(await count(client.id)).toBe(0);
    const first = await signed(hook.secret, "once", body);
    expect((await post(hook.id, body, first)).status).toBe(201);
    expect((await post(hook.id, body, first)).status).toBe(401);
    expect(await count(client.id)).toBe(1);
  });

  it("answers an unknown hook with 404 and a template the payload cannot fill with 422", async () => {
    const client = await createClient();
    const hook = await newHook(client.id);
    expect((await post("hook_nope", "{}", await signed(hook.secret, "x", "{}"))).status).toBe(404);
    const body = JSON.stringify({ unrelated: true });
    const res = await post(hook.id, body, await signed(hook.secret, "t1", body));
    expect(res.status).toBe(422);
    expect(res.body.error.message).toMatch(/payload has no alert/);
  });
});
