/**
 * Who is calling. Operators present API tokens (`fd_...`, stored hashed in Postgres, or the
 * bootstrap ADMIN_TOKEN); agents present their client key (`sk_<clientId>_<secret>`), checked
 * by the client's own hub so agents keep working while Postgres is down. Every failure is
 * the same 401, so a caller learns nothing about which part was wrong.
 */
import { and, eq, isNull } from "drizzle-orm";
import { createMiddleware } from "hono/factory";
import { endTime, startTime, wrapTime } from "hono/timing";
import { apiTokens } from "../src/db/schema.js";
import { parseClientKey } from "../src/domain/client.js";
import { sha256Hex } from "../src/domain/ids.js";
import { FleetdeckError } from "../src/protocol/errors.js";
import type { AppEnv } from "./app-env.js";
import { openDatabase } from "./db.js";
import { settingsOf } from "./env.js";
import { hubFor } from "./hub-client.js";
import { constantTimeEqual } from "./secrets.js";

export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export type Identity =
  | { kind: "operator"; role: Role; tokenId: string }
  | { kind: "client"; clientId: string };

export const UNAUTHORIZED_MESSAGE = "missing, invalid or revoked credentials";

function unauthorized(): FleetdeckError {
  return new FleetdeckError("UNAUTHORIZED", UNAUTHORIZED_MESSAGE);
}

// The ADMIN_TOKEN's digest, computed once per isolate (and again if the secret changes).
let adminDigest: { token: string; digest: Promise<string> } | undefined;

/** Whether a token's digest is the ADMIN_TOKEN's: compared in constant time, so lengths never leak. */
async function isAdminDigest(digest: string, adminToken: string): Promise<boolean> {
  if (adminDigest?.token !== adminToken) adminDigest = { token: adminToken, digest: sha256Hex(adminToken) };
  return constantTimeEqual(digest, await adminDigest.digest);
}

/** Resolves the caller or answers 401. Sets `identity` on the context. */
export const authenticate = createMiddleware<AppEnv>(async function authenticate(c, next) {
  const header = c.req.header("authorization") ?? "";
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  // EventSource clients cannot set headers; the stream also accepts ?access_token=.
  const token =
    match?.[1] ?? (c.req.path.startsWith("/api/events/") ? c.req.query("access_token") : undefined);
  if (!token) throw unauthorized();

  const clientKey = parseClientKey(token);
  if (clientKey) {
    const ok = await wrapTime(
      c,
      "auth",
      hubFor(c.env, clientKey.clientId).verifyKey(await sha256Hex(clientKey.secret)),
      "client key checked by its hub",
    );
    if (!ok) throw unauthorized();
    c.set("identity", { kind: "client", clientId: clientKey.clientId });
    return next();
  }

  const hash = await sha256Hex(token);
  const adminToken = c.env.ADMIN_TOKEN;
  if (adminToken && (await isAdminDigest(hash, adminToken))) {
    c.set("identity", { kind: "operator", role: "admin", tokenId: "bootstrap" });
    return next();
  }

  if (!token.startsWith("fd_")) throw unauthorized();
  const handle = openDatabase(settingsOf(c.env));
  let rows: { id: string; role: string }[];
  startTime(c, "auth", "API token looked up in Postgres");
  try {
    rows = await handle.db
      .select({ id: apiTokens.id, role: apiTokens.role })
      .from(apiTokens)
      .where(and(eq(apiTokens.tokenHash, hash), isNull(apiTokens.revokedAt)))
      .limit(1);
  } catch (error) {
    throw new FleetdeckError(
      "DEPENDENCY_UNAVAILABLE",
      "cannot check the API token: Postgres is unavailable",
      {
        retryAfterSec: 5,
        cause: error,
      },
    );
  } finally {
    endTime(c, "auth");
    c.executionCtx.waitUntil(handle.close());
  }
  const row = rows[0];
  if (!row) throw unauthorized();
  c.set("identity", { kind: "operator", role: row.role as Role, tokenId: row.id });
  return next();
});

export function identityOf(c: { get(key: "identity"): Identity | undefined }): Identity {
  const identity = c.get("identity");
  if (!identity) throw unauthorized();
  return identity;
}

/** Operators with at least `role`. Agents are refused with 403 (they are known, not allowed). */
export function requireRole(identity: Identity, role: Role): Extract<Identity, { kind: "operator" }> {
  if (identity.kind !== "operator") {
    throw new FleetdeckError("FORBIDDEN", "client keys cannot use this route");
  }
  if (ROLES.indexOf(identity.role) < ROLES.indexOf(role)) {
    throw new FleetdeckError(
      "FORBIDDEN",
      `this route needs the ${role} role; the token has ${identity.role}`,
    );
  }
  return identity;
}

/**
 * Reading a client's resources: viewers and up see every client; an agent sees only its own,
 * and anyone else's answers 404 as if it did not exist.
 */
export function requireClientAccess(identity: Identity, clientId: string, minRole: Role = "viewer"): void {
  if (identity.kind === "client") {
    if (identity.clientId !== clientId) throw new FleetdeckError("NOT_FOUND", "no such resource");
    return;
  }
  requireRole(identity, minRole);
}

/** Agent-only actions (ack, progress, result) on the agent's own client. */
export function requireAgentOf(identity: Identity, clientId: string): void {
  if (identity.kind !== "client")
    throw new FleetdeckError("FORBIDDEN", "only the client's agent can do this");
  if (identity.clientId !== clientId) throw new FleetdeckError("NOT_FOUND", "no such resource");
}

/**
 * The client a listing is about: an agent may list only its own (anyone else's is 404), an
 * operator any client, or the whole fleet when none is named. A named id must look like one.
 */
export function listingScope(identity: Identity, requested: string | undefined): string | undefined {
  let clientId = requested;
  if (identity.kind === "client") {
    if (clientId && clientId !== identity.clientId) throw new FleetdeckError("NOT_FOUND", "no such client");
    clientId = identity.clientId;
  } else {
    requireRole(identity, "viewer");
  }
  if (clientId !== undefined && !/^cl_[0-9A-HJKMNP-TV-Z]{26}$/.test(clientId))
    throw new FleetdeckError("NOT_FOUND", "no such client");
  return clientId;
}
