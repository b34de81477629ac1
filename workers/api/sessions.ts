import { createRoute } from "@hono/zod-openapi";
import { and, desc, eq, type SQL } from "drizzle-orm";
import { z } from "zod";
import { sessions } from "../../src/db/schema.js";
import { clientIdOfSession, isClientId, newSessionId } from "../../src/domain/ids.js";
import {
  CreateSessionSchema,
  SessionEventSchema,
  SessionSchema,
  SessionStatusSchema,
  SessionTransitionSchema,
} from "../../src/domain/session.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import { identityOf, listingScope, requireClientAccess } from "../auth.js";
import { withDatabase } from "../db.js";
import { settingsOf } from "../env.js";
import { hubFor, unwrap } from "../hub-client.js";
import { createRouter, errorResponses, jsonBody, jsonResponse, security } from "./openapi.js";

const IdParam = z.object({ id: z.string().min(1).max(128) });

function clientOf(sessionId: string): string {
  const clientId = clientIdOfSession(sessionId);
  if (!clientId) throw new FleetdeckError("NOT_FOUND", "no such session");
  return clientId;
}

export function sessionRoutes() {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/sessions",
      summary: "Create a session (one running instance of a workload on a host)",
      security,
      request: { body: jsonBody(CreateSessionSchema) },
      responses: { 201: jsonResponse(SessionSchema, "Created, pending"), ...errorResponses },
    }),
    async (c) => {
      const identity = identityOf(c);
      const input = c.req.valid("json");
      requireClientAccess(identity, input.clientId, "operator");
      if (!isClientId(input.clientId)) throw new FleetdeckError("NOT_FOUND", "no such client");
      const by = identity.kind === "client" ? "agent" : identity.tokenId;
      const session = await unwrap(
        hubFor(c.env, input.clientId).createSession({
          id: newSessionId(input.clientId),
          name: input.name,
          spec: input.spec,
          by,
        }),
      );
      return c.json(session, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/sessions/{id}/transition",
      summary: "Move a session: pending -> starting -> running -> stopping -> stopped, or crashed",
      description:
        "Any other move answers 409 INVALID_TRANSITION with the current state; it is a permanent error, never worth retrying.",
      security,
      request: { params: IdParam, body: jsonBody(SessionTransitionSchema) },
      responses: {
        200: jsonResponse(SessionSchema, "Moved"),
        409: jsonResponse(z.unknown(), "Not allowed from the current state"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const identity = identityOf(c);
      const { id } = c.req.valid("param");
      const clientId = clientOf(id);
      // The host's agent, or an operator.
      requireClientAccess(identity, clientId, "operator");
      const change = c.req.valid("json");
      const by = identity.kind === "client" ? "agent" : identity.tokenId;
      return c.json(await unwrap(hubFor(c.env, clientId).transitionSession(id, { ...change, by })), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/sessions/{id}",
      summary: "A session with its history",
      security,
      request: { params: IdParam },
      responses: {
        200: jsonResponse(SessionSchema.extend({ history: z.array(SessionEventSchema) }), "The session"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const clientId = clientOf(id);
      requireClientAccess(identityOf(c), clientId);
      return c.json(await unwrap(hubFor(c.env, clientId).getSession(id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/sessions",
      summary: "List sessions",
      description: "With clientId, live from that host's hub; without, from Postgres.",
      security,
      request: {
        query: z.object({
          clientId: z.string().max(64).optional(),
          status: SessionStatusSchema.optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
        }),
      },
      responses: {
        200: jsonResponse(z.object({ sessions: z.array(SessionSchema) }), "Sessions, newest first"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const identity = identityOf(c);
      const q = c.req.valid("query");
      const clientId = listingScope(identity, q.clientId);
      if (clientId) {
        const list = await unwrap(
          hubFor(c.env, clientId).listSessions({ limit: q.limit, ...(q.status ? { status: q.status } : {}) }),
        );
        return c.json({ sessions: list }, 200);
      }
      const rows = await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        (db) => {
          const filters: SQL[] = [];
          if (q.status) filters.push(eq(sessions.status, q.status));
          return db
            .select()
            .from(sessions)
            .where(filters.length ? and(...filters) : undefined)
            .orderBy(desc(sessions.createdAt))
            .limit(q.limit);
        },
      );
      return c.json(
        {
          sessions: rows.map((r) => ({
            id: r.id,
            clientId: r.clientId,
            name: r.name,
            spec: r.spec as Record<string, unknown>,
            status: r.status as z.infer<typeof SessionStatusSchema>,
            exitCode: r.exitCode,
            startedAt: r.startedAt ? r.startedAt.getTime() : null,
            endedAt: r.endedAt ? r.endedAt.getTime() : null,
            createdAt: r.createdAt.getTime(),
            updatedAt: r.updatedAt.getTime(),
          })),
        },
        200,
      );
    },
  );

  return app;
}
