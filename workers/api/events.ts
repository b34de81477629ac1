import { isClientId } from "../../src/domain/ids.js";
import { FleetdeckError } from "../../src/protocol/errors.js";
import { identityOf, requireRole } from "../auth.js";
import { settingsOf } from "../env.js";
import { hubFor } from "../hub-client.js";
import { createRouter } from "./openapi.js";

/**
 * GET /api/events/:clientId, the client's SSE stream. Its own agent (client key) gets the
 * command stream with resume; operators (viewer and up) may watch it read-only. A second
 * agent stream for the same client replaces the first, which is closed.
 */
export function eventRoutes() {
  const app = createRouter();
  app.get("/api/events/:clientId", async (c) => {
    const clientId = c.req.param("clientId");
    const identity = identityOf(c);
    let mode: "agent" | "watch";
    if (identity.kind === "client") {
      if (identity.clientId !== clientId) throw new FleetdeckError("NOT_FOUND", "no such resource");
      mode = "agent";
    } else {
      requireRole(identity, "viewer");
      if (!isClientId(clientId)) throw new FleetdeckError("NOT_FOUND", "no such client");
      mode = "watch";
    }
    const lastEventId = c.req.header("last-event-id") ?? c.req.query("lastEventId") ?? "";
    if (lastEventId !== "" && !/^\d{1,15}$/.test(lastEventId)) {
      throw new FleetdeckError("VALIDATION_FAILED", "Last-Event-ID must be an event id from this stream", {
        details: { issues: [{ path: ["lastEventId"], message: "expected a non-negative integer" }] },
      });
    }
    const hub = hubFor(c.env, clientId);
    if (mode === "watch") {
      // Watching a client that does not exist is a 404, not an empty stream.
      const exists = await hub.getClient();
      if (!exists.ok) throw new FleetdeckError("NOT_FOUND", "no such client");
    }
    const url = new URL("https://hub/events");
    url.searchParams.set("mode", mode);
    url.searchParams.set("heartbeatMs", String(settingsOf(c.env).SSE_HEARTBEAT_MS));
    if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
    return hub.fetch(url.toString(), { signal: c.req.raw.signal });
  });
  return app;
}
