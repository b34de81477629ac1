import http from "node:http";
import type { AddressInfo } from "node:net";
import { Client, Receiver } from "@upstash/qstash";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type QStashEmulator, startQStashEmulator } from "./qstash-emulator.js";
import { signDelivery } from "./qstash-signing.js";

interface Delivery {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  verified: boolean;
  verifyError?: string;
}

let emulator: QStashEmulator;
let client: Client;
let receiverUrl: string;
let server: http.Server;
const deliveries: Delivery[] = [];
/** Status each path answers with; a list is consumed one per delivery. */
const answers = new Map<string, number[]>();

function receiver(): Receiver {
  const keys = emulator.signingKeys();
  return new Receiver({ currentSigningKey: keys.current, nextSigningKey: keys.next });
}

async function waitFor<T>(probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const url = `${receiverUrl}${req.url}`;
      const delivery: Delivery = { path: req.url ?? "", headers: req.headers, body, verified: false };
      try {
        delivery.verified = await receiver().verify({
          signature: String(req.headers["upstash-signature"]),
          body,
          url,
        });
      } catch (error) {
        delivery.verifyError = String(error);
      }
      deliveries.push(delivery);
      const queue = answers.get(req.url ?? "");
      const status = queue && queue.length > 0 ? queue.shift()! : 200;
      res.writeHead(status).end(status === 200 ? "ok" : "nope");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  emulator = await startQStashEmulator({
    port: 0,
    token: "qstash-test-token",
    currentSigningKey: "sig_current_test_key",
    nextSigningKey: "sig_next_test_key",
    backoffBaseMs: 20,
  });
  client = new Client({ baseUrl: emulator.url, token: emulator.token });
});

afterAll(async () => {
  await emulator.stop();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

beforeEach(() => {
  deliveries.length = 0;
  answers.clear();
});

describe("QStash emulator through @upstash/qstash", () => {
  it("publishes and delivers a message the Receiver verifies, with forwarded headers", async () => {
    const { messageId } = await client.publishJSON({
      url: `${receiverUrl}/hook?x=1`,
      body: { hello: "fleet" },
      headers: { "X-Trace": "abc" },
    });
    expect(messageId).toMatch(/^msg_/);
    const d = await waitFor(() => deliveries.find((x) => x.headers["upstash-message-id"] === messageId));
    expect(d.verified).toBe(true);
    expect(JSON.parse(d.body)).toEqual({ hello: "fleet" });
    expect(d.headers["x-trace"]).toBe("abc");
    expect(d.headers["content-type"]).toBe("application/json");
    expect(d.headers["upstash-retried"]).toBe("0");
  });

  it("signs with claims the Receiver checks: a tampered body or another URL fails verification", async () => {
    await client.publish({ url: `${receiverUrl}/tamper`, body: "original" });
    const d = await waitFor(() => deliveries.find((x) => x.path === "/tamper"));
    const signature = String(d.headers["upstash-signature"]);
    await expect(
      receiver().verify({ signature, body: "tampered", url: `${receiverUrl}/tamper` }),
    ).rejects.toThrow(/body hash/);
    await expect(
      receiver().verify({ signature, body: "original", url: `${receiverUrl}/other` }),
    ).rejects.toThrow(/invalid subject/);
    const [header, payload] = signature.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    expect(JSON.parse(Buffer.from(header!, "base64url").toString())).toEqual({ alg: "HS256", typ: "JWT" });
    expect(claims).toMatchObject({
      iss: "Upstash",
      sub: `${receiverUrl}/tamper`,
      jti: d.headers["upstash-message-id"],
    });
    expect(claims.exp).toBeGreaterThan(claims.iat);
    // An expired signature is refused too.
    const old = signDelivery(emulator.signingKeys().current, {
      url: `${receiverUrl}/tamper`,
      body: "original",
      messageId: "m",
      now: Math.floor(Date.now() / 1000) - 3600,
    });
    await expect(
      receiver().verify({ signature: old, body: "original", url: `${receiverUrl}/tamper` }),
    ).rejects.toThrow();
  });

  it("retries with backoff as Upstash-Retries says, then dead-letters", async () => {
    answers.set("/flaky", [500, 503]);
    await client.publish({ url: `${receiverUrl}/flaky`, body: "x", retries: 3 });
    await waitFor(() => (deliveries.filter((d) => d.path === "/flaky").length === 3 ? true : undefined));
    expect(deliveries.filter((d) => d.path === "/flaky").map((d) => d.headers["upstash-retried"])).toEqual([
      "0",
      "1",
      "2",
    ]);

    answers.set("/dead", [500, 500, 500]);
    const { messageId } = await client.publish({ url: `${receiverUrl}/dead`, body: "doomed", retries: 2 });
    await emulator.idle();
    expect(deliveries.filter((d) => d.path === "/dead")).toHaveLength(3);
    const { messages } = await client.dlq.listMessages();
    const entry = messages.find((m) => m.messageId === messageId);
    expect(entry).toMatchObject({ url: `${receiverUrl}/dead`, body: "doomed", responseStatus: 500 });
    await client.dlq.delete(entry!.dlqId);
    expect((await client.dlq.listMessages()).messages.find((m) => m.messageId === messageId)).toBeUndefined();
  });

  it("deduplicates by Upstash-Deduplication-Id and by content", async () => {
    const a = await client.publish({ url: `${receiverUrl}/dedup`, body: "1", deduplicationId: "same" });
    const b = await client.publish({ url: `${receiverUrl}/dedup`, body: "2", deduplicationId: "same" });
    expect(b.messageId).toBe(a.messageId);
    expect(b.deduplicated).toBe(true);
    const c = await client.publish({
      url: `${receiverUrl}/dedup`,
      body: "z",
      contentBasedDeduplication: true,
    });
    const d = await client.publish({
      url: `${receiverUrl}/dedup`,
      body: "z",
      contentBasedDeduplication: true,
    });
    expect(d.messageId).toBe(c.messageId);
    await emulator.idle();
    expect(deliveries.filter((x) => x.path === "/dedup")).toHaveLength(2);
  });

  it("honours delay and not-before", async () => {
    const started = Date.now();
    await client.publish({ url: `${receiverUrl}/delayed`, body: "d", delay: 1 });
    const notBefore = Math.floor(Date.now() / 1000) + 1;
    await client.publish({ url: `${receiverUrl}/nb`, body: "n", notBefore });
    await waitFor(() => deliveries.find((x) => x.path === "/delayed"));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    await waitFor(() => deliveries.find((x) => x.path === "/nb"));
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore * 1000);
  });

  it("fans out to every endpoint of a topic (URL group)", async () => {
    await client.urlGroups.addEndpoints({
      name: "fleet-events",
      endpoints: [{ url: `${receiverUrl}/sub-a` }, { url: `${receiverUrl}/sub-b` }],
    });
    expect((await client.urlGroups.get("fleet-events")).endpoints).toHaveLength(2);
    const res = await client.publish({ urlGroup: "fleet-events", body: "evt" });
    expect(Array.isArray(res)).toBe(true);
    expect(res).toHaveLength(2);
    await emulator.idle();
    const paths = deliveries.map((d) => d.path).sort();
    expect(paths).toEqual(["/sub-a", "/sub-b"]);
    expect(deliveries.every((d) => d.verified && d.headers["upstash-topic-name"] === "fleet-events")).toBe(
      true,
    );
    await client.urlGroups.delete("fleet-events");
    await expect(client.urlGroups.get("fleet-events")).rejects.toThrow(/not found/);
  });

  it("publishes a batch", async () => {
    const res = await client.batchJSON([
      { url: `${receiverUrl}/b1`, body: { n: 1 } },
      { url: `${receiverUrl}/b2`, body: { n: 2 } },
    ]);
    expect(res).toHaveLength(2);
    await emulator.idle();
    expect(deliveries.map((d) => d.path).sort()).toEqual(["/b1", "/b2"]);
  });

  it("delivers a queue's messages in order, one at a time", async () => {
    const queue = client.queue({ queueName: "ordered" });
    await queue.upsert({ parallelism: 1 });
    answers.set("/q", [500]);
    for (let i = 0; i < 4; i++) await queue.enqueue({ url: `${receiverUrl}/q`, body: String(i), retries: 1 });
    await emulator.idle();
    // The first fails once and is retried before the second goes out.
    expect(deliveries.filter((d) => d.path === "/q").map((d) => d.body)).toEqual(["0", "0", "1", "2", "3"]);
  });

  it("fires a schedule on its cron and lists, pauses and deletes it", async () => {
    const { scheduleId } = await client.schedules.create({
      destination: `${receiverUrl}/tick`,
      cron: "* * * * * *",
      body: "tick",
    });
    const fired = await waitFor(() => deliveries.find((d) => d.path === "/tick"), 3000);
    expect(fired.verified).toBe(true);
    expect(fired.headers["upstash-schedule-id"]).toBe(scheduleId);
    expect((await client.schedules.list()).map((s) => s.scheduleId)).toContain(scheduleId);
    await client.schedules.pause({ schedule: scheduleId });
    expect((await client.schedules.get(scheduleId)).isPaused).toBe(true);
    await client.schedules.delete(scheduleId);
    await expect(client.schedules.get(scheduleId)).rejects.toThrow(/not found/);
  });

  it("rotates signing keys: deliveries verify with the keys that are current afterwards", async () => {
    const before = emulator.signingKeys();
    const res = await fetch(`${emulator.url}/v2/keys/rotate`, {
      method: "POST",
      headers: { authorization: `Bearer ${emulator.token}` },
    });
    expect(res.status).toBe(200);
    const after = emulator.signingKeys();
    expect(after.current).toBe(before.next);
    await client.publish({ url: `${receiverUrl}/rotated`, body: "r" });
    const d = await waitFor(() => deliveries.find((x) => x.path === "/rotated"));
    expect(d.verified).toBe(true);
    // A receiver still configured with the old pair verifies through its next key.
    const old = new Receiver({ currentSigningKey: before.current, nextSigningKey: before.next });
    expect(
      await old.verify({
        signature: String(d.headers["upstash-signature"]),
        body: "r",
        url: `${receiverUrl}/rotated`,
      }),
    ).toBe(true);
  });
});

describe("QStash emulator on bad input", () => {
  it("answers a bad token with 401", async () => {
    const bad = new Client({ baseUrl: emulator.url, token: "wrong", retry: false });
    await expect(bad.publish({ url: `${receiverUrl}/x`, body: "x" })).rejects.toThrow(/Unauthorized/);
  });

  it("answers an unknown topic, a bad destination, a bad cron and malformed JSON with 4xx errors", async () => {
    await expect(client.publish({ urlGroup: "no-such-topic", body: "x" })).rejects.toThrow(/not found/);
    const headers = { authorization: `Bearer ${emulator.token}` };
    const badUrl = await fetch(`${emulator.url}/v2/publish/http://[bad`, {
      method: "POST",
      headers,
      body: "x",
    });
    expect(badUrl.status).toBe(400);
    await expect(
      client.schedules.create({ destination: `${receiverUrl}/x`, cron: "not a cron" }),
    ).rejects.toThrow(/invalid cron/);
    const batch = await fetch(`${emulator.url}/v2/batch`, { method: "POST", headers, body: "{nope" });
    expect(batch.status).toBe(400);
    expect(await batch.json()).toEqual({ error: "invalid JSON body" });
    const retries = await fetch(`${emulator.url}/v2/publish/${receiverUrl}/x`, {
      method: "POST",
      headers: { ...headers, "Upstash-Retries": "-1" },
      body: "x",
    });
    expect(retries.status).toBe(400);
  });
});
