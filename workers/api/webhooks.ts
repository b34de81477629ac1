import { Receiver } from "@upstash/qstash";
import { z } from "zod";
import { CreateCommandSchema } from "../../src/domain/command.js";
import { sha256Hex } from "../../src/domain/ids.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import { createCommandFor } from "../create-command.js";
import { createRouter } from "./openapi.js";
import { feedOf } from "./subscriptions.js";

const SIGNATURE_REJECTED = "invalid, expired or replayed signature";

/**
 * POST /api/webhooks/qstash: a command arriving through QStash (a schedule tick, or another
 * system publishing to it). The `Upstash-Signature` JWT is checked with the current and the
 * next signing key, for this URL and this exact body. The same signature twice is a replay
 * (401, nothing created); a QStash retry carries a new signature for the same message id and
 * gets the command created the first time (idempotent by message id).
 */
export function webhookRoutes() {
  const app = createRouter();
  app.post("/api/webhooks/qstash", async (c) => {
    const { signature, body } = await verifiedQStashRequest(c);
    const claims = decodeClaims(signature);
    let parsedBody: unknown;
    try {
      parsedBody = JSON.parse(body);
    } catch {
      throw new FleetdeckError("INVALID_JSON", "request body is not valid JSON");
    }
    const input = CreateCommandSchema.safeParse(parsedBody);
    if (!input.success) {
      throw new FleetdeckError("VALIDATION_FAILED", "request failed validation", {
        details: { issues: input.error.issues.map((i) => ({ path: i.path, message: i.message })) },
      });
    }
    const messageId = c.req.header("upstash-message-id") ?? claims.jti;
    const result = await createCommandFor(c.env, input.data, {
      cause: `qstash message ${messageId}`,
      // A QStash retry (same message id, new signature) answers the command made the first time.
      idempotencyKey: `qstash:${messageId}`,
      replayGuard: {
        hash: await sha256Hex(signature),
        expiresAt: (claims.exp ?? Date.now() / 1000 + 600) * 1000 + 60_000,
      },
    });
    return c.json(result.command, result.replayed ? 200 : 201);
  });
  /** QStash's callbacks for subscriber deliveries: the outcome of each message, signed like any delivery. */
  for (const outcome of ["delivered", "dead"] as const) {
    app.post(`/api/webhooks/qstash/${outcome}`, async (c) => {
      const { body } = await verifiedQStashRequest(c);
      const parsed = CallbackSchema.safeParse(JSON.parse(body));
      if (!parsed.success) throw new FleetdeckError("VALIDATION_FAILED", "not a QStash callback body");
      const known = await feedOf(c.env).recordOutcome(
        parsed.data.sourceMessageId,
        outcome,
        parsed.data.status ?? null,
        parsed.data.retried ?? 0,
      );
      return c.json({ recorded: known }, 200);
    });
  }
  return app;
}

/**
 * The request's body and `Upstash-Signature`, once the signature is checked with the current and
 * the next signing key for this URL and this exact body; 401 otherwise.
 */
async function verifiedQStashRequest(c: {
  env: { QSTASH_CURRENT_SIGNING_KEY?: string; QSTASH_NEXT_SIGNING_KEY?: string; PUBLIC_URL?: string };
  req: { header(name: string): string | undefined; text(): Promise<string>; url: string };
}): Promise<{ signature: string; body: string }> {
  const current = c.env.QSTASH_CURRENT_SIGNING_KEY;
  const next = c.env.QSTASH_NEXT_SIGNING_KEY;
  if (!current || !next) {
    throw new FleetdeckError(
      "MISCONFIGURED",
      "missing setting: QSTASH_CURRENT_SIGNING_KEY, QSTASH_NEXT_SIGNING_KEY",
    );
  }
  const signature = c.req.header("upstash-signature");
  const body = await c.req.text();
  if (!signature) throw new FleetdeckError("UNAUTHORIZED", SIGNATURE_REJECTED);
  try {
    await new Receiver({ currentSigningKey: current, nextSigningKey: next }).verify({
      signature,
      body,
      url: publicUrl(c.env.PUBLIC_URL, c.req.url),
    });
  } catch {
    throw new FleetdeckError("UNAUTHORIZED", SIGNATURE_REJECTED);
  }
  return { signature, body };
}

const CallbackSchema = z.object({
  sourceMessageId: z.string(),
  status: z.number().int().optional(),
  retried: z.number().int().optional(),
});

/** The URL QStash signed: PUBLIC_URL (as the world sees this Worker) plus the request's path. */
function publicUrl(base: string | undefined, requestUrl: string): string {
  const u = new URL(requestUrl);
  if (!base) return u.toString();
  return `${base.replace(/\/$/, "")}${u.pathname}${u.search}`;
}

const ClaimsSchema = z.object({ jti: z.string(), exp: z.number().optional() });

function decodeClaims(jwt: string): z.infer<typeof ClaimsSchema> {
  const payload = jwt.split(".")[1] ?? "";
  const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
  return ClaimsSchema.parse(JSON.parse(json));
}
