/**
 * The agent's alert storage: SQLite in WAL mode (node:sqlite), beside the journal. It holds each
 * alert's engine state (so pending timers, cooldowns and flap windows survive a restart), the
 * local history, the forwards the edge has not taken yet, and the notifications still to send.
 * Each change of an alert is one transaction: its state, history rows, forwards and
 * notifications land together or not at all.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { Labels } from "../metrics/family.js";
import type { Effect, InstanceState } from "./engine.js";

export interface HistoryEntry {
  id: number;
  rule: string;
  alertId: string | null;
  severity: string;
  labels: Labels;
  state: string;
  value: number | null;
  at: number;
  triggeredAt: number | null;
  resolvedAt: number | null;
  note: string | null;
}

export interface ForwardRow {
  id: number;
  payload: Record<string, unknown>;
}

export interface NotificationRow {
  id: number;
  channel: string;
  payload: Record<string, unknown>;
  attempts: number;
}

export interface StoredInstance {
  key: string;
  rule: string;
  labels: Labels;
  state: InstanceState;
}

export class AlertStore {
  private readonly db: DatabaseSync;

  constructor(file: string) {
    if (file !== ":memory:") mkdirSync(path.dirname(file), { recursive: true });
    this.db = new DatabaseSync(file);
    this.db.exec("PRAGMA journal_mode = WAL");
    // FULL: an alert change or a notification owed survives a power cut; writes are rare.
    this.db.exec("PRAGMA synchronous = FULL");
    // A small page cache: these databases are tiny, and every MiB of RSS counts on small hosts.
    this.db.exec("PRAGMA cache_size = -256");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS instances (
        key TEXT PRIMARY KEY, rule TEXT NOT NULL, labels TEXT NOT NULL, state TEXT NOT NULL, updated_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS history (
        id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, alert_id TEXT, severity TEXT NOT NULL,
        labels TEXT NOT NULL, state TEXT NOT NULL, value REAL, at INTEGER NOT NULL,
        triggered_at INTEGER, resolved_at INTEGER, note TEXT);
      CREATE INDEX IF NOT EXISTS history_at ON history (at);
      CREATE INDEX IF NOT EXISTS history_alert ON history (alert_id);
      CREATE TABLE IF NOT EXISTS forwards (
        id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, payload TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT, created_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS notifications_due ON notifications (status, next_at);
    `);
  }

  instances(): StoredInstance[] {
    return (
      this.db.prepare("SELECT key, rule, labels, state FROM instances").all() as {
        key: string;
        rule: string;
        labels: string;
        state: string;
      }[]
    ).map((r) => ({ key: r.key, rule: r.rule, labels: JSON.parse(r.labels), state: JSON.parse(r.state) }));
  }

  /**
   * Saves one alert's new state with everything its step produced. `forward` and `notify`
   * payloads are built by the caller; `channels` are where each notification goes.
   */
  apply(change: {
    key: string;
    rule: string;
    severity: string;
    labels: Labels;
    state: InstanceState;
    effects: Effect[];
    forwardPayload: (e: Extract<Effect, { kind: "forward" }>) => Record<string, unknown>;
    notifyPayload: (e: Extract<Effect, { kind: "notify" }>) => Record<string, unknown>;
    channels: string[];
    now: number;
  }): void {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const keep =
        change.state.state !== "inactive" ||
        change.state.lastNotifiedAt !== null ||
        change.state.changes.length > 0;
      if (keep) {
        this.db
          .prepare(
            "INSERT INTO instances (key, rule, labels, state, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
          )
          .run(
            change.key,
            change.rule,
            JSON.stringify(change.labels),
            JSON.stringify(change.state),
            change.now,
          );
      } else {
        this.db.prepare("DELETE FROM instances WHERE key = ?").run(change.key);
      }
      for (const e of change.effects) {
        if (e.kind === "history") {
          this.addHistory({
            rule: change.rule,
            alertId: e.alertId,
            severity: change.severity,
            labels: change.labels,
            state: e.state,
            value: e.value,
            at: e.at,
            triggeredAt:
              e.state === "firing" || e.state === "resolved" ? (change.state.firedAt ?? e.at) : null,
            resolvedAt: e.state === "resolved" ? e.at : null,
            note: e.note ?? null,
          });
          if (e.state === "resolved") {
            this.db
              .prepare("UPDATE history SET resolved_at = ? WHERE alert_id = ? AND state = 'firing'")
              .run(e.at, e.alertId);
          }
        } else if (e.kind === "forward") {
          this.db
            .prepare("INSERT INTO forwards (payload, created_at) VALUES (?, ?)")
            .run(JSON.stringify(change.forwardPayload(e)), change.now);
        } else {
          const payload = JSON.stringify(change.notifyPayload(e));
          for (const channel of change.channels) {
            this.db
              .prepare(
                "INSERT INTO notifications (channel, payload, next_at, created_at) VALUES (?, ?, ?, ?)",
              )
              .run(channel, payload, change.now, change.now);
          }
        }
      }
      this.db.exec("COMMIT");
    } catch (error) {
      this.db.exec("ROLLBACK");
      throw error;
    }
  }

  addHistory(e: Omit<HistoryEntry, "id">): void {
    this.db
      .prepare(
        "INSERT INTO history (rule, alert_id, severity, labels, state, value, at, triggered_at, resolved_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      )
      .run(
        e.rule,
        e.alertId,
        e.severity,
        JSON.stringify(e.labels),
        e.state,
        e.value,
        e.at,
        e.triggeredAt,
        e.resolvedAt,
        e.note,
      );
  }

  history(options: { limit?: number; rule?: string } = {}): HistoryEntry[] {
    const rows = (
      options.rule
        ? this.db
            .prepare("SELECT * FROM history WHERE rule = ? ORDER BY id DESC LIMIT ?")
            .all(options.rule, options.limit ?? 100)
        : this.db.prepare("SELECT * FROM history ORDER BY id DESC LIMIT ?").all(options.limit ?? 100)
    ) as Record<string, unknown>[];
    return rows.map((r) => ({
      id: r.id as number,
      rule: r.rule as string,
      alertId: (r.alert_id as string | null) ?? null,
      severity: r.severity as string,
      labels: JSON.parse(r.labels as string),
      state: r.state as string,
      value: (r.value as number | null) ?? null,
      at: r.at as number,
      triggeredAt: (r.triggered_at as number | null) ?? null,
      resolvedAt: (r.resolved_at as number | null) ?? null,
      note: (r.note as string | null) ?? null,
    }));
  }

  pendingForwards(limit = 100): ForwardRow[] {
    return (
      this.db.prepare("SELECT id, payload FROM forwards ORDER BY id LIMIT ?").all(limit) as {
        id: number;
        payload: string;
      }[]
    ).map((r) => ({ id: r.id, payload: JSON.parse(r.payload) }));
  }

  forwardsWaiting(): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM forwards").get() as { n: number }).n;
  }

  removeForwards(upToId: number): void {
    this.db.prepare("DELETE FROM forwards WHERE id <= ?").run(upToId);
  }

  dueNotifications(now: number, limit = 20): NotificationRow[] {
    return (
      this.db
        .prepare(
          "SELECT id, channel, payload, attempts FROM notifications WHERE status = 'pending' AND next_at <= ? ORDER BY id LIMIT ?",
        )
        .all(now, limit) as { id: number; channel: string; payload: string; attempts: number }[]
    ).map((r) => ({ id: r.id, channel: r.channel, payload: JSON.parse(r.payload), attempts: r.attempts }));
  }

  notificationSent(id: number): void {
    this.db
      .prepare(
        "UPDATE notifications SET status = 'sent', attempts = attempts + 1, last_error = NULL WHERE id = ?",
      )
      .run(id);
  }

  notificationFailed(id: number, error: string, nextAt: number | null): void {
    this.db
      .prepare(
        "UPDATE notifications SET attempts = attempts + 1, last_error = ?, next_at = COALESCE(?, next_at), status = CASE WHEN ? IS NULL THEN 'dead' ELSE 'pending' END WHERE id = ?",
      )
      .run(error, nextAt, nextAt, id);
  }

  notificationCounts(): Record<string, number> {
    const rows = this.db.prepare("SELECT status, COUNT(*) AS n FROM notifications GROUP BY status").all() as {
      status: string;
      n: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  /** Drops sent notifications and history older than `before`; keeps what is still owed. */
  compact(before: number): void {
    this.db.prepare("DELETE FROM history WHERE at < ?").run(before);
    this.db.prepare("DELETE FROM notifications WHERE status <> 'pending' AND created_at < ?").run(before);
  }

  close(): void {
    this.db.close();
  }
}
