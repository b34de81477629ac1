import { DurableObject } from "cloudflare:workers";
import { topicMatches } from "../src/domain/event.js";
import { formatSse } from "../src/protocol/sse.js";
import { migrateStorage, type StorageMigration } from "./do-storage.js";
import { type Env, settingsOf } from "./env.js";
import { openRedis } from "./redis.js";

const MIGRATIONS: readonly StorageMigration[] = [
  [
    `CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, client_id TEXT, at INTEGER NOT NULL, data TEXT NOT NULL)`,
  ],
  [
    // The publisher's id: a hub that publishes a batch again (after a lost answer) adds nothing.
    `ALTER TABLE events ADD COLUMN event_id TEXT`,
    `CREATE UNIQUE INDEX events_event_id ON events (event_id)`,
  ],
  [
    // Hosts the cron sweep found overdue, poked by this object's alarm a batch at a time.
    `CREATE TABLE sweep_queue (client_id TEXT PRIMARY KEY, queued_at INTEGER NOT NULL)`,
  ],
];

const SWEEP_BATCH = 50;

/** How many events are kept for resume. */
const RETAIN = 10_000;
const encoder = new TextEncoder();

export interface FleetEventInput {
  eventId: string;
  topic: string;
  clientId: string | null;
  at: number;
  data: Record<string, unknown>;
}

interface Watcher {
  filters: string[];
  writer: WritableStreamDefaultWriter<Uint8Array>;
  closed: boolean;
}

/**
 * The one fan-out point for fleet events: every hub publishes here; operators watch
 * `GET /api/stream?topics=host.*,session.crashed` and resume with Last-Event-ID.
 */
export class FleetFeed extends DurableObject<Env> {
  private schemaVersion = 0;
  private readonly watchers = new Set<Watcher>();
  private heartbeat: ReturnType<typeof setInterval> | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      this.schemaVersion = migrateStorage(ctx.storage.sql, MIGRATIONS);
    });
  }

  /** Store and fan out; answers how many were new. Idempotent per eventId. */
  async publish(events: FleetEventInput[]): Promise<{ stored: number }> {
    let stored = 0;
    for (const e of events) {
      const row = this.ctx.storage.sql
        .exec<{ seq: number }>(
          "INSERT INTO events (event_id, topic, client_id, at, data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
          e.eventId,
          e.topic,
          e.clientId,
          e.at,
          JSON.stringify(e.data),
        )
        .toArray()[0];
      if (!row) continue;
      stored++;
      const frame = formatSse({
        id: row.seq,
        event: e.topic,
        data: { id: e.eventId, topic: e.topic, clientId: e.clientId, at: e.at, data: e.data },
      });
      for (const w of this.watchers)
        if (w.filters.some((f) => topicMatches(f, e.topic))) this.write(w, frame);
    }
    if (stored > 0)
      this.ctx.storage.sql.exec("DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?", RETAIN);
    return { stored };
  }

  /** Queue overdue hosts (deduplicated) for their hubs to check; the alarm does the pokes. */
  async sweep(clientIds: string[]): Promise<{ queued: number }> {
    const now = Date.now();
    for (const id of clientIds) {
      this.ctx.storage.sql.exec(
        "INSERT INTO sweep_queue (client_id, queued_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        id,
        now,
      );
    }
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now);
    return { queued: clientIds.length };
  }

  /** One batch of pokes per run; hubs already offline (or gone) leave the presence index. */
  override async alarm(): Promise<void> {
    const batch = this.ctx.storage.sql
      .exec<{ client_id: string }>(
        "SELECT client_id FROM sweep_queue ORDER BY queued_at LIMIT ?",
        SWEEP_BATCH,
      )
      .toArray()
      .map((r) => r.client_id);
    const settled: string[] = [];
    await Promise.all(
      batch.map(async (clientId) => {
        const hub = this.env.CLIENT_HUB.get(this.env.CLIENT_HUB.idFromName(clientId)) as unknown as {
          checkLiveness(): Promise<{ ok: boolean; value?: { status: string } }>;
        };
        try {
          const answer = await hub.checkLiveness();
          if (!answer.ok || answer.value?.status === "offline") settled.push(clientId);
        } catch {
          // Left in the presence index: the next sweep tries again.
        }
      }),
    );
    if (settled.length > 0) {
      await openRedis(settingsOf(this.env))
        .zrem(settingsOf(this.env).PRESENCE_KEY, ...settled)
        .catch(() => {});
    }
    for (const id of batch) this.ctx.storage.sql.exec("DELETE FROM sweep_queue WHERE client_id = ?", id);
    const left = this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM sweep_queue").one().n;
    if (left > 0) await this.ctx.storage.setAlarm(Date.now());
  }

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/status")
      return Response.json({
        status: "ready",
        schemaVersion: this.schemaVersion,
        watchers: this.watchers.size,
      });
    if (url.pathname !== "/stream") {
      return Response.json(
        { error: { code: "NOT_FOUND", message: "no such feed route", retryable: false } },
        { status: 404 },
      );
    }
    const filters = (url.searchParams.get("topics") ?? "*").split(",").filter(Boolean);
    const lastEventId = Number(url.searchParams.get("lastEventId") ?? "");
    const heartbeatMs = Math.max(
      100,
      Math.min(Number(url.searchParams.get("heartbeatMs") ?? 15_000), 15_000),
    );
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const watcher: Watcher = { filters, writer: writable.getWriter(), closed: false };
    watcher.writer.closed.then(
      () => this.forget(watcher),
      () => this.forget(watcher),
    );
    this.write(watcher, formatSse({ retry: 2000 }));
    if (Number.isInteger(lastEventId) && lastEventId >= 0 && url.searchParams.has("lastEventId")) {
      const rows = this.ctx.storage.sql
        .exec<{
          seq: number;
          event_id: string;
          topic: string;
          client_id: string | null;
          at: number;
          data: string;
        }>(
          "SELECT seq, event_id, topic, client_id, at, data FROM events WHERE seq > ? ORDER BY seq",
          lastEventId,
        )
        .toArray();
      for (const r of rows) {
        if (!filters.some((f) => topicMatches(f, r.topic))) continue;
        this.write(
          watcher,
          formatSse({
            id: r.seq,
            event: r.topic,
            data: {
              id: r.event_id,
              topic: r.topic,
              clientId: r.client_id,
              at: r.at,
              data: JSON.parse(r.data),
            },
          }),
        );
      }
    }
    this.watchers.add(watcher);
    this.heartbeat ??= setInterval(() => {
      const frame = formatSse({ event: "heartbeat", data: { at: Date.now() } });
      for (const w of this.watchers) this.write(w, frame);
      if (this.watchers.size === 0 && this.heartbeat !== null) {
        clearInterval(this.heartbeat);
        this.heartbeat = null;
      }
    }, heartbeatMs);
    return new Response(readable, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        "x-accel-buffering": "no",
      },
    });
  }

  private write(w: Watcher, frame: string): void {
    if (w.closed) return;
    w.writer.write(encoder.encode(frame)).catch(() => this.forget(w));
  }

  private forget(w: Watcher): void {
    w.closed = true;
    this.watchers.delete(w);
  }
}
