import type { Command, CreateCommand } from "../src/domain/command.js";
import { isClientId, newCommandId, sha256Hex } from "../src/domain/ids.js";
import { canonicalJson } from "../src/protocol/canonical-json.js";
import { FleetdeckError } from "../src/protocol/errors.js";
import type { Env } from "./env.js";
import { hubFor, unwrap } from "./hub-client.js";

/**
 * Every way a command comes in (the API, a batch, QStash, an inbound hook) ends here: the
 * client's hub stores it and, when its agent is connected, pushes it at once.
 */
export async function createCommandFor(
  env: Env,
  input: CreateCommand,
  options: {
    cause: string;
    idempotencyKey?: string | null;
    replayGuard?: { hash: string; expiresAt: number };
  },
): Promise<{ replayed: boolean; command: Command }> {
  if (!isClientId(input.clientId)) throw new FleetdeckError("NOT_FOUND", "no such client");
  const idempotencyKey = options.idempotencyKey ?? null;
  return unwrap(
    hubFor(env, input.clientId).createCommand({
      id: newCommandId(input.clientId),
      action: input.action,
      payload: input.payload,
      priority: input.priority,
      timeoutSec: input.timeoutSec,
      deadline: input.deadline ?? (input.ttlSec !== undefined ? Date.now() + input.ttlSec * 1000 : null),
      coalesceKey: input.coalesceKey ?? null,
      idempotencyKey,
      bodyHash: idempotencyKey ? await sha256Hex(canonicalJson(input)) : null,
      cause: options.cause,
      ...(options.replayGuard ? { replayGuard: options.replayGuard } : {}),
    }),
  );
}
