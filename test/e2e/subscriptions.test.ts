import { createHmac } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ulid } from "../../src/domain/ids.js";
import { call } from "../support/http.js";
import { startTestCloud, type TestCloud } from "../support/local-cloud.js";

let cloud: TestCloud;
let receiver: http.Server;
let receiverUrl: string;
const received: { path: string; headers: http.IncomingHttpHeaders; body: string }[] = [];

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(req.url === "/failing" ? 500 : 200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  cloud = await startTestCloud({ SUBSCRIPTION_RETRIES: "1" });
}, 120_000);

afterAll(async () => {
  await cloud?.stop();
  receiver?.closeAllConnections();
  await new Promise((r) => receiver?.close(r));
});

/** Standard Webhooks verification, as a subscriber would do it. */
function verifies(secret: string, headers: http.IncomingHttpHeaders, body: string): boolean {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key)
    .update(`${headers["webhook-id"]}.${headers["webhook-timestamp"]}.${body}`)
    .digest("base64");
  return String(headers["webhook-signature"])
    .split(" ")
    .some((s) => s === `v1,${expected}`);
}

describe("subscriptions: events out through QStash", () => {
  it("delivers signed events to a subscriber, and dead-letters what a failing one refuses", async () => {
    const api = (method: string, path: string, body?: unknown) =>
      call(cloud.workerUrl, method, path, cloud.adminToken, body);
    const ok = await api("POST", "/api/subscriptions", { url: `${receiverUrl}/ok`, topics: ["command.*"] });
    expect(ok.status).toBe(201);
    expect(ok.body.secret).toMatch(/^whsec_/);
    const failing = await api("POST", "/api/subscriptions", {
      url: `${receiverUrl}/failing`,
      topics: ["command.canceled"],
    });
    const slack = await api("POST", "/api/subscriptions", {
      url: `${receiverUrl}/slack`,
      topics: ["command.canceled"],
      kind: "slack",
    });
    expect(slack.body.secret).toBeUndefined();

    const client = (await api("POST", "/api/clients", { name: "subscribed" })).body;
    const cmd = (await api("POST", "/api/commands", { clientId: client.id, action: "exec" })).body;
    await api("POST", `/api/commands/${cmd.id}/cancel`);

    await expect.poll(() => received.filter((r) => r.path === "/ok").length, { timeout: 20_000 }).toBe(1);
    const delivery = received.find((r) => r.path === "/ok")!;
    expect(verifies(ok.body.secret, delivery.headers, delivery.body)).toBe(true);
    expect(
      verifies(`whsec_${Buffer.from("x".repeat(24)).toString("base64")}`, delivery.headers, delivery.body),
    ).toBe(false);
    const event = JSON.parse(delivery.body);
    expect(event).toMatchObject({
      type: "command.canceled",
      data: { topic: "command.canceled", clientId: client.id },
    });
    expect(event.data.data.commandId).toBe(cmd.id);

    await expect.poll(() => received.filter((r) => r.path === "/slack").length, { timeout: 20_000 }).toBe(1);
    const slackBody = JSON.parse(received.find((r) => r.path === "/slack")!.body);
    expect(slackBody.text).toContain("command.canceled");
    expect(Array.isArray(slackBody.blocks)).toBe(true);

    // Delivered, as QStash's callback reports it.
    await expect
      .poll(
        async () =>
          (await api("GET", `/api/subscriptions/${ok.body.id}/deliveries`)).body.deliveries[0]?.status,
        { timeout: 20_000 },
      )
      .toBe("delivered");
    // The failing subscriber was tried 1 + SUBSCRIPTION_RETRIES times, then dead-lettered.
    await expect
      .poll(
        async () =>
          (await api("GET", `/api/subscriptions/${failing.body.id}/deliveries`)).body.deliveries[0]?.status,
        { timeout: 30_000 },
      )
      .toBe("dead");
    expect(received.filter((r) => r.path === "/failing")).toHaveLength(2);
    const dead = (await api("GET", `/api/subscriptions/${failing.body.id}/deliveries`)).body.deliveries[0];
    expect(dead).toMatchObject({ topic: "command.canceled", responseStatus: 500 });

    expect(
      (await api("GET", "/api/subscriptions")).body.subscriptions.every(
        (s: { secret?: string }) => s.secret === undefined,
      ),
    ).toBe(true);
    expect((await api("DELETE", `/api/subscriptions/${failing.body.id}`)).status).toBe(204);
    expect((await api("DELETE", `/api/subscriptions/${failing.body.id}`)).status).toBe(404);
  });

  it("delivers an agent's forwarded alert to an alert.* subscriber, signed, with the agent's time", async () => {
    const api = (method: string, path: string, body?: unknown, token = cloud.adminToken) =>
      call(cloud.workerUrl, method, path, token, body);
    const sub = await api("POST", "/api/subscriptions", {
      url: `${receiverUrl}/alerts`,
      topics: ["alert.*"],
    });
    expect(sub.status).toBe(201);
    const client = (await api("POST", "/api/clients", { name: "alerting" })).body;
    const triggeredAt = Date.now() - 120_000;
    const alertId = `al_${ulid(triggeredAt)}`;
    const forwarded = await api(
      "POST",
      "/api/alerts",
      {
        alerts: [
          { alertId, rule: "disk-full", state: "firing", severity: "critical", value: 97, triggeredAt },
        ],
      },
      client.clientKey,
    );
    expect(forwarded.body).toEqual({ accepted: 1, duplicates: 0 });
    await expect.poll(() => received.filter((r) => r.path === "/alerts").length, { timeout: 20_000 }).toBe(1);
    const delivery = received.find((r) => r.path === "/alerts")!;
    expect(verifies(sub.body.secret, delivery.headers, delivery.body)).toBe(true);
    expect(JSON.parse(delivery.body)).toMatchObject({
      type: "alert.triggered",
      data: {
        topic: "alert.triggered",
        clientId: client.id,
        at: triggeredAt,
        data: { alertId, rule: "disk-full" },
      },
    });
  });

  it("creates a command on every tick of a schedule, until the schedule is deleted", async () => {
    const api = (method: string, path: string, body?: unknown) =>
      call(cloud.workerUrl, method, path, cloud.adminToken, body);
    const client = (await api("POST", "/api/clients", { name: "scheduled" })).body;
    // The emulator takes a seconds field too, so the test need not wait a minute.
    const created = await api("POST", "/api/schedules", {
      cron: "* * * * * *",
      command: { clientId: client.id, action: "health-check" },
    });
    expect(created.status).toBe(201);
    const listed = await api("GET", "/api/schedules");
    expect(listed.body.schedules.map((x: { scheduleId: string }) => x.scheduleId)).toContain(
      created.body.scheduleId,
    );
    await expect
      .poll(async () => (await api("GET", `/api/commands?clientId=${client.id}`)).body.commands.length, {
        timeout: 15_000,
      })
      .toBeGreaterThanOrEqual(2);
    expect((await api("DELETE", `/api/schedules/${created.body.scheduleId}`)).status).toBe(204);
    const after = (await api("GET", `/api/commands?clientId=${client.id}`)).body.commands.length;
    await new Promise((r) => setTimeout(r, 2500));
    expect(
      (await api("GET", `/api/commands?clientId=${client.id}`)).body.commands.length,
    ).toBeLessThanOrEqual(after + 1);
    expect((await api("DELETE", `/api/schedules/${created.body.scheduleId}`)).status).toBe(404);
    const badCron = await api("POST", "/api/schedules", {
      cron: "not a cron at all",
      command: { clientId: client.id, action: "x" },
    });
    expect(badCron.status).toBe(422);
  });
});
