/**
 * How QStash signs a delivery: an HS256 JWT in `Upstash-Signature` with iss "Upstash",
 * sub = destination URL, iat/nbf/exp, jti = message id, and body = base64url(SHA-256(raw body)).
 * Shared by the emulator and by tests that need to forge a bad signature on purpose.
 */
import { createHash, createHmac } from "node:crypto";

export interface SignatureClaims {
  url: string;
  body: Uint8Array | string;
  messageId: string;
  /** Seconds since the epoch; defaults to now. */
  now?: number;
  ttlSec?: number;
  issuer?: string;
}

export function base64url(input: Buffer | string): string {
  return Buffer.from(input).toString("base64url");
}

export function bodyHash(body: Uint8Array | string): string {
  return createHash("sha256").update(body).digest("base64url");
}

export function signDelivery(signingKey: string, claims: SignatureClaims): string {
  const now = claims.now ?? Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = base64url(
    JSON.stringify({
      iss: claims.issuer ?? "Upstash",
      sub: claims.url,
      exp: now + (claims.ttlSec ?? 300),
      nbf: now,
      iat: now,
      jti: claims.messageId,
      body: bodyHash(claims.body),
    }),
  );
  const signature = createHmac("sha256", signingKey).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}
