import { createRoute } from "@hono/zod-openapi";
import { and, desc, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import { apiTokens } from "../../src/db/schema.js";
import { newTokenId, randomSecret, sha256Hex } from "../../src/domain/ids.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import { identityOf, ROLES, requireRole } from "../auth.js";
import { withDatabase } from "../db.js";
import { settingsOf } from "../env.js";
import { createRouter, errorResponses, jsonBody, jsonResponse, security } from "./openapi.js";

const CreateTokenSchema = z.strictObject({
  name: z.string().min(1).max(128),
  role: z.enum(ROLES),
});

const TokenSchema = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  createdAt: z.number(),
  revokedAt: z.number().nullable(),
});

export function tokenRoutes() {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/tokens",
      summary: "Create an API token (admin)",
      description: "The token is shown only in this answer; only its SHA-256 is stored.",
      security,
      request: { body: jsonBody(CreateTokenSchema) },
      responses: {
        201: jsonResponse(TokenSchema.extend({ token: z.string() }), "Created"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const admin = requireRole(identityOf(c), "admin");
      const input = c.req.valid("json");
      const id = newTokenId();
      const token = `fd_${id.slice(4)}_${randomSecret(32)}`;
      const createdAt = new Date();
      const tokenHash = await sha256Hex(token);
      await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        (d) =>
          d.insert(apiTokens).values({
            id,
            name: input.name,
            role: input.role,
            tokenHash,
            createdBy: admin.tokenId,
            createdAt,
          }),
      );
      return c.json(
        { id, name: input.name, role: input.role, createdAt: createdAt.getTime(), revokedAt: null, token },
        201,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/tokens",
      summary: "List API tokens (admin)",
      security,
      responses: {
        200: jsonResponse(z.object({ tokens: z.array(TokenSchema) }), "Every token, newest first"),
        ...errorResponses,
      },
    }),
    async (c) => {
      requireRole(identityOf(c), "admin");
      const rows = await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        (d) => d.select().from(apiTokens).orderBy(desc(apiTokens.createdAt)),
      );
      return c.json(
        {
          tokens: rows.map((r) => ({
            id: r.id,
            name: r.name,
            role: r.role as (typeof ROLES)[number],
            createdAt: r.createdAt.getTime(),
            revokedAt: r.revokedAt ? r.revokedAt.getTime() : null,
          })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/tokens/{id}",
      summary: "Revoke an API token (admin)",
      description: "The token stops working at once.",
      security,
      request: { params: z.object({ id: z.string().min(1).max(64) }) },
      responses: { 204: { description: "Revoked" }, ...errorResponses },
    }),
    async (c) => {
      requireRole(identityOf(c), "admin");
      const { id } = c.req.valid("param");
      const revoked = await withDatabase(
        settingsOf(c.env),
        (p) => c.executionCtx.waitUntil(p),
        (d) =>
          d
            .update(apiTokens)
            .set({ revokedAt: new Date() })
            .where(and(eq(apiTokens.id, id), isNull(apiTokens.revokedAt)))
            .returning({ id: apiTokens.id }),
      );
      if (revoked.length === 0) throw new FleetdeckError("NOT_FOUND", "no such active token");
      return c.body(null, 204);
    },
  );

  return app;
}
