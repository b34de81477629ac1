import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { FleetdeckError, internalErrorBody, isFleetdeckError } from "../src/protocol/errors.js";
import type { Env } from "./env.js";
import { log } from "./log.js";
import { checkReadiness } from "./readiness.js";

export type AppEnv = { Bindings: Env };

export function createApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  /** Liveness: answers while the isolate runs, touching nothing else. */
  app.get("/healthz", (c) => c.json({ status: "ok" }));

  /** Readiness: Postgres and Redis, each with its latency; 503 names what failed. */
  app.get("/readyz", async (c) => {
    const { ready, checks } = await checkReadiness(c.env, (p) => c.executionCtx.waitUntil(p));
    if (ready) return c.json({ status: "ready", checks });
    const failed = Object.entries(checks)
      .filter(([, r]) => !r.ok)
      .map(([name]) => name);
    c.header("Retry-After", "5");
    return c.json(
      {
        status: "unavailable",
        checks,
        error: {
          code: "DEPENDENCY_UNAVAILABLE",
          message: `not ready: ${failed.join(", ")} unavailable`,
          details: { failed },
          retryable: true,
        },
      },
      503,
    );
  });

  app.notFound((c) =>
    c.json(
      new FleetdeckError("NOT_FOUND", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`).toBody(),
      404,
    ),
  );

  app.onError((error, c) => {
    if (isFleetdeckError(error)) {
      if (error.retryAfterSec !== undefined) c.header("Retry-After", String(error.retryAfterSec));
      if (error.status >= 500) log("error", error.message, { code: error.code, path: c.req.path });
      return c.json(error.toBody(), error.status as ContentfulStatusCode);
    }
    log("error", "unhandled error", {
      path: c.req.path,
      error: error instanceof Error ? error.message : String(error),
      stack: error instanceof Error ? error.stack : undefined,
    });
    return c.json(internalErrorBody(), 500);
  });

  return app;
}
