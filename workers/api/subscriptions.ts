import { createRoute } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { z } from "zod";
import { subscriptions } from "../../src/db/schema.js";
import { TopicFilterSchema } from "../../src/domain/event.js";
import { ulid } from "../../src/domain/ids.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import { identityOf, requireRole } from "../auth.js";
import { withDatabase } from "../db.js";
import { type Env, settingsOf } from "../env.js";
import type { FleetFeed } from "../fleet-feed.js";
import { newWebhookSecret } from "../subscriber-delivery.js";
import { createRouter, errorResponses, jsonBody, jsonResponse, security } from "./openapi.js";

const CreateSubscriptionSchema = z.strictObject({
  url: z
    .string()
    .url()
    .refine((u) => /^https?:\/\//.test(u), "an http(s) URL"),
  topics: z.array(TopicFilterSchema).min(1).max(32),
  kind: z.enum(["webhook", "slack"]).default("webhook"),
  /** Standard Webhooks secret (whsec_...); one is made when a webhook subscription gives none. */
  secret: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/=]{16,}$/, "a Standard Webhooks secret, whsec_<base64>")
    .optional(),
});

export function feedOf(env: Env): DurableObjectStub & FleetFeed {
  return env.FLEET_FEED.get(env.FLEET_FEED.idFromName("fleet")) as unknown as DurableObjectStub & FleetFeed;
}

export function subscriptionRoutes() {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/subscriptions",
      summary:
        "Subscribe a URL to fleet events (delivered through QStash, with retries and a dead-letter record)",
      description:
        "Webhook deliveries carry Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) made with the subscription's secret, shown once in this answer. Slack deliveries are formatted for an incoming-webhook URL.",
      security,
      request: { body: jsonBody(CreateSubscriptionSchema) },
      responses: { 201: jsonResponse(z.record(z.string(), z.unknown()), "Created"), ...errorResponses },
    }),
    async (c) => {
      requireRole(identityOf(c), "admin");
      const input = c.req.valid("json");
      const id = `sub_${ulid()}`;
      const secret = input.kind === "webhook" ? (input.secret ?? newWebhookSecret()) : null;
      await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        (db) =>
          db
            .insert(subscriptions)
            .values({ id, url: input.url, kind: input.kind, topics: input.topics, secret }),
      );
      await feedOf(c.env).addSubscription({
        id,
        url: input.url,
        kind: input.kind,
        topics: input.topics,
        secret,
      });
      return c.json(
        { id, url: input.url, kind: input.kind, topics: input.topics, ...(secret ? { secret } : {}) },
        201,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/subscriptions",
      summary: "List subscriptions (secrets are not shown)",
      security,
      responses: {
        200: jsonResponse(
          z.object({ subscriptions: z.array(z.record(z.string(), z.unknown())) }),
          "Subscriptions",
        ),
        ...errorResponses,
      },
    }),
    async (c) => {
      requireRole(identityOf(c), "viewer");
      return c.json({ subscriptions: await feedOf(c.env).listSubscriptions() }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/subscriptions/{id}",
      summary: "Delete a subscription; deliveries not yet handed to QStash are canceled",
      security,
      request: { params: z.object({ id: z.string().min(1).max(64) }) },
      responses: { 204: { description: "Deleted" }, ...errorResponses },
    }),
    async (c) => {
      requireRole(identityOf(c), "admin");
      const { id } = c.req.valid("param");
      if (!(await feedOf(c.env).removeSubscription(id)))
        throw new FleetdeckError("NOT_FOUND", "no such subscription");
      await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        (db) => db.update(subscriptions).set({ active: false }).where(eq(subscriptions.id, id)),
      );
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/subscriptions/{id}/deliveries",
      summary: "What was delivered, retried or dead-lettered for a subscription, newest first",
      description:
        "status: queued, published (with QStash), delivered (retried says how many retries it took), dead, canceled.",
      security,
      request: {
        params: z.object({ id: z.string().min(1).max(64) }),
        query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(100) }),
      },
      responses: {
        200: jsonResponse(z.object({ deliveries: z.array(z.record(z.string(), z.unknown())) }), "Deliveries"),
        ...errorResponses,
      },
    }),
    async (c) => {
      requireRole(identityOf(c), "viewer");
      const { id } = c.req.valid("param");
      const rows = await feedOf(c.env).deliveries(id, c.req.valid("query").limit);
      if (rows === null) throw new FleetdeckError("NOT_FOUND", "no such subscription");
      return c.json({ deliveries: rows }, 200);
    },
  );

  return app;
}
