import { DurableObject } from "cloudflare:workers";
import { migrateStorage, type StorageMigration } from "./do-storage.js";
import type { Env } from "./env.js";
import { log } from "./log.js";

/** The hub's SQLite schema; the command plane (issue 3) adds its queue, event log and outbox. */
const MIGRATIONS: readonly StorageMigration[] = [
  [
    `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    // One alarm per object: every timed duty is a row here and the alarm is armed for the earliest.
    `CREATE TABLE schedule (kind TEXT NOT NULL, ref TEXT NOT NULL, due_at INTEGER NOT NULL, PRIMARY KEY (kind, ref))`,
    `CREATE INDEX schedule_due ON schedule (due_at)`,
  ],
];

type HubStatus = "initialising" | "ready" | "failed";

/** One per client: that client's live truth (see ARCHITECTURE.md). */
export class ClientHub extends DurableObject<Env> {
  private status: HubStatus = "initialising";
  private schemaVersion = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx
      .blockConcurrencyWhile(async () => {
        this.schemaVersion = migrateStorage(ctx.storage.sql, MIGRATIONS);
        this.status = "ready";
      })
      .catch((error: unknown) => {
        // Re-thrown outside blockConcurrencyWhile so the input gate is not left broken;
        // the next request sees the failed status and the runtime resets the object.
        this.status = "failed";
        log("error", "client hub failed to initialise", { error: String(error) });
      });
  }

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/status") {
      return Response.json({ status: this.status, schemaVersion: this.schemaVersion });
    }
    return Response.json(
      { error: { code: "NOT_FOUND", message: "no such hub route", retryable: false } },
      { status: 404 },
    );
  }

  /** Idempotent by construction: it does only what the schedule table says is due now. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    const due = this.ctx.storage.sql
      .exec<{ kind: string; ref: string }>("SELECT kind, ref FROM schedule WHERE due_at <= ?", now)
      .toArray();
    for (const entry of due) {
      this.ctx.storage.sql.exec("DELETE FROM schedule WHERE kind = ? AND ref = ?", entry.kind, entry.ref);
    }
    await this.rearm();
  }

  private async rearm(): Promise<void> {
    const next = this.ctx.storage.sql
      .exec<{ due: number | null }>("SELECT MIN(due_at) AS due FROM schedule")
      .one().due;
    if (next === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(next);
  }
}
