import { createRoute } from "@hono/zod-openapi";
import { and, desc, eq, type SQL } from "drizzle-orm";
import { wrapTime } from "hono/timing";
import { z } from "zod";
import { commands } from "../../src/db/schema.js";
import {
  type Command,
  CommandLogEntrySchema,
  CommandSchema,
  CommandStatusSchema,
  CreateCommandSchema,
} from "../../src/domain/command.js";
import { HeartbeatSchema } from "../../src/domain/host.js";
import { clientIdOfCommand } from "../../src/domain/ids.js";
import { ResultSchema } from "../../src/domain/result.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import { identityOf, listingScope, requireAgentOf, requireClientAccess, requireRole } from "../auth.js";
import { createCommandFor } from "../create-command.js";
import { afterCursor, encodeCursor } from "../cursor.js";
import { withDatabase } from "../db.js";
import type { Env } from "../env.js";
import { settingsOf } from "../env.js";
import { hubFor, unwrap } from "../hub-client.js";
import { createRouter, errorResponses, jsonBody, jsonResponse, security } from "./openapi.js";

const IdParam = z.object({ id: z.string().min(1).max(128) });
const IdempotencyKeyHeader = z.object({ "idempotency-key": z.string().min(1).max(128).optional() });

const BatchIdempotencyKey = z.string().min(1).max(128).optional();
const BatchSchema = z.strictObject({ commands: z.array(z.unknown()).min(1).max(100) });
const BatchOutcomeSchema = z.object({
  index: z.number().int(),
  status: z.number().int(),
  command: CommandSchema.optional(),
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }).optional(),
});

const ListQuery = z.object({
  clientId: z.string().optional(),
  status: CommandStatusSchema.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional(),
});

const ProgressSchema = z.strictObject({
  percent: z.number().min(0).max(100).optional(),
  message: z.string().max(1024).optional(),
});

/** The client a command id belongs to; anything malformed is simply not found. */
function clientOf(commandId: string): string {
  const clientId = clientIdOfCommand(commandId);
  if (!clientId) throw new FleetdeckError("NOT_FOUND", "no such command");
  return clientId;
}

function createOne(
  env: Env,
  input: z.infer<typeof CreateCommandSchema>,
  idempotencyKey: string | null,
  cause: string,
) {
  return createCommandFor(env, input, { cause, idempotencyKey });
}

export function commandRoutes() {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/commands",
      summary: "Create a command for a client",
      description:
        "Stored by the client's hub before the answer, then pushed at once over SSE when its agent is connected. " +
        "With an Idempotency-Key, the same key and body answer the original command (200); the same key with another body answers 422.",
      security,
      request: { headers: IdempotencyKeyHeader, body: jsonBody(CreateCommandSchema) },
      responses: {
        201: jsonResponse(CommandSchema, "Created"),
        200: jsonResponse(CommandSchema, "Idempotent replay of an earlier create"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const identity = requireRole(identityOf(c), "operator");
      const input = c.req.valid("json");
      const key = c.req.valid("header")["idempotency-key"] ?? null;
      const { replayed, command } = await wrapTime(
        c,
        "hub",
        createOne(c.env, input, key, `created by ${identity.tokenId}`),
        "stored and pushed by the client hub",
      );
      return c.json(command, replayed ? 200 : 201);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/commands/batch",
      summary: "Create many commands in one request",
      description: "Each item is created (or refused) on its own; the answer lists every outcome in order.",
      security,
      request: { body: jsonBody(BatchSchema) },
      responses: {
        200: jsonResponse(z.object({ results: z.array(BatchOutcomeSchema) }), "Outcomes"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const identity = requireRole(identityOf(c), "operator");
      const { commands: items } = c.req.valid("json");
      const results = await Promise.all(
        items.map(async (raw, index) => {
          // An item may carry its own idempotencyKey beside the command's fields.
          const { idempotencyKey: rawKey, ...fields } =
            raw && typeof raw === "object" ? (raw as Record<string, unknown>) : {};
          const key = BatchIdempotencyKey.safeParse(rawKey);
          const parsed = CreateCommandSchema.safeParse(raw && typeof raw === "object" ? fields : raw);
          if (!parsed.success || !key.success) {
            const issues = [
              ...(parsed.success ? [] : parsed.error.issues),
              ...(key.success
                ? []
                : key.error.issues.map((i) => ({ ...i, path: ["idempotencyKey", ...i.path] }))),
            ];
            return {
              index,
              status: 422,
              error: {
                code: "VALIDATION_FAILED",
                message: "item failed validation",
                details: { issues: issues.map((i) => ({ path: i.path, message: i.message })) },
              },
            };
          }
          try {
            const { replayed, command } = await createOne(
              c.env,
              parsed.data,
              key.data ?? null,
              `batch by ${identity.tokenId}`,
            );
            return { index, status: replayed ? 200 : 201, command };
          } catch (error) {
            if (!(error instanceof FleetdeckError)) throw error;
            return {
              index,
              status: error.status,
              error: {
                code: error.code,
                message: error.message,
                ...(error.details ? { details: error.details } : {}),
              },
            };
          }
        }),
      );
      return c.json({ results }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/commands",
      summary: "List commands",
      description:
        "With clientId, served from that client's hub (live). Without it, from Postgres (the audit copy, which trails the hubs by their outbox).",
      security,
      request: { query: ListQuery },
      responses: {
        200: jsonResponse(
          z.object({ commands: z.array(CommandSchema), nextCursor: z.string().nullable() }),
          "A page",
        ),
        ...errorResponses,
      },
    }),
    async (c) => {
      const identity = identityOf(c);
      const query = c.req.valid("query");
      const clientId = listingScope(identity, query.clientId);
      if (clientId) {
        const page = await unwrap(
          hubFor(c.env, clientId).listCommands({
            limit: query.limit,
            ...(query.status ? { status: query.status } : {}),
            ...(query.cursor ? { before: query.cursor } : {}),
          }),
        );
        return c.json({ commands: page.commands, nextCursor: page.next }, 200);
      }
      return c.json(await listFromPostgres(c.env, query, (p) => c.executionCtx.waitUntil(p)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/commands/{id}",
      summary: "Get a command",
      security,
      request: { params: IdParam },
      responses: { 200: jsonResponse(CommandSchema, "The command"), ...errorResponses },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const clientId = clientOf(id);
      requireClientAccess(identityOf(c), clientId);
      return c.json(await unwrap(hubFor(c.env, clientId).getCommand(id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/commands/{id}/logs",
      summary: "A command's transition log",
      security,
      request: { params: IdParam },
      responses: {
        200: jsonResponse(z.object({ logs: z.array(CommandLogEntrySchema) }), "Oldest first"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const clientId = clientOf(id);
      requireClientAccess(identityOf(c), clientId);
      return c.json({ logs: await unwrap(hubFor(c.env, clientId).commandLog(id)) }, 200);
    },
  );

  for (const action of ["cancel", "retry"] as const) {
    app.openapi(
      createRoute({
        method: "post",
        path: `/api/commands/{id}/${action}`,
        summary:
          action === "cancel" ? "Cancel a queued or running command" : "Retry a failed or timed-out command",
        description:
          action === "cancel"
            ? "A delivered command also gets a `cancel` event on the agent's stream."
            : "Back to pending with attempt + 1; dispatched again at once if the agent is connected.",
        security,
        request: { params: IdParam },
        responses: {
          200: jsonResponse(CommandSchema, "The command after the change"),
          409: jsonResponse(z.unknown(), "Not allowed from the current state"),
          ...errorResponses,
        },
      }),
      async (c) => {
        const identity = identityOf(c);
        const { id } = c.req.valid("param");
        const clientId = clientOf(id);
        requireClientAccess(identity, clientId, "operator");
        const operator = requireRole(identity, "operator");
        const hub = hubFor(c.env, clientId);
        const cause = `${action} by ${operator.tokenId}`;
        const command = await unwrap(
          action === "cancel" ? hub.cancelCommand(id, cause) : hub.retryCommand(id, cause),
        );
        return c.json(command, 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/commands/{id}/ack",
      summary: "Agent: the command was received and is starting (dispatched -> running)",
      security,
      request: { params: IdParam },
      responses: { 200: jsonResponse(CommandSchema, "Running"), ...errorResponses },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const clientId = clientOf(id);
      requireAgentOf(identityOf(c), clientId);
      return c.json(await unwrap(hubFor(c.env, clientId).ackCommand(id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/commands/{id}/progress",
      summary: "Agent: still working (resets the step timeout)",
      security,
      request: { params: IdParam, body: jsonBody(ProgressSchema) },
      responses: { 200: jsonResponse(CommandSchema, "Still running"), ...errorResponses },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const clientId = clientOf(id);
      requireAgentOf(identityOf(c), clientId);
      return c.json(await unwrap(hubFor(c.env, clientId).progressCommand(id, c.req.valid("json"))), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/commands/{id}/result",
      summary: "Agent: the command's result",
      description:
        "Posting the same result again answers 200 with the same body; a different result for a finished command answers 409 with its state.",
      security,
      request: { params: IdParam, body: jsonBody(ResultSchema) },
      responses: {
        200: jsonResponse(CommandSchema, "Finished"),
        409: jsonResponse(z.unknown(), "Already finished otherwise"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const clientId = clientOf(id);
      requireAgentOf(identityOf(c), clientId);
      const { command } = await unwrap(hubFor(c.env, clientId).postResult(id, c.req.valid("json")));
      return c.json(command, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/heartbeat",
      summary: "Agent: I am alive, with a health summary",
      description: "Sent every few seconds by the agent; the edge records when it last heard from the host.",
      security,
      request: { body: jsonBody(HeartbeatSchema) },
      responses: { 200: jsonResponse(z.object({ receivedAt: z.number() }), "Recorded"), ...errorResponses },
    }),
    async (c) => {
      const identity = identityOf(c);
      if (identity.kind !== "client") throw new FleetdeckError("FORBIDDEN", "only an agent sends heartbeats");
      return c.json(await unwrap(hubFor(c.env, identity.clientId).recordHeartbeat(c.req.valid("json"))), 200);
    },
  );

  return app;
}

async function listFromPostgres(
  env: Parameters<typeof hubFor>[0],
  query: z.infer<typeof ListQuery>,
  waitUntil: (p: Promise<unknown>) => void,
): Promise<{ commands: Command[]; nextCursor: string | null }> {
  // A bad cursor stays a 422: withDatabase passes FleetdeckErrors through, and only
  // failures to reach Postgres become 503.
  return withDatabase(settingsOf(env), waitUntil, async (db) => {
    const filters: SQL[] = [];
    if (query.status) filters.push(eq(commands.status, query.status));
    if (query.cursor) filters.push(afterCursor(query.cursor, commands.createdAt, commands.id));
    const rows = await db
      .select()
      .from(commands)
      .where(filters.length > 0 ? and(...filters) : undefined)
      .orderBy(desc(commands.createdAt), desc(commands.id))
      .limit(query.limit + 1);
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      commands: page.map((r) => ({
        id: r.id,
        clientId: r.clientId,
        action: r.action,
        payload: r.payload as Record<string, unknown>,
        priority: r.priority,
        status: r.status as Command["status"],
        attempt: r.attempt,
        timeoutSec: r.timeoutSec,
        deadline: r.deadline ? r.deadline.getTime() : null,
        coalesceKey: r.coalesceKey,
        seq: null,
        result: (r.result as Command["result"]) ?? null,
        createdAt: r.createdAt.getTime(),
        updatedAt: r.updatedAt.getTime(),
      })),
      nextCursor: rows.length > query.limit && last ? encodeCursor(last.createdAt.getTime(), last.id) : null,
    };
  });
}
