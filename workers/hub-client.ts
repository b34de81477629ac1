import { FleetdeckError } from "../src/protocol/errors.js";
import type { HubApi, HubResult } from "../src/protocol/hub.js";
import type { Env } from "./env.js";

/** The ClientHub of one client, by name, as a typed RPC stub. */
export function hubFor(env: Env, clientId: string): DurableObjectStub & HubApi {
  const ns = env.CLIENT_HUB;
  return ns.get(ns.idFromName(clientId)) as unknown as DurableObjectStub & HubApi;
}

/** A hub's answer, or its error re-raised as the one error type. */
export async function unwrap<T>(pending: Promise<HubResult<T>>): Promise<T> {
  let result: HubResult<T>;
  try {
    result = await pending;
  } catch (error) {
    // Platform errors carry flags; an overloaded object is not retried by the caller.
    const e = error as { retryable?: boolean; overloaded?: boolean; message?: string };
    throw new FleetdeckError("DEPENDENCY_UNAVAILABLE", "client hub unavailable", {
      retryAfterSec: e.overloaded ? 10 : 1,
      details: { retryable: Boolean(e.retryable) && !e.overloaded },
      cause: error,
    });
  }
  if (result.ok) return result.value;
  throw new FleetdeckError(result.error.code, result.error.message, { details: result.error.details });
}
