import { createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import { CreateCommandSchema } from "../../src/domain/command.js";
import { sha256Hex, ulid } from "../../src/domain/ids.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import { renderTemplate, TemplateError } from "../../src/protocol/template.js";
import { identityOf, requireRole } from "../auth.js";
import { createCommandFor } from "../create-command.js";
import { constantTimeEqual } from "../secrets.js";
import { newWebhookSecret, signStandardWebhook } from "../subscriber-delivery.js";
import { createRouter, errorResponses, jsonBody, jsonResponse, security } from "./openapi.js";
import { feedOf } from "./subscriptions.js";

/** Signed requests older or newer than this are refused, as Standard Webhooks recommends. */
const TOLERANCE_SEC = 5 * 60;
const REJECTED = "invalid, expired or replayed signature";

const CreateHookSchema = z.strictObject({
  name: z.string().min(1).max(128),
  /** A command with `{{path}}` placeholders filled from the webhook's JSON payload. */
  template: z.record(z.string(), z.unknown()),
  secret: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/=]{16,}$/)
    .optional(),
});

/** Rules (admin) and the signed endpoint outside systems call. */
export function hookRuleRoutes() {
  const app = createRouter();
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/hooks",
      summary:
        "Create an inbound webhook rule: a signed POST /api/hooks/{id} becomes a command made from the template",
      security,
      request: { body: jsonBody(CreateHookSchema) },
      responses: {
        201: jsonResponse(z.record(z.string(), z.unknown()), "Created; the secret is shown once"),
        ...errorResponses,
      },
    }),
    async (c) => {
      requireRole(identityOf(c), "admin");
      const input = c.req.valid("json");
      const id = `hook_${ulid()}`;
      const secret = input.secret ?? newWebhookSecret();
      await feedOf(c.env).addHook({ id, name: input.name, secret, template: input.template });
      return c.json({ id, name: input.name, template: input.template, secret, url: `/api/hooks/${id}` }, 201);
    },
  );
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/hooks",
      summary: "List inbound webhook rules (secrets are not shown)",
      security,
      responses: {
        200: jsonResponse(z.object({ hooks: z.array(z.record(z.string(), z.unknown())) }), "Rules"),
        ...errorResponses,
      },
    }),
    async (c) => {
      requireRole(identityOf(c), "viewer");
      return c.json({ hooks: await feedOf(c.env).listHooks() }, 200);
    },
  );
  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/hooks/{id}",
      summary: "Delete an inbound webhook rule",
      security,
      request: { params: z.object({ id: z.string().min(1).max(64) }) },
      responses: { 204: { description: "Deleted" }, ...errorResponses },
    }),
    async (c) => {
      requireRole(identityOf(c), "admin");
      if (!(await feedOf(c.env).removeHook(c.req.valid("param").id)))
        throw new FleetdeckError("NOT_FOUND", "no such hook");
      return c.body(null, 204);
    },
  );
  return app;
}

/**
 * POST /api/hooks/:hookId, verified with Standard Webhooks: `webhook-id`, `webhook-timestamp`
 * (within 5 minutes) and `webhook-signature` (v1, HMAC-SHA256 with the rule's secret). A
 * webhook-id seen before is a replay: 401, nothing created.
 */
export function inboundHookRoutes() {
  const app = createRouter();
  app.post("/api/hooks/:hookId", async (c) => {
    const hook = await feedOf(c.env).getHook(c.req.param("hookId"));
    if (!hook) throw new FleetdeckError("NOT_FOUND", "no such hook");
    const id = c.req.header("webhook-id");
    const ts = Number(c.req.header("webhook-timestamp"));
    const given = (c.req.header("webhook-signature") ?? "").split(" ").filter(Boolean);
    const body = await c.req.text();
    const now = Math.floor(Date.now() / 1000);
    if (!id || !Number.isInteger(ts) || Math.abs(now - ts) > TOLERANCE_SEC || given.length === 0) {
      throw new FleetdeckError("UNAUTHORIZED", REJECTED);
    }
    const expected = await signStandardWebhook(hook.secret, id, ts, body);
    const ok = given.some((g) => constantTimeEqual(g, expected));
    if (!ok) throw new FleetdeckError("UNAUTHORIZED", REJECTED);
    let payload: unknown;
    try {
      payload = JSON.parse(body);
    } catch {
      throw new FleetdeckError("INVALID_JSON", "request body is not valid JSON");
    }
    let rendered: unknown;
    try {
      rendered = renderTemplate(hook.template, payload);
    } catch (error) {
      if (error instanceof TemplateError) throw new FleetdeckError("VALIDATION_FAILED", error.message);
      throw error;
    }
    const parsed = CreateCommandSchema.safeParse(rendered);
    if (!parsed.success) {
      throw new FleetdeckError("VALIDATION_FAILED", "the template made an invalid command", {
        details: { issues: parsed.error.issues.map((i) => ({ path: i.path, message: i.message })) },
      });
    }
    const result = await createCommandFor(c.env, parsed.data, {
      cause: `hook ${hook.name} (${id})`,
      replayGuard: {
        hash: await sha256Hex(`${hook.id}:${id}`),
        expiresAt: (ts + TOLERANCE_SEC) * 1000 + 60_000,
      },
    });
    return c.json(result.command, 201);
  });
  return app;
}
