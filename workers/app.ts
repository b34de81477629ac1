import { OpenAPIHono } from "@hono/zod-openapi";
import { Scalar } from "@scalar/hono-api-reference";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import { timing } from "hono/timing";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { FleetdeckError, internalErrorBody, isFleetdeckError } from "../src/protocol/errors.js";
import { alertRoutes } from "./api/alerts.js";
import { clientRoutes } from "./api/clients.js";
import { commandRoutes } from "./api/commands.js";
import { eventRoutes } from "./api/events.js";
import { hookRuleRoutes, inboundHookRoutes } from "./api/hooks.js";
import { hostRoutes } from "./api/hosts.js";
import { scheduleRoutes } from "./api/schedules.js";
import { sessionRoutes } from "./api/sessions.js";
import { subscriptionRoutes } from "./api/subscriptions.js";
import { tokenRoutes } from "./api/tokens.js";
import { webhookRoutes } from "./api/webhooks.js";
import type { AppEnv } from "./app-env.js";
import { authenticate } from "./auth.js";
import { settingsOf } from "./env.js";
import { log } from "./log.js";
import { rateLimit } from "./rate-limit.js";
import { checkReadiness } from "./readiness.js";

export type { AppEnv } from "./app-env.js";

/** 413 before the body is parsed; the limit is MAX_BODY_BYTES. */
const limitBody = createMiddleware<AppEnv>(async (c, next) => {
  const maxSize = settingsOf(c.env).MAX_BODY_BYTES;
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new FleetdeckError("PAYLOAD_TOO_LARGE", `request body exceeds ${maxSize} bytes`, {
        details: { maxSize },
      });
    },
  })(c, next);
});

/** A body that is not JSON is refused as such, rather than validated as if it were empty. */
const requireJson = createMiddleware<AppEnv>(async (c, next) => {
  const method = c.req.method;
  const hasBody =
    (c.req.header("content-length") ?? "0") !== "0" || c.req.header("transfer-encoding") !== undefined;
  if ((method === "POST" || method === "PUT" || method === "PATCH") && hasBody) {
    const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/json") {
      throw new FleetdeckError("UNSUPPORTED_MEDIA_TYPE", "send the body as application/json", {
        details: { contentType: type || null },
      });
    }
  }
  return next();
});

const corsFromSettings = createMiddleware<AppEnv>(async (c, next) => {
  const origins = settingsOf(c.env)
    .CORS_ORIGINS.split(",")
    .map((o) => o.trim())
    .filter(Boolean);
  if (origins.length === 0) return next();
  return cors({
    origin: origins.includes("*") ? "*" : origins,
    allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
    allowMethods: ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
    exposeHeaders: ["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "Server-Timing"],
    maxAge: 600,
  })(c, next);
});

export function createApp(): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();

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

  // Signed webhooks authenticate by their signature, not a bearer token.
  app.use("/api/webhooks/*", limitBody);
  app.route("/", webhookRoutes());
  // Signed endpoints (QStash, inbound hooks) authenticate by signature; everything else by bearer token.
  const signed = (c: { req: { path: string; method: string } }) =>
    c.req.path.startsWith("/api/webhooks/") ||
    (c.req.method === "POST" && /^\/api\/hooks\/[^/]+$/.test(c.req.path));
  // Server-Timing on every API answer: where a request spent its time (auth, ratelimit, hub, total).
  // Not on streams: their responses come from a Durable Object with headers already fixed.
  app.use(
    "/api/*",
    timing({
      totalDescription: "in the Worker",
      enabled: (c) => !(c.req.path === "/api/stream" || c.req.path.startsWith("/api/events/")),
    }),
  );
  // The edge's checks, in order, for every API route but the signed ones: one middleware that
  // calls them in turn (hono/combine's every() composes the chain anew on each request, about
  // 3% of the isolate's CPU per command in bench/dispatch-profile).
  const checks: MiddlewareHandler<AppEnv>[] = [
    corsFromSettings,
    limitBody,
    requireJson,
    authenticate,
    rateLimit,
  ];
  app.use("/api/*", async (c, next) => {
    if (signed(c)) return next();
    const run = (i: number): Promise<Response | void> =>
      i === checks.length ? next() : checks[i]!(c, () => run(i + 1) as Promise<void>);
    return run(0);
  });
  app.use("/api/hooks/:hookId", async (c, next) => (c.req.method === "POST" ? limitBody(c, next) : next()));
  app.route("/", inboundHookRoutes());
  app.route("/", tokenRoutes());
  app.route("/", clientRoutes());
  app.route("/", commandRoutes());
  app.route("/", eventRoutes());
  app.route("/", hostRoutes());
  app.route("/", sessionRoutes());
  app.route("/", alertRoutes());
  app.route("/", subscriptionRoutes());
  app.route("/", scheduleRoutes());
  app.route("/", hookRuleRoutes());

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description:
      "An API token (fd_...), the ADMIN_TOKEN, or a client key (sk_<clientId>_<secret>) for agent routes",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Fleetdeck API",
      version: "0.1.0",
      description:
        'Commands for fleets of on-prem hosts. Errors are `{"error":{"code","message","details?","retryable"}}`.',
    },
  });
  app.get("/docs", Scalar({ url: "/openapi.json", pageTitle: "Fleetdeck API" }));

  app.notFound((c) =>
    c.json(
      new FleetdeckError("NOT_FOUND", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`).toBody(),
      404,
    ),
  );

  app.onError((error, c) => {
    let failure: FleetdeckError | undefined;
    if (isFleetdeckError(error)) failure = error;
    else if (error instanceof HTTPException && error.status === 400) {
      // Hono's JSON validator: the body did not parse.
      failure = new FleetdeckError("INVALID_JSON", "request body is not valid JSON");
    }
    if (failure) {
      if (failure.retryAfterSec !== undefined) c.header("Retry-After", String(failure.retryAfterSec));
      if (failure.status >= 500) {
        log("error", failure.message, {
          code: failure.code,
          path: c.req.path,
          cause: String(failure.cause ?? ""),
        });
      }
      return c.json(failure.toBody(), failure.status as ContentfulStatusCode);
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
