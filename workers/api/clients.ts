import { createRoute } from "@hono/zod-openapi";
import { and, desc, eq, isNull, lt } from "drizzle-orm";
import { z } from "zod";
import { clients } from "../../src/db/schema.js";
import { ClientSchema, CreateClientSchema } from "../../src/domain/client.js";
import { isClientId, newClientId, randomSecret, sha256Hex } from "../../src/domain/ids.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import type { HubClientRecord } from "../../src/protocol/hub.js";
import { identityOf, requireClientAccess, requireRole } from "../auth.js";
import { withDatabase } from "../db.js";
import { settingsOf } from "../env.js";
import { hubFor, unwrap } from "../hub-client.js";
import { createRouter, errorResponses, jsonBody, jsonResponse, security } from "./openapi.js";

const IdParam = z.object({ id: z.string().min(1).max(64) });
const ClientWithKeySchema = ClientSchema.extend({
  clientKey: z.string().describe("sk_<id>_<secret>; shown only in this answer"),
});

function toClient(record: HubClientRecord) {
  return {
    id: record.id,
    name: record.name,
    tags: record.tags,
    metadata: record.metadata,
    createdAt: record.createdAt,
    keyRotatedAt: record.keyRotatedAt,
  };
}

export function clientRoutes() {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/clients",
      summary: "Register a client (a host and its agent)",
      description: "Answers the client key `sk_<id>_<secret>` once; only a hash of the secret is stored.",
      security,
      request: { body: jsonBody(CreateClientSchema) },
      responses: { 201: jsonResponse(ClientWithKeySchema, "Created"), ...errorResponses },
    }),
    async (c) => {
      requireRole(identityOf(c), "admin");
      const input = c.req.valid("json");
      const id = newClientId();
      const secret = randomSecret(32);
      const keyHash = await sha256Hex(secret);
      const createdAt = Date.now();
      const record = {
        id,
        name: input.name,
        tags: input.tags ?? [],
        metadata: input.metadata ?? {},
        createdAt,
      };
      // Postgres first (the fleet's directory), then the hub (which checks the key from then on).
      await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        (db) => db.insert(clients).values({ ...record, keyHash, createdAt: new Date(createdAt) }),
      );
      try {
        await unwrap(hubFor(c.env, id).init({ ...record, keyRotatedAt: null, keyHash }));
      } catch (error) {
        await withDatabase(
          settingsOf(c.env),
          (p) => c.executionCtx.waitUntil(p),
          (db) => db.delete(clients).where(eq(clients.id, id)),
        );
        throw error;
      }
      return c.json({ ...record, keyRotatedAt: null, clientKey: `sk_${id}_${secret}` }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/clients",
      summary: "List clients",
      security,
      request: {
        query: z.object({
          limit: z.coerce.number().int().min(1).max(200).default(50),
          cursor: z.string().max(64).optional(),
          tag: z.string().max(64).optional(),
        }),
      },
      responses: {
        200: jsonResponse(
          z.object({ clients: z.array(ClientSchema), nextCursor: z.string().nullable() }),
          "A page",
        ),
        ...errorResponses,
      },
    }),
    async (c) => {
      requireRole(identityOf(c), "viewer");
      const { limit, cursor, tag } = c.req.valid("query");
      const rows = await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        async (db) => {
          const filters = [isNull(clients.deletedAt)];
          if (cursor) filters.push(lt(clients.id, cursor));
          const query = db
            .select()
            .from(clients)
            .where(and(...filters))
            .orderBy(desc(clients.id))
            .limit(limit + 1);
          const all = await query;
          return tag ? all.filter((r) => r.tags.includes(tag)) : all;
        },
      );
      const page = rows.slice(0, limit);
      return c.json(
        {
          clients: page.map((r) => ({
            id: r.id,
            name: r.name,
            tags: r.tags,
            metadata: r.metadata as Record<string, unknown>,
            createdAt: r.createdAt.getTime(),
            keyRotatedAt: r.keyRotatedAt ? r.keyRotatedAt.getTime() : null,
          })),
          nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/clients/{id}",
      summary: "Get a client",
      security,
      request: { params: IdParam },
      responses: { 200: jsonResponse(ClientSchema, "The client"), ...errorResponses },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      requireClientAccess(identityOf(c), id);
      if (!isClientId(id)) throw new FleetdeckError("NOT_FOUND", "no such client");
      return c.json(toClient(await unwrap(hubFor(c.env, id).getClient())), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/clients/{id}",
      summary: "Delete a client",
      description:
        "Its key stops working, its stream closes and its live commands are canceled. Its history stays in Postgres.",
      security,
      request: { params: IdParam },
      responses: { 204: { description: "Deleted" }, ...errorResponses },
    }),
    async (c) => {
      requireRole(identityOf(c), "admin");
      const { id } = c.req.valid("param");
      if (!isClientId(id)) throw new FleetdeckError("NOT_FOUND", "no such client");
      await unwrap(hubFor(c.env, id).remove());
      await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        (db) =>
          db.update(clients).set({ deletedAt: new Date(), updatedAt: new Date() }).where(eq(clients.id, id)),
      );
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/clients/{id}/rotate-key",
      summary: "Issue a new client key",
      description: "The old key stops working at once (its open stream is closed).",
      security,
      request: { params: IdParam },
      responses: { 200: jsonResponse(ClientWithKeySchema, "The new key, shown once"), ...errorResponses },
    }),
    async (c) => {
      requireRole(identityOf(c), "admin");
      const { id } = c.req.valid("param");
      if (!isClientId(id)) throw new FleetdeckError("NOT_FOUND", "no such client");
      const secret = randomSecret(32);
      const keyHash = await sha256Hex(secret);
      const record = await unwrap(hubFor(c.env, id).rotateKey(keyHash));
      await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        (db) =>
          db
            .update(clients)
            .set({ keyHash, keyRotatedAt: new Date(), updatedAt: new Date() })
            .where(eq(clients.id, id)),
      );
      return c.json({ ...toClient(record), clientKey: `sk_${id}_${secret}` }, 200);
    },
  );

  return app;
}
