import { DurableObject } from "cloudflare:workers";
import { migrateStorage, type StorageMigration } from "./do-storage.js";
import type { Env } from "./env.js";

const MIGRATIONS: readonly StorageMigration[] = [
  [
    // The fleet event log operators resume from with Last-Event-ID (issue 5 fills it).
    `CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, client_id TEXT, at INTEGER NOT NULL, data TEXT NOT NULL)`,
  ],
];

/** The one fan-out point for fleet events to operator SSE streams. */
export class FleetFeed extends DurableObject<Env> {
  private schemaVersion = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      this.schemaVersion = migrateStorage(ctx.storage.sql, MIGRATIONS);
    });
  }

  override async fetch(request: Request): Promise<Response> {
    if (new URL(request.url).pathname === "/status") {
      return Response.json({ status: "ready", schemaVersion: this.schemaVersion });
    }
    return Response.json(
      { error: { code: "NOT_FOUND", message: "no such feed route", retryable: false } },
      { status: 404 },
    );
  }
}
