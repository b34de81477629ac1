import { createRoute } from "@hono/zod-openapi";
import { and, desc, eq, type SQL } from "drizzle-orm";
import { z } from "zod";
import { alerts } from "../../src/db/schema.js";
import {
  type Alert,
  AlertReportBatchSchema,
  AlertSchema,
  AlertSeveritySchema,
  AlertStateSchema,
} from "../../src/domain/alert.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import { identityOf, listingScope } from "../auth.js";
import { afterCursor, encodeCursor } from "../cursor.js";
import { withDatabase } from "../db.js";
import { settingsOf } from "../env.js";
import { hubFor, unwrap } from "../hub-client.js";
import { createRouter, errorResponses, jsonBody, jsonResponse, security } from "./openapi.js";

const ListQuery = z.object({
  clientId: z.string().max(64).optional(),
  severity: AlertSeveritySchema.optional(),
  rule: z.string().max(128).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const HistoryQuery = ListQuery.extend({
  state: AlertStateSchema.optional(),
  cursor: z.string().max(200).optional(),
});

type Row = typeof alerts.$inferSelect;

function toAlert(r: Row): Alert {
  return {
    id: r.id,
    clientId: r.clientId,
    rule: r.rule,
    state: r.state as Alert["state"],
    severity: r.severity as Alert["severity"],
    labels: (r.labels ?? {}) as Record<string, string>,
    value: r.value,
    summary: r.summary,
    triggeredAt: r.triggeredAt.getTime(),
    resolvedAt: r.resolvedAt ? r.resolvedAt.getTime() : null,
  };
}

export function alertRoutes() {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/alerts",
      summary: "Agent: alert changes it evaluated (fired, resolved), with their original times",
      description:
        "Each (alertId, state) is taken once; a repeated forward answers 200 and counts as a duplicate. Each accepted change is published as alert.triggered or alert.resolved and stored in Postgres.",
      security,
      request: { body: jsonBody(AlertReportBatchSchema) },
      responses: {
        200: jsonResponse(z.object({ accepted: z.number(), duplicates: z.number() }), "Recorded"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const identity = identityOf(c);
      if (identity.kind !== "client") throw new FleetdeckError("FORBIDDEN", "only an agent reports alerts");
      const { alerts: reports } = c.req.valid("json");
      return c.json(await unwrap(hubFor(c.env, identity.clientId).reportAlerts(reports)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/alerts",
      summary: "Alerts firing now, newest first",
      description: "From Postgres; an alert appears once its hub's outbox has drained (OUTBOX_FLUSH_MS).",
      security,
      request: { query: ListQuery },
      responses: {
        200: jsonResponse(z.object({ alerts: z.array(AlertSchema) }), "Firing alerts"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const clientId = listingScope(identityOf(c), q.clientId);
      const rows = await selectAlerts(c, [eq(alerts.state, "firing"), ...filters(clientId, q)], q.limit);
      return c.json({ alerts: rows.map(toAlert) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/alerts/history",
      summary: "Every alert, firing or resolved, newest first, paged",
      security,
      request: { query: HistoryQuery },
      responses: {
        200: jsonResponse(
          z.object({ alerts: z.array(AlertSchema), nextCursor: z.string().nullable() }),
          "A page of alerts",
        ),
        ...errorResponses,
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const clientId = listingScope(identityOf(c), q.clientId);
      const where = filters(clientId, q);
      if (q.state) where.push(eq(alerts.state, q.state));
      if (q.cursor) where.push(afterCursor(q.cursor, alerts.triggeredAt, alerts.id));
      const rows = await selectAlerts(c, where, q.limit + 1);
      const page = rows.slice(0, q.limit);
      const last = page.at(-1);
      return c.json(
        {
          alerts: page.map(toAlert),
          nextCursor:
            rows.length > q.limit && last ? encodeCursor(last.triggeredAt.getTime(), last.id) : null,
        },
        200,
      );
    },
  );

  return app;
}

function filters(clientId: string | undefined, q: z.infer<typeof ListQuery>): SQL[] {
  const out: SQL[] = [];
  if (clientId) out.push(eq(alerts.clientId, clientId));
  if (q.severity) out.push(eq(alerts.severity, q.severity));
  if (q.rule) out.push(eq(alerts.rule, q.rule));
  return out;
}

/** Alerts from Postgres, newest first. */
function selectAlerts(
  c: { env: Parameters<typeof settingsOf>[0]; executionCtx: { waitUntil(p: Promise<unknown>): void } },
  where: SQL[],
  limit: number,
): Promise<Row[]> {
  return withDatabase(
    settingsOf(c.env),
    (p) => c.executionCtx.waitUntil(p),
    (db) =>
      db
        .select()
        .from(alerts)
        .where(where.length > 0 ? and(...where) : undefined)
        .orderBy(desc(alerts.triggeredAt), desc(alerts.id))
        .limit(limit),
  );
}
