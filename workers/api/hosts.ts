import { createRoute } from "@hono/zod-openapi";
import { and, desc, eq, sql } from "drizzle-orm";
import { z } from "zod";
import { clients, hosts } from "../../src/db/schema.js";
import { HostStatusSchema } from "../../src/domain/host.js";
import { isClientId } from "../../src/domain/ids.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import { identityOf, requireClientAccess, requireRole } from "../auth.js";
import { withDatabase } from "../db.js";
import { settingsOf } from "../env.js";
import { hubFor, unwrap } from "../hub-client.js";
import { createRouter, errorResponses, jsonResponse, security } from "./openapi.js";

const IdParam = z.object({ id: z.string().min(1).max(64) });

export function hostRoutes() {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/hosts",
      summary: "List hosts with their liveness",
      description: "From Postgres, which each hub keeps current through its outbox (about a second behind).",
      security,
      request: {
        query: z.object({
          status: HostStatusSchema.optional(),
          tag: z.string().max(64).optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
        }),
      },
      responses: {
        200: jsonResponse(z.object({ hosts: z.array(z.record(z.string(), z.unknown())) }), "Hosts"),
        ...errorResponses,
      },
    }),
    async (c) => {
      requireRole(identityOf(c), "viewer");
      const q = c.req.valid("query");
      const rows = await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        (db) => {
          const filters = [sql`${clients.deletedAt} is null`];
          if (q.status) filters.push(eq(hosts.status, q.status));
          if (q.tag) filters.push(sql`${q.tag} = any(${clients.tags})`);
          return db
            .select({
              clientId: hosts.clientId,
              name: clients.name,
              tags: clients.tags,
              status: hosts.status,
              lastSeenAt: hosts.lastSeenAt,
              agentVersion: hosts.agentVersion,
            })
            .from(hosts)
            .innerJoin(clients, eq(clients.id, hosts.clientId))
            .where(and(...filters))
            .orderBy(desc(hosts.lastSeenAt))
            .limit(q.limit);
        },
      );
      return c.json(
        { hosts: rows.map((r) => ({ ...r, lastSeenAt: r.lastSeenAt ? r.lastSeenAt.getTime() : null })) },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/hosts/{id}",
      summary: "A host's liveness, live from its hub",
      security,
      request: { params: IdParam },
      responses: { 200: jsonResponse(z.record(z.string(), z.unknown()), "The host"), ...errorResponses },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      requireClientAccess(identityOf(c), id);
      if (!isClientId(id)) throw new FleetdeckError("NOT_FOUND", "no such host");
      return c.json(await unwrap(hubFor(c.env, id).getHost()), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/hosts/{id}/timeline",
      summary: "One ordered log per host: connectivity changes and command transitions, newest first",
      security,
      request: {
        params: IdParam,
        query: z.object({
          limit: z.coerce.number().int().min(1).max(500).default(100),
          cursor: z.coerce.number().int().min(1).optional(),
        }),
      },
      responses: { 200: jsonResponse(z.record(z.string(), z.unknown()), "A page"), ...errorResponses },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const q = c.req.valid("query");
      requireClientAccess(identityOf(c), id);
      if (!isClientId(id)) throw new FleetdeckError("NOT_FOUND", "no such host");
      const page = await unwrap(
        hubFor(c.env, id).timeline({ limit: q.limit, ...(q.cursor ? { before: q.cursor } : {}) }),
      );
      return c.json({ entries: page.entries, nextCursor: page.next }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/api/hosts/{id}/settings",
      summary: "A host's own stale threshold (null goes back to the fleet default)",
      security,
      request: {
        params: IdParam,
        body: {
          required: true,
          content: {
            "application/json": {
              schema: z.strictObject({ staleThresholdSec: z.number().int().min(2).max(3600).nullable() }),
            },
          },
        },
      },
      responses: { 200: jsonResponse(z.record(z.string(), z.unknown()), "The host"), ...errorResponses },
    }),
    async (c) => {
      requireRole(identityOf(c), "operator");
      const { id } = c.req.valid("param");
      if (!isClientId(id)) throw new FleetdeckError("NOT_FOUND", "no such host");
      return c.json(
        await unwrap(hubFor(c.env, id).setStaleThreshold(c.req.valid("json").staleThresholdSec)),
        200,
      );
    },
  );

  /** The operators' fleet event stream: `?topics=host.*,command.failed`, resumable with Last-Event-ID. */
  app.get("/api/stream", async (c) => {
    requireRole(identityOf(c), "viewer");
    const topics = c.req.query("topics") ?? "*";
    const filters = topics.split(",").map((t) => t.trim());
    if (filters.some((f) => !/^(\*|[a-z]+\.\*|[a-z]+\.[a-z_]+)$/.test(f))) {
      throw new FleetdeckError("VALIDATION_FAILED", "topics look like host.stale, host.* or *", {
        details: { issues: [{ path: ["topics"], message: "invalid topic filter" }] },
      });
    }
    const lastEventId = c.req.header("last-event-id") ?? c.req.query("lastEventId") ?? "";
    const url = new URL("https://feed/stream");
    url.searchParams.set("topics", filters.join(","));
    url.searchParams.set("heartbeatMs", String(settingsOf(c.env).SSE_HEARTBEAT_MS));
    if (/^\d{1,15}$/.test(lastEventId)) url.searchParams.set("lastEventId", lastEventId);
    const feed = c.env.FLEET_FEED.get(c.env.FLEET_FEED.idFromName("fleet"));
    return feed.fetch(url.toString(), { signal: c.req.raw.signal });
  });

  return app;
}
