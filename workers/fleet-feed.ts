import { DurableObject } from "cloudflare:workers";
import { Client as QStashClient } from "@upstash/qstash";
import { topicMatches } from "../src/domain/event.js";
import { ulid } from "../src/domain/ids.js";
import { formatSse } from "../src/protocol/sse.js";
import { migrateStorage, type StorageMigration } from "./do-storage.js";
import { type Env, settingsOf } from "./env.js";
import { log } from "./log.js";
import { openRedis } from "./redis.js";
import { buildDelivery, type StoredSubscription } from "./subscriber-delivery.js";

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
  [
    `CREATE TABLE subscriptions (id TEXT PRIMARY KEY, url TEXT NOT NULL, kind TEXT NOT NULL, topics TEXT NOT NULL, secret TEXT, created_at INTEGER NOT NULL)`,
    // One row per (event, subscription): queued -> published (handed to QStash) -> delivered | dead.
    `CREATE TABLE deliveries (
       id TEXT PRIMARY KEY, subscription_id TEXT NOT NULL, event_seq INTEGER NOT NULL, topic TEXT NOT NULL,
       status TEXT NOT NULL, retried INTEGER NOT NULL DEFAULT 0, message_id TEXT, response_status INTEGER,
       created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`,
    `CREATE INDEX deliveries_sub ON deliveries (subscription_id, created_at)`,
    `CREATE INDEX deliveries_status ON deliveries (status)`,
    `CREATE UNIQUE INDEX deliveries_message ON deliveries (message_id)`,
  ],
  [
    // Inbound webhook rules: a signed POST /api/hooks/:id becomes the command its template makes.
    `CREATE TABLE hooks (id TEXT PRIMARY KEY, name TEXT NOT NULL, secret TEXT NOT NULL, template TEXT NOT NULL, created_at INTEGER NOT NULL)`,
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
      for (const sub of this.matchingSubscriptions(e.topic)) {
        this.ctx.storage.sql.exec(
          "INSERT INTO deliveries (id, subscription_id, event_seq, topic, status, created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?)",
          `dlv_${ulid()}`,
          sub.id,
          row.seq,
          e.topic,
          Date.now(),
          Date.now(),
        );
      }
      const frame = formatSse({
        id: row.seq,
        event: e.topic,
        data: { id: e.eventId, topic: e.topic, clientId: e.clientId, at: e.at, data: e.data },
      });
      for (const w of this.watchers)
        if (w.filters.some((f) => topicMatches(f, e.topic))) this.write(w, frame);
    }
    if (stored > 0) {
      this.ctx.storage.sql.exec(
        "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ? AND seq NOT IN (SELECT event_seq FROM deliveries WHERE status = 'queued')",
        RETAIN,
      );
      await this.armSoon();
    }
    return { stored };
  }

  // ---------- inbound hooks ----------

  async addHook(hook: {
    id: string;
    name: string;
    secret: string;
    template: Record<string, unknown>;
  }): Promise<void> {
    this.ctx.storage.sql.exec(
      "INSERT INTO hooks (id, name, secret, template, created_at) VALUES (?, ?, ?, ?, ?)",
      hook.id,
      hook.name,
      hook.secret,
      JSON.stringify(hook.template),
      Date.now(),
    );
  }

  async getHook(
    id: string,
  ): Promise<{ id: string; name: string; secret: string; template: Record<string, unknown> } | null> {
    const row = this.ctx.storage.sql
      .exec<{ id: string; name: string; secret: string; template: string }>(
        "SELECT id, name, secret, template FROM hooks WHERE id = ?",
        id,
      )
      .toArray()[0];
    return row ? { ...row, template: JSON.parse(row.template) as Record<string, unknown> } : null;
  }

  async listHooks(): Promise<
    { id: string; name: string; template: Record<string, unknown>; createdAt: number }[]
  > {
    return this.ctx.storage.sql
      .exec<{ id: string; name: string; template: string; created_at: number }>(
        "SELECT id, name, template, created_at FROM hooks ORDER BY created_at",
      )
      .toArray()
      .map((r) => ({
        id: r.id,
        name: r.name,
        template: JSON.parse(r.template) as Record<string, unknown>,
        createdAt: r.created_at,
      }));
  }

  async removeHook(id: string): Promise<boolean> {
    return this.ctx.storage.sql.exec("DELETE FROM hooks WHERE id = ? RETURNING id", id).toArray().length > 0;
  }

  // ---------- subscriptions ----------

  async addSubscription(sub: StoredSubscription): Promise<void> {
    this.ctx.storage.sql.exec(
      "INSERT INTO subscriptions (id, url, kind, topics, secret, created_at) VALUES (?, ?, ?, ?, ?, ?)",
      sub.id,
      sub.url,
      sub.kind,
      JSON.stringify(sub.topics),
      sub.secret,
      Date.now(),
    );
  }

  async removeSubscription(id: string): Promise<boolean> {
    const removed =
      this.ctx.storage.sql.exec("DELETE FROM subscriptions WHERE id = ? RETURNING id", id).toArray().length >
      0;
    this.ctx.storage.sql.exec(
      "UPDATE deliveries SET status = 'canceled', updated_at = ? WHERE subscription_id = ? AND status = 'queued'",
      Date.now(),
      id,
    );
    return removed;
  }

  async listSubscriptions(): Promise<(Omit<StoredSubscription, "secret"> & { createdAt: number })[]> {
    return this.subscriptionRows().map(({ secret: _secret, ...rest }) => rest);
  }

  async deliveries(subscriptionId: string, limit: number): Promise<Record<string, SqlStorageValue>[] | null> {
    const exists =
      this.ctx.storage.sql.exec("SELECT 1 FROM subscriptions WHERE id = ?", subscriptionId).toArray().length >
      0;
    const any =
      this.ctx.storage.sql
        .exec("SELECT 1 FROM deliveries WHERE subscription_id = ? LIMIT 1", subscriptionId)
        .toArray().length > 0;
    if (!exists && !any) return null;
    return this.ctx.storage.sql
      .exec<Record<string, SqlStorageValue>>(
        `SELECT d.id, d.topic, d.status, d.retried, d.message_id AS messageId, d.response_status AS responseStatus,
                d.created_at AS createdAt, d.updated_at AS updatedAt, e.event_id AS eventId
         FROM deliveries d LEFT JOIN events e ON e.seq = d.event_seq
         WHERE d.subscription_id = ? ORDER BY d.created_at DESC LIMIT ?`,
        subscriptionId,
        limit,
      )
      .toArray();
  }

  /** QStash's callback for a message: delivered (after `retried` retries), or dead after the last one. */
  async recordOutcome(
    messageId: string,
    outcome: "delivered" | "dead",
    responseStatus: number | null,
    retried: number,
  ): Promise<boolean> {
    return (
      this.ctx.storage.sql
        .exec(
          "UPDATE deliveries SET status = ?, response_status = ?, retried = ?, updated_at = ? WHERE message_id = ? RETURNING id",
          outcome,
          responseStatus,
          retried,
          Date.now(),
          messageId,
        )
        .toArray().length > 0
    );
  }

  private subscriptionRows(): (StoredSubscription & { createdAt: number })[] {
    return this.ctx.storage.sql
      .exec<{
        id: string;
        url: string;
        kind: string;
        topics: string;
        secret: string | null;
        created_at: number;
      }>("SELECT id, url, kind, topics, secret, created_at FROM subscriptions ORDER BY created_at")
      .toArray()
      .map((r) => ({
        id: r.id,
        url: r.url,
        kind: r.kind as StoredSubscription["kind"],
        topics: JSON.parse(r.topics) as string[],
        secret: r.secret,
        createdAt: r.created_at,
      }));
  }

  private matchingSubscriptions(topic: string): StoredSubscription[] {
    return this.subscriptionRows().filter((s) => s.topics.some((f) => topicMatches(f, topic)));
  }

  /** Hands queued deliveries to QStash, 100 per batch call; QStash does the retries. */
  private async publishQueued(): Promise<void> {
    const queued = this.ctx.storage.sql
      .exec<{ id: string; subscription_id: string; event_seq: number }>(
        "SELECT id, subscription_id, event_seq FROM deliveries WHERE status = 'queued' ORDER BY created_at LIMIT 100",
      )
      .toArray();
    if (queued.length === 0) return;
    if (!this.env.QSTASH_TOKEN) {
      log("error", "subscriber deliveries are waiting, but QSTASH_TOKEN is not set");
      return;
    }
    const settings = settingsOf(this.env);
    const subs = new Map(this.subscriptionRows().map((s) => [s.id, s]));
    const base = (this.env.PUBLIC_URL ?? "").replace(/\/$/, "");
    const messages = [];
    const ids: string[] = [];
    for (const q of queued) {
      const sub = subs.get(q.subscription_id);
      const ev = this.ctx.storage.sql
        .exec<{ event_id: string; topic: string; client_id: string | null; at: number; data: string }>(
          "SELECT event_id, topic, client_id, at, data FROM events WHERE seq = ?",
          q.event_seq,
        )
        .toArray()[0];
      if (!sub || !ev) {
        this.ctx.storage.sql.exec(
          "UPDATE deliveries SET status = 'canceled', updated_at = ? WHERE id = ?",
          Date.now(),
          q.id,
        );
        continue;
      }
      const { body, headers } = await buildDelivery(
        sub,
        {
          id: ev.event_id,
          topic: ev.topic,
          clientId: ev.client_id,
          at: ev.at,
          data: JSON.parse(ev.data) as Record<string, unknown>,
        },
        q.id,
        Date.now(),
      );
      messages.push({
        url: sub.url,
        body,
        headers,
        retries: settings.SUBSCRIPTION_RETRIES,
        ...(base
          ? {
              callback: `${base}/api/webhooks/qstash/delivered`,
              failureCallback: `${base}/api/webhooks/qstash/dead`,
            }
          : {}),
      });
      ids.push(q.id);
    }
    if (messages.length === 0) return;
    try {
      const client = new QStashClient({
        token: this.env.QSTASH_TOKEN,
        ...(this.env.QSTASH_URL ? { baseUrl: this.env.QSTASH_URL } : {}),
      });
      const answers = (await client.batch(messages)) as { messageId: string }[];
      answers.forEach((a, i) => {
        this.ctx.storage.sql.exec(
          "UPDATE deliveries SET status = 'published', message_id = ?, updated_at = ? WHERE id = ?",
          a.messageId,
          Date.now(),
          ids[i]!,
        );
      });
    } catch (error) {
      log("warn", "could not hand deliveries to QStash; will retry", {
        waiting: messages.length,
        error: String(error),
      });
      await this.ctx.storage.setAlarm(Date.now() + 5000);
    }
  }

  private async armSoon(): Promise<void> {
    const queued = this.ctx.storage.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries WHERE status = 'queued'")
      .one().n;
    if (queued > 0 && (await this.ctx.storage.getAlarm()) === null)
      await this.ctx.storage.setAlarm(Date.now());
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
    await this.publishQueued();
    const moreDeliveries = this.ctx.storage.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries WHERE status = 'queued'")
      .one().n;
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
    if (left > 0 || moreDeliveries > 0) {
      const current = await this.ctx.storage.getAlarm();
      if (current === null || current > Date.now() + 100)
        await this.ctx.storage.setAlarm(Date.now() + (left > 0 ? 0 : 100));
    }
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
