import { createRoute } from "@hono/zod-openapi";
import { Client as QStashClient } from "@upstash/qstash";
import { z } from "zod";
import { CreateCommandSchema } from "../../src/domain/command.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import { identityOf, requireClientAccess, requireRole } from "../auth.js";
import type { Env } from "../env.js";
import { createRouter, errorResponses, jsonBody, jsonResponse, security } from "./openapi.js";

const CreateScheduleSchema = z.strictObject({
  /** Five fields (minute precision), as QStash takes them; `CRON_TZ=Europe/Berlin ...` prefixes are passed on. */
  cron: z.string().min(9).max(128),
  command: CreateCommandSchema,
});

function qstash(env: Env): { client: QStashClient; destination: string } {
  if (!env.QSTASH_TOKEN) throw new FleetdeckError("MISCONFIGURED", "missing setting: QSTASH_TOKEN");
  if (!env.PUBLIC_URL)
    throw new FleetdeckError("MISCONFIGURED", "missing setting: PUBLIC_URL (QStash must reach this Worker)");
  return {
    client: new QStashClient({
      token: env.QSTASH_TOKEN,
      ...(env.QSTASH_URL ? { baseUrl: env.QSTASH_URL } : {}),
    }),
    destination: `${env.PUBLIC_URL.replace(/\/$/, "")}/api/webhooks/qstash`,
  };
}

/** Schedules are QStash schedules whose every tick posts a command to POST /api/webhooks/qstash. */
export function scheduleRoutes() {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/schedules",
      summary: "Create a command on a cron schedule (a QStash schedule)",
      security,
      request: { body: jsonBody(CreateScheduleSchema) },
      responses: {
        201: jsonResponse(z.object({ scheduleId: z.string(), cron: z.string() }), "Created"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const identity = identityOf(c);
      const input = c.req.valid("json");
      requireClientAccess(identity, input.command.clientId, "operator");
      requireRole(identity, "operator");
      const { client, destination } = qstash(c.env);
      try {
        const { scheduleId } = await client.schedules.create({
          destination,
          cron: input.cron,
          body: JSON.stringify(input.command),
          headers: { "Content-Type": "application/json" },
        });
        return c.json({ scheduleId, cron: input.cron }, 201);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (/cron/i.test(message))
          throw new FleetdeckError("VALIDATION_FAILED", `QStash refused the cron expression: ${message}`);
        throw new FleetdeckError("DEPENDENCY_UNAVAILABLE", "QStash is unavailable", {
          retryAfterSec: 10,
          cause: error,
        });
      }
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/schedules",
      summary: "List the command schedules",
      security,
      responses: {
        200: jsonResponse(z.object({ schedules: z.array(z.record(z.string(), z.unknown())) }), "Schedules"),
        ...errorResponses,
      },
    }),
    async (c) => {
      requireRole(identityOf(c), "viewer");
      const { client, destination } = qstash(c.env);
      const all = await client.schedules.list().catch((error: unknown) => {
        throw new FleetdeckError("DEPENDENCY_UNAVAILABLE", "QStash is unavailable", {
          retryAfterSec: 10,
          cause: error,
        });
      });
      const mine = all
        .filter((s) => s.destination === destination)
        .map((s) => ({
          scheduleId: s.scheduleId,
          cron: s.cron,
          command: safeJson(s.body),
          isPaused: s.isPaused,
          createdAt: s.createdAt,
        }));
      return c.json({ schedules: mine }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/schedules/{id}",
      summary: "Delete a command schedule",
      security,
      request: { params: z.object({ id: z.string().min(1).max(128) }) },
      responses: { 204: { description: "Deleted" }, ...errorResponses },
    }),
    async (c) => {
      requireRole(identityOf(c), "operator");
      const { client } = qstash(c.env);
      const { id } = c.req.valid("param");
      try {
        await client.schedules.delete(id);
      } catch (error) {
        if (/not found/i.test(String(error))) throw new FleetdeckError("NOT_FOUND", "no such schedule");
        throw new FleetdeckError("DEPENDENCY_UNAVAILABLE", "QStash is unavailable", {
          retryAfterSec: 10,
          cause: error,
        });
      }
      return c.body(null, 204);
    },
  );

  return app;
}

function safeJson(text: string | undefined): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}
