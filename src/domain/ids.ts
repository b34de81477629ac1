/**
 * Ids are ULIDs (time-ordered, 26 Crockford base32 chars) behind a type prefix. A command id
 * carries its client's ULID, so the edge routes it to the right ClientHub with no lookup and
 * can tell at once that a command belongs to someone else.
 */
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export function ulid(now: number = Date.now()): string {
  let time = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const random = new Uint8Array(16);
  crypto.getRandomValues(random);
  let rand = "";
  for (const byte of random) rand += CROCKFORD[byte % 32];
  return time + rand;
}

const ULID = "[0-9A-HJKMNP-TV-Z]{26}";
export const CLIENT_ID_PATTERN = new RegExp(`^cl_(${ULID})$`);
export const COMMAND_ID_PATTERN = new RegExp(`^cmd_(${ULID})_(${ULID})$`);

export function newClientId(): string {
  return `cl_${ulid()}`;
}

export function newCommandId(clientId: string, now?: number): string {
  const match = CLIENT_ID_PATTERN.exec(clientId);
  if (!match) throw new Error(`not a client id: ${clientId}`);
  return `cmd_${match[1]}_${ulid(now)}`;
}

/** The owning client of a command id, or null for anything that is not one. */
export function clientIdOfCommand(commandId: string): string | null {
  const match = COMMAND_ID_PATTERN.exec(commandId);
  return match ? `cl_${match[1]}` : null;
}

export function isClientId(value: string): boolean {
  return CLIENT_ID_PATTERN.test(value);
}

export function newTokenId(): string {
  return `tok_${ulid()}`;
}

/** Random URL-safe secret of `bytes` bytes of entropy. */
export function randomSecret(bytes = 32): string {
  const buf = new Uint8Array(bytes);
  crypto.getRandomValues(buf);
  let binary = "";
  for (const b of buf) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export const SESSION_ID_PATTERN = new RegExp(`^ses_(${ULID})_(${ULID})$`);

export function newSessionId(clientId: string): string {
  const match = CLIENT_ID_PATTERN.exec(clientId);
  if (!match) throw new Error(`not a client id: ${clientId}`);
  return `ses_${match[1]}_${ulid()}`;
}

export function clientIdOfSession(sessionId: string): string | null {
  const match = SESSION_ID_PATTERN.exec(sessionId);
  return match ? `cl_${match[1]}` : null;
}
