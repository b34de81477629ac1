import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { signDelivery } from "../../dev/qstash-signing.js";
import { ADMIN, api, createClient } from "./helpers.js";

const worker = (exports as unknown as { default: Fetcher }).default;
const URL_ = "http://fleetdeck.test/api/webhooks/qstash";
const CURRENT = "sig_test_current_key";
const NEXT = "sig_test_next_key";

function deliver(body: string, signature: string | undefined, messageId = "msg_1") {
  return worker.fetch(URL_, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "upstash-message-id": messageId,
      ...(signature ? { "upstash-signature": signature } : {}),
    },
    body,
  });
}

async function count(clientId: string): Promise<number> {
  return (await api("GET", `/api/commands?clientId=${clientId}`, { token: ADMIN })).body.commands.length;
}

describe("POST /api/webhooks/qstash", () => {
  it("creates the command a correctly signed message names, with the current or the next key", async () => {
    const client = await createClient();
    const body = JSON.stringify({ clientId: client.id, action: "health-check" });
    const res = await deliver(
      body,
      signDelivery(CURRENT, { url: URL_, body, messageId: "m-current" }),
      "m-current",
    );
    expect(res.status).toBe(201);
    const viaNext = await deliver(
      body,
      signDelivery(NEXT, { url: URL_, body, messageId: "m-next" }),
      "m-next",
    );
    expect(viaNext.status).toBe(201);
    expect(await count(client.id)).toBe(2);
  });

  it("answers a QStash retry of the same message (new signature) with the command it already created", async () => {
    const client = await createClient();
    const body = JSON.stringify({ clientId: client.id, action: "health-check" });
    const first = await deliver(
      body,
      signDelivery(CURRENT, { url: URL_, body, messageId: "m-retry" }),
      "m-retry",
    );
    const retry = await deliver(
      body,
      signDelivery(CURRENT, {
        url: URL_,
        body,
        messageId: "m-retry",
        now: Math.floor(Date.now() / 1000) - 1,
      }),
      "m-retry",
    );
    expect(first.status).toBe(201);
    expect(retry.status).toBe(200);
    expect(((await retry.json()) as { id: string }).id).toBe(((await first.json()) as { id: string }).id);
    expect(await count(client.id)).toBe(1);
  });

  it("refuses every bad signature with 401 and creates nothing", async () => {
    const client = await createClient();
    const body = JSON.stringify({ clientId: client.id, action: "health-check" });
    const now = Math.floor(Date.now() / 1000);
    const cases: Record<string, { sig: string | undefined; body?: string }> = {
      "missing signature": { sig: undefined },
      "wrong key": { sig: signDelivery("sig_attacker_key", { url: URL_, body, messageId: "x1" }) },
      expired: { sig: signDelivery(CURRENT, { url: URL_, body, messageId: "x2", now: now - 3600 }) },
      "not yet valid": { sig: signDelivery(CURRENT, { url: URL_, body, messageId: "x3", now: now + 3600 }) },
      "wrong URL": {
        sig: signDelivery(CURRENT, {
          url: "http://elsewhere.test/api/webhooks/qstash",
          body,
          messageId: "x4",
        }),
      },
      "tampered body": {
        sig: signDelivery(CURRENT, { url: URL_, body, messageId: "x5" }),
        body: JSON.stringify({ clientId: client.id, action: "exec", payload: { script: "evil" } }),
      },
      "wrong issuer": { sig: signDelivery(CURRENT, { url: URL_, body, messageId: "x6", issuer: "Mallory" }) },
    };
    for (const [name, c] of Object.entries(cases)) {
      const res = await deliver(c.body ?? body, c.sig, `m-${name}`);
      expect(res.status, name).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code, name).toBe("UNAUTHORIZED");
    }
    expect(await count(client.id)).toBe(0);
  });

  it("refuses the exact same signed request sent twice (a replay) with 401", async () => {
    const client = await createClient();
    const body = JSON.stringify({ clientId: client.id, action: "health-check" });
    const signature = signDelivery(CURRENT, { url: URL_, body, messageId: "m-replay" });
    expect((await deliver(body, signature, "m-replay")).status).toBe(201);
    const replay = await deliver(body, signature, "m-replay");
    expect(replay.status).toBe(401);
    expect(await count(client.id)).toBe(1);
  });

  it("answers a signed but malformed command with 400 or 422", async () => {
    const client = await createClient();
    const bad = JSON.stringify({ clientId: client.id, action: "Not Kebab" });
    expect(
      (await deliver(bad, signDelivery(CURRENT, { url: URL_, body: bad, messageId: "m-bad" }), "m-bad"))
        .status,
    ).toBe(422);
    const notJson = "{oops";
    expect(
      (await deliver(notJson, signDelivery(CURRENT, { url: URL_, body: notJson, messageId: "m-nj" }), "m-nj"))
        .status,
    ).toBe(400);
  });
});
