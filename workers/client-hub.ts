import { DurableObject } from "cloudflare:workers";
import type { AlertReport } from "../src/domain/alert.js";
import type { Command, CommandLogEntry } from "../src/domain/command.js";
import type { Heartbeat } from "../src/domain/host.js";
import { ulid } from "../src/domain/ids.js";
import type { Result } from "../src/domain/result.js";
import type { Session, SessionEvent } from "../src/domain/session.js";
import { type CommandEvent, type CommandState, commandMachine } from "../src/machines/command.js";
import {
  initialLiveness,
  type LivenessInput,
  type LivenessState,
  stepLiveness,
} from "../src/machines/host-liveness.js";
import { type SessionState, sessionMachine } from "../src/machines/session.js";
import { canonicalJson } from "../src/protocol/canonical-json.js";
import type { ErrorCode } from "../src/protocol/errors.js";
import type {
  HostView,
  HubApi,
  HubClientRecord,
  HubCreateCommand,
  HubCreated,
  HubListCommands,
  HubResult,
  HubSessionTransition,
  TimelineEntry,
} from "../src/protocol/hub.js";
import { formatSse } from "../src/protocol/sse.js";
import { migrateStorage, type StorageMigration } from "./do-storage.js";
import { type Env, settingsOf } from "./env.js";
import type { FleetEventInput } from "./fleet-feed.js";
import { log } from "./log.js";
import { drainOutbox, type OutboxRow } from "./outbox.js";
import { openRedis } from "./redis.js";
import { constantTimeEqual } from "./secrets.js";

const MIGRATIONS: readonly StorageMigration[] = [
  [
    `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    // One alarm per object: every timed duty is a row here and the alarm is armed for the earliest.
    `CREATE TABLE schedule (kind TEXT NOT NULL, ref TEXT NOT NULL, due_at INTEGER NOT NULL, PRIMARY KEY (kind, ref))`,
    `CREATE INDEX schedule_due ON schedule (due_at)`,
  ],
  [
    `CREATE TABLE client (
       id TEXT PRIMARY KEY, name TEXT NOT NULL, tags TEXT NOT NULL, metadata TEXT NOT NULL,
       key_hash TEXT NOT NULL, created_at INTEGER NOT NULL, key_rotated_at INTEGER, deleted_at INTEGER)`,
    `CREATE TABLE commands (
       id TEXT PRIMARY KEY, action TEXT NOT NULL, payload TEXT NOT NULL, priority INTEGER NOT NULL,
       status TEXT NOT NULL, attempt INTEGER NOT NULL, timeout_sec INTEGER NOT NULL, deadline INTEGER,
       coalesce_key TEXT, idempotency_key TEXT, result TEXT, seq INTEGER,
       created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL, log_seq INTEGER NOT NULL)`,
    `CREATE INDEX commands_queue ON commands (status, priority DESC, created_at)`,
    `CREATE INDEX commands_coalesce ON commands (coalesce_key, status)`,
    `CREATE TABLE command_log (
       command_id TEXT NOT NULL, seq INTEGER NOT NULL, from_status TEXT, to_status TEXT NOT NULL,
       cause TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (command_id, seq))`,
    // The per-client event log: SSE ids are its seq, and resume replays from it.
    `CREATE TABLE events (
       seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, command_id TEXT, data TEXT NOT NULL, at INTEGER NOT NULL)`,
    `CREATE TABLE idempotency (key TEXT PRIMARY KEY, body_hash TEXT NOT NULL, response TEXT NOT NULL, created_at INTEGER NOT NULL)`,
    // Transactional outbox: written in the same storage transaction as the change it carries.
    `CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL, created_at INTEGER NOT NULL)`,
  ],
  [
    // One ordered log per host: connectivity changes and command transitions.
    `CREATE TABLE timeline (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, kind TEXT NOT NULL, ref TEXT, data TEXT NOT NULL)`,
    // Fleet events waiting to reach the FleetFeed (drained at once, apart from the Postgres outbox).
    `CREATE TABLE feed_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, topic TEXT NOT NULL, at INTEGER NOT NULL, data TEXT NOT NULL)`,
  ],
  [
    `CREATE TABLE sessions (
       id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER,
       started_at INTEGER, ended_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL)`,
    `CREATE TABLE session_events (
       session_id TEXT NOT NULL, seq INTEGER NOT NULL, from_status TEXT, to_status TEXT NOT NULL,
       exit_code INTEGER, reason TEXT, at INTEGER NOT NULL, PRIMARY KEY (session_id, seq))`,
  ],
  [
    // Signed webhook requests already used: the exact same signature twice is a replay.
    `CREATE TABLE seen_signatures (hash TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)`,
  ],
  [
    // Alerts the agent forwarded, by its own id: a forward repeated after a lost answer is a duplicate.
    `CREATE TABLE alerts (
       alert_id TEXT PRIMARY KEY, rule TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL,
       labels TEXT NOT NULL, value REAL, summary TEXT, triggered_at INTEGER NOT NULL, resolved_at INTEGER,
       received_at INTEGER NOT NULL)`,
    `CREATE INDEX alerts_state ON alerts (state, triggered_at)`,
  ],
];

/** The storage schema version a hub reaches once initialised. */
export const HUB_SCHEMA_VERSION = MIGRATIONS.length;

const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
const ALERT_DEDUPE_RETENTION_MS = 30 * 24 * 3600_000;
const OUTBOX_BATCH = 200;
const SSE_RETRY_MS = 2000;

type HubStatus = "initialising" | "ready" | "failed";

interface CommandRow extends Record<string, SqlStorageValue> {
  id: string;
  action: string;
  payload: string;
  priority: number;
  status: string;
  attempt: number;
  timeout_sec: number;
  deadline: number | null;
  coalesce_key: string | null;
  idempotency_key: string | null;
  result: string | null;
  seq: number | null;
  created_at: number;
  updated_at: number;
  version: number;
  log_seq: number;
}

interface EventRow extends Record<string, SqlStorageValue> {
  seq: number;
  type: string;
  command_id: string | null;
  data: string;
}

interface Stream {
  id: number;
  mode: "agent" | "watch";
  writer: WritableStreamDefaultWriter<Uint8Array>;
  closed: boolean;
}

class HubFailure extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

const encoder = new TextEncoder();

/**
 * One per client: that client's live truth. Its command queue and lifecycle, the agent's SSE
 * stream with an event log for resume, idempotency keys, and the outbox to Postgres all live
 * in this object's SQLite storage; alarms drive timeouts, expiry and the outbox.
 */
export class ClientHub extends DurableObject<Env> implements HubApi {
  private status: HubStatus = "initialising";
  private schemaVersion = 0;
  private readonly sql: SqlStorage;
  private agent: Stream | null = null;
  private readonly watchers = new Set<Stream>();
  private nextStreamId = 1;
  private heartbeat: ReturnType<typeof setInterval> | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx
      .blockConcurrencyWhile(async () => {
        this.schemaVersion = migrateStorage(this.sql, MIGRATIONS);
        this.status = "ready";
      })
      .catch((error: unknown) => {
        // Logged outside blockConcurrencyWhile so the input gate is not left broken.
        this.status = "failed";
        log("error", "client hub failed to initialise", { error: String(error) });
      });
  }

  // ---------- client record ----------

  async init(record: HubClientRecord & { keyHash: string }): Promise<HubResult<HubClientRecord>> {
    return this.run(() => {
      const existing = this.clientRow();
      if (existing && existing.id !== record.id)
        throw new HubFailure("CONFLICT", "hub belongs to another client");
      this.sql.exec(
        `INSERT INTO client (id, name, tags, metadata, key_hash, created_at, key_rotated_at, deleted_at)
         VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, tags = excluded.tags, metadata = excluded.metadata,
           key_hash = excluded.key_hash, deleted_at = NULL`,
        record.id,
        record.name,
        JSON.stringify(record.tags),
        JSON.stringify(record.metadata),
        record.keyHash,
        record.createdAt,
      );
      return this.requireClient();
    });
  }

  async getClient(): Promise<HubResult<HubClientRecord>> {
    return this.run(() => this.requireClient());
  }

  async rotateKey(keyHash: string): Promise<HubResult<HubClientRecord>> {
    return this.run(() => {
      this.requireClient();
      this.sql.exec("UPDATE client SET key_hash = ?, key_rotated_at = ?", keyHash, Date.now());
      // The old key stops working at once: its open stream is closed too.
      this.closeStream(this.agent);
      return this.requireClient();
    });
  }

  async remove(): Promise<HubResult<{ removed: true }>> {
    return this.run(() => {
      this.requireClient();
      const now = Date.now();
      for (const row of this.liveCommands()) this.transition(row, "cancel", "client deleted", now);
      this.sql.exec("UPDATE client SET deleted_at = ?", now);
      this.closeStream(this.agent);
      for (const w of this.watchers) this.closeStream(w);
      this.afterWrite();
      return { removed: true as const };
    });
  }

  async verifyKey(keyHash: string): Promise<boolean> {
    const row = this.clientRow();
    if (!row || row.deleted_at !== null) return false;
    return constantTimeEqual(String(row.key_hash), keyHash);
  }

  // ---------- commands ----------

  async createCommand(input: HubCreateCommand): Promise<HubResult<HubCreated>> {
    return this.run(() => {
      this.requireClient();
      const now = Date.now();
      if (input.replayGuard) {
        this.sql.exec("DELETE FROM seen_signatures WHERE expires_at < ?", now);
        const seen = this.sql
          .exec("SELECT 1 FROM seen_signatures WHERE hash = ?", input.replayGuard.hash)
          .toArray();
        if (seen.length > 0) throw new HubFailure("UNAUTHORIZED", "replayed signature");
        this.sql.exec(
          "INSERT INTO seen_signatures (hash, expires_at) VALUES (?, ?)",
          input.replayGuard.hash,
          input.replayGuard.expiresAt,
        );
      }
      if (input.idempotencyKey) {
        this.sql.exec("DELETE FROM idempotency WHERE created_at < ?", now - IDEMPOTENCY_TTL_MS);
        const seen = this.sql
          .exec<{ body_hash: string; response: string }>(
            "SELECT body_hash, response FROM idempotency WHERE key = ?",
            input.idempotencyKey,
          )
          .toArray()[0];
        if (seen) {
          if (seen.body_hash !== input.bodyHash) {
            throw new HubFailure(
              "IDEMPOTENCY_KEY_REUSED",
              "this Idempotency-Key was used with a different request body",
              { idempotencyKey: input.idempotencyKey },
            );
          }
          return { replayed: true, command: JSON.parse(seen.response) as Command };
        }
      }
      if (input.deadline !== null && input.deadline <= now) {
        throw new HubFailure("VALIDATION_FAILED", "deadline is already past", {
          issues: [{ path: ["deadline"], message: "must be in the future" }],
        });
      }
      if (input.coalesceKey) {
        const older = this.sql
          .exec<CommandRow>(
            "SELECT * FROM commands WHERE coalesce_key = ? AND status = 'pending'",
            input.coalesceKey,
          )
          .toArray();
        for (const row of older) this.transition(row, "cancel", `coalesced into ${input.id}`, now);
      }
      this.sql.exec(
        `INSERT INTO commands (id, action, payload, priority, status, attempt, timeout_sec, deadline, coalesce_key,
           idempotency_key, result, seq, created_at, updated_at, version, log_seq)
         VALUES (?, ?, ?, ?, 'pending', 1, ?, ?, ?, ?, NULL, NULL, ?, ?, 0, 0)`,
        input.id,
        input.action,
        JSON.stringify(input.payload),
        input.priority,
        input.timeoutSec,
        input.deadline,
        input.coalesceKey,
        input.idempotencyKey,
        now,
        now,
      );
      const row = this.commandRow(input.id)!;
      this.recordChange(row, null, "pending", input.cause, now);
      if (input.deadline !== null) this.schedule("expire", input.id, input.deadline);
      const command = toCommand(this.commandRow(input.id)!);
      if (input.idempotencyKey) {
        this.sql.exec(
          "INSERT INTO idempotency (key, body_hash, response, created_at) VALUES (?, ?, ?, ?)",
          input.idempotencyKey,
          input.bodyHash ?? "",
          JSON.stringify(command),
          now,
        );
      }
      this.pump();
      this.afterWrite();
      // Answer with what is stored now (it may already be dispatched).
      return { replayed: false, command: toCommand(this.commandRow(input.id)!) };
    });
  }

  async getCommand(id: string): Promise<HubResult<Command>> {
    return this.run(() => toCommand(this.requireCommand(id)));
  }

  async listCommands(
    query: HubListCommands,
  ): Promise<HubResult<{ commands: Command[]; next: string | null }>> {
    return this.run(() => {
      this.requireClient();
      const clauses: string[] = [];
      const args: SqlStorageValue[] = [];
      if (query.status) {
        clauses.push("status = ?");
        args.push(query.status);
      }
      if (query.before) {
        clauses.push("id < ?");
        args.push(query.before);
      }
      const where = clauses.length > 0 ? `WHERE ${clauses.join(" AND ")}` : "";
      const rows = this.sql
        .exec<CommandRow>(
          `SELECT * FROM commands ${where} ORDER BY id DESC LIMIT ?`,
          ...args,
          query.limit + 1,
        )
        .toArray();
      const page = rows.slice(0, query.limit);
      return { commands: page.map(toCommand), next: rows.length > query.limit ? page.at(-1)!.id : null };
    });
  }

  async commandLog(id: string): Promise<HubResult<CommandLogEntry[]>> {
    return this.run(() => {
      this.requireCommand(id);
      return this.sql
        .exec<{ seq: number; from_status: string | null; to_status: string; cause: string; at: number }>(
          "SELECT seq, from_status, to_status, cause, at FROM command_log WHERE command_id = ? ORDER BY seq",
          id,
        )
        .toArray()
        .map((r) => ({
          commandId: id,
          seq: r.seq,
          from: r.from_status as CommandState | null,
          to: r.to_status as CommandState,
          cause: r.cause,
          at: r.at,
        }));
    });
  }

  async cancelCommand(id: string, cause: string): Promise<HubResult<Command>> {
    return this.run(() => {
      const row = this.requireCommand(id);
      const wasDelivered = row.status === "dispatched" || row.status === "running";
      const updated = this.transition(row, "cancel", cause, Date.now());
      if (wasDelivered) this.emit("cancel", id, { id, reason: cause });
      this.afterWrite();
      return toCommand(updated);
    });
  }

  async retryCommand(id: string, cause: string): Promise<HubResult<Command>> {
    return this.run(() => {
      const row = this.requireCommand(id);
      const updated = this.transition(row, "retry", cause, Date.now());
      this.pump();
      this.afterWrite();
      return toCommand(this.commandRow(updated.id)!);
    });
  }

  async ackCommand(id: string): Promise<HubResult<Command>> {
    return this.run(() => {
      const row = this.requireCommand(id);
      // A second ack (the agent retried after a lost answer) is answered, not refused.
      if (row.status === "running") return toCommand(row);
      const updated = this.transition(row, "ack", "acknowledged by agent", Date.now());
      this.setMeta("last_ack", String(Date.now()));
      this.schedule("timeout", id, Date.now() + updated.timeout_sec * 1000);
      this.afterWrite();
      return toCommand(updated);
    });
  }

  /** The agent's heartbeat: last seen (edge clock) and its health summary. */
  async recordHeartbeat(heartbeat: Heartbeat): Promise<HubResult<{ receivedAt: number }>> {
    const result = await this.run(() => {
      const client = this.requireClient();
      const now = Date.now();
      this.setMeta("last_seen", String(now));
      this.setMeta("last_heartbeat", JSON.stringify(heartbeat));
      this.applyLiveness({ kind: "heartbeat", at: now });
      this.recordDevicePresence(heartbeat.devices ?? [], now);
      this.sql.exec(
        "INSERT INTO outbox (kind, payload, created_at) VALUES ('host', ?, ?)",
        JSON.stringify({
          clientId: client.id,
          status: this.liveness().status,
          lastSeenAt: now,
          agentVersion: heartbeat.agentVersion,
          heartbeat,
          at: now,
        }),
        now,
      );
      this.afterWrite();
      return { receivedAt: now, clientId: client.id };
    });
    if (!result.ok) return result;
    // The presence index the cron sweep reads: best effort, Redis being down must not refuse a heartbeat.
    this.ctx.waitUntil(
      openRedis(settingsOf(this.env))
        .zadd(settingsOf(this.env).PRESENCE_KEY, {
          score: result.value.receivedAt,
          member: result.value.clientId,
        })
        .catch(() => {}),
    );
    return { ok: true, value: { receivedAt: result.value.receivedAt } };
  }

  /**
   * Alert changes the agent forwarded (it evaluates the rules, so the times are its own).
   * Each (alert, state) is taken once: a repeated forward is counted as a duplicate and changes
   * nothing; a resolution never goes back to firing. Each change is stored, put in the outbox for
   * Postgres, and published as alert.triggered or alert.resolved at the agent's time.
   */
  async reportAlerts(alerts: AlertReport[]): Promise<HubResult<{ accepted: number; duplicates: number }>> {
    return this.run(() => {
      const client = this.requireClient();
      const now = Date.now();
      let accepted = 0;
      let duplicates = 0;
      for (const a of alerts) {
        const known = this.sql
          .exec<{ state: string }>("SELECT state FROM alerts WHERE alert_id = ?", a.alertId)
          .toArray()[0];
        if (known && (known.state === a.state || known.state === "resolved")) {
          duplicates++;
          continue;
        }
        accepted++;
        this.sql.exec(
          `INSERT INTO alerts (alert_id, rule, severity, state, labels, value, summary, triggered_at, resolved_at, received_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (alert_id) DO UPDATE SET state = excluded.state, value = excluded.value,
             resolved_at = excluded.resolved_at, received_at = excluded.received_at`,
          a.alertId,
          a.rule,
          a.severity,
          a.state,
          JSON.stringify(a.labels),
          a.value,
          a.summary,
          a.triggeredAt,
          a.resolvedAt,
          now,
        );
        const at = a.state === "resolved" ? (a.resolvedAt ?? now) : a.triggeredAt;
        const view = { ...a, id: a.alertId, clientId: client.id };
        this.sql.exec(
          "INSERT INTO timeline (at, kind, ref, data) VALUES (?, 'alert', ?, ?)",
          at,
          a.alertId,
          JSON.stringify({ rule: a.rule, state: a.state, severity: a.severity, value: a.value }),
        );
        this.sql.exec(
          "INSERT INTO outbox (kind, payload, created_at) VALUES ('alert', ?, ?)",
          JSON.stringify(view),
          now,
        );
        this.queueFeedEvent(a.state === "firing" ? "alert.triggered" : "alert.resolved", at, {
          alertId: a.alertId,
          rule: a.rule,
          severity: a.severity,
          labels: a.labels,
          value: a.value,
          summary: a.summary,
          triggeredAt: a.triggeredAt,
          resolvedAt: a.resolvedAt,
        });
      }
      // Dedupe memory for resolved alerts is kept 30 days; the agent forgets a forward once taken.
      this.sql.exec(
        "DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?",
        now - ALERT_DEDUPE_RETENTION_MS,
      );
      this.afterWrite();
      return { accepted, duplicates };
    });
  }

  /** A host's own stale threshold (null: the fleet default, STALE_HOST_THRESHOLD_SECONDS). */
  async setStaleThreshold(seconds: number | null): Promise<HubResult<HostView>> {
    const result = await this.run(() => {
      this.requireClient();
      if (seconds === null) this.sql.exec("DELETE FROM meta WHERE key = 'stale_threshold_sec'");
      else this.setMeta("stale_threshold_sec", String(seconds));
      // Re-check now against the new threshold.
      if (this.liveness().lastSeen !== null) this.applyLiveness({ kind: "tick", at: Date.now() });
      this.afterWrite();
      return true;
    });
    if (!result.ok) return result;
    return this.getHost();
  }

  /** The cron sweep's poke: the same idempotent check the hub's own alarm makes. */
  async checkLiveness(): Promise<HubResult<{ status: string }>> {
    return this.run(() => {
      this.requireClient();
      this.applyLiveness({ kind: "tick", at: Date.now() });
      this.afterWrite();
      return { status: this.liveness().status };
    });
  }

  async getHost(): Promise<HubResult<HostView>> {
    return this.run(() => {
      const client = this.requireClient();
      const state = this.liveness();
      const heartbeat = this.meta("last_heartbeat");
      const parsed = heartbeat ? (JSON.parse(heartbeat) as Heartbeat) : null;
      return {
        clientId: client.id,
        name: client.name,
        tags: client.tags,
        status: state.status,
        lastSeenAt: state.lastSeen,
        lastStreamCloseAt: state.lastStreamClose,
        lastAckAt: Number(this.meta("last_ack") ?? "") || null,
        agentVersion: parsed?.agentVersion ?? null,
        staleThresholdSec: this.thresholdMs() / 1000,
        flapping: state.flapping,
        lastHeartbeat: parsed,
        streamConnected: this.agent !== null,
      };
    });
  }

  async timeline(query: {
    limit: number;
    before?: number;
  }): Promise<HubResult<{ entries: TimelineEntry[]; next: number | null }>> {
    return this.run(() => {
      this.requireClient();
      const rows = this.sql
        .exec<{ seq: number; at: number; kind: string; ref: string | null; data: string }>(
          "SELECT seq, at, kind, ref, data FROM timeline WHERE seq < ? ORDER BY seq DESC LIMIT ?",
          query.before ?? Number.MAX_SAFE_INTEGER,
          query.limit + 1,
        )
        .toArray();
      const page = rows.slice(0, query.limit);
      return {
        entries: page.map((r) => ({
          seq: r.seq,
          at: r.at,
          kind: r.kind,
          ref: r.ref,
          data: JSON.parse(r.data) as Record<string, unknown>,
        })),
        next: rows.length > query.limit ? page.at(-1)!.seq : null,
      };
    });
  }

  async progressCommand(id: string, progress: unknown): Promise<HubResult<Command>> {
    return this.run(() => {
      const row = this.requireCommand(id);
      if (row.status !== "running" && row.status !== "dispatched") {
        throw new HubFailure(
          "INVALID_TRANSITION",
          `command is ${row.status}; progress applies to a running command`,
          {
            current: row.status,
          },
        );
      }
      // Progress resets the step timeout.
      this.schedule("timeout", id, Date.now() + row.timeout_sec * 1000);
      this.sql.exec(
        "INSERT INTO timeline (at, kind, ref, data) VALUES (?, 'progress', ?, ?)",
        Date.now(),
        id,
        JSON.stringify(progress ?? {}),
      );
      this.afterWrite();
      return toCommand(row);
    });
  }

  async postResult(id: string, result: Result): Promise<HubResult<{ command: Command; duplicate: boolean }>> {
    return this.run(() => {
      const row = this.requireCommand(id);
      const incoming = canonicalJson(result);
      if (commandMachine.terminal.has(row.status as CommandState)) {
        if (row.result !== null && canonicalJson(JSON.parse(row.result)) === incoming) {
          return { command: toCommand(row), duplicate: true };
        }
        throw new HubFailure("CONFLICT", `command is already ${row.status}`, {
          current: row.status,
          result: row.result === null ? null : JSON.parse(row.result),
        });
      }
      const now = Date.now();
      this.sql.exec("UPDATE commands SET result = ? WHERE id = ?", JSON.stringify(result), id);
      const updated = this.transition(
        this.commandRow(id)!,
        result.success ? "complete" : "fail",
        result.success ? "result: success" : `result: ${result.error?.code ?? "failed"}`,
        now,
      );
      this.unschedule("timeout", id);
      this.afterWrite();
      return { command: toCommand(updated), duplicate: false };
    });
  }

  // ---------- sessions ----------

  async createSession(input: {
    id: string;
    name: string;
    spec: Record<string, unknown>;
    by: string;
  }): Promise<HubResult<Session>> {
    return this.run(() => {
      this.requireClient();
      const now = Date.now();
      this.sql.exec(
        "INSERT INTO sessions (id, name, spec, status, exit_code, started_at, ended_at, created_at, updated_at, version) VALUES (?, ?, ?, 'pending', NULL, NULL, NULL, ?, ?, 0)",
        input.id,
        input.name,
        JSON.stringify(input.spec),
        now,
        now,
      );
      this.recordSessionChange(input.id, null, "pending", null, `created by ${input.by}`, now);
      this.afterWrite();
      return toSession(this.sessionRow(input.id)!);
    });
  }

  /** pending -> starting -> running -> stopping -> stopped, or crashed; anything else is 409. */
  async transitionSession(id: string, change: HubSessionTransition): Promise<HubResult<Session>> {
    return this.run(() => {
      this.requireClient();
      const row = this.sessionRow(id);
      if (!row) throw new HubFailure("NOT_FOUND", "no such session");
      const from = row.status as SessionState;
      if (sessionMachine.next(from, change.to) === undefined) {
        throw new HubFailure("INVALID_TRANSITION", `session is ${from}; cannot go to ${change.to}`, {
          current: from,
          allowed: sessionMachine.allowedEvents(from),
        });
      }
      const now = Date.now();
      const ended = sessionMachine.terminal.has(change.to);
      this.sql.exec(
        `UPDATE sessions SET status = ?, exit_code = COALESCE(?, exit_code), updated_at = ?,
           started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ? ELSE started_at END,
           ended_at = CASE WHEN ? THEN ? ELSE ended_at END
         WHERE id = ?`,
        change.to,
        change.exitCode ?? null,
        now,
        change.to,
        now,
        ended ? 1 : 0,
        now,
        id,
      );
      this.recordSessionChange(
        id,
        from,
        change.to,
        change.exitCode ?? null,
        change.reason ?? `by ${change.by}`,
        now,
      );
      this.afterWrite();
      return toSession(this.sessionRow(id)!);
    });
  }

  async getSession(id: string): Promise<HubResult<Session & { history: SessionEvent[] }>> {
    return this.run(() => {
      this.requireClient();
      const row = this.sessionRow(id);
      if (!row) throw new HubFailure("NOT_FOUND", "no such session");
      const history = this.sql
        .exec<{
          seq: number;
          from_status: string | null;
          to_status: string;
          exit_code: number | null;
          reason: string | null;
          at: number;
        }>(
          "SELECT seq, from_status, to_status, exit_code, reason, at FROM session_events WHERE session_id = ? ORDER BY seq",
          id,
        )
        .toArray()
        .map((e) => ({
          seq: e.seq,
          from: e.from_status as SessionState | null,
          to: e.to_status as SessionState,
          exitCode: e.exit_code,
          reason: e.reason,
          at: e.at,
        }));
      return { ...toSession(row), history };
    });
  }

  async listSessions(query: { status?: string; limit: number }): Promise<HubResult<Session[]>> {
    return this.run(() => {
      this.requireClient();
      const rows = query.status
        ? this.sql.exec<SessionRow>(
            "SELECT * FROM sessions WHERE status = ? ORDER BY id DESC LIMIT ?",
            query.status,
            query.limit,
          )
        : this.sql.exec<SessionRow>("SELECT * FROM sessions ORDER BY id DESC LIMIT ?", query.limit);
      return rows.toArray().map(toSession);
    });
  }

  private sessionRow(id: string): SessionRow | undefined {
    return this.sql.exec<SessionRow>("SELECT * FROM sessions WHERE id = ?", id).toArray()[0];
  }

  private recordSessionChange(
    id: string,
    from: SessionState | null,
    to: SessionState,
    exitCode: number | null,
    reason: string,
    now: number,
  ): void {
    const seq = this.sql
      .exec<{ n: number }>("SELECT COUNT(*) + 1 AS n FROM session_events WHERE session_id = ?", id)
      .one().n;
    this.sql.exec(
      "INSERT INTO session_events (session_id, seq, from_status, to_status, exit_code, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      id,
      seq,
      from,
      to,
      exitCode,
      reason,
      now,
    );
    this.sql.exec("UPDATE sessions SET version = version + 1 WHERE id = ?", id);
    const row = this.sessionRow(id)!;
    this.sql.exec(
      "INSERT INTO timeline (at, kind, ref, data) VALUES (?, 'session', ?, ?)",
      now,
      id,
      JSON.stringify({ name: row.name, from, to, exitCode, reason }),
    );
    this.sql.exec(
      "INSERT INTO outbox (kind, payload, created_at) VALUES ('session', ?, ?)",
      JSON.stringify({
        ...toSession(row),
        version: row.version,
        event: { seq, from, to, exitCode, reason, at: now },
      }),
      now,
    );
    if (to === "starting" || to === "running" || to === "stopped" || to === "crashed") {
      this.queueFeedEvent(`session.${to}`, now, { sessionId: id, name: row.name, from, exitCode, reason });
    }
  }

  // ---------- SSE ----------

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/status") {
      return Response.json({
        status: this.status,
        schemaVersion: this.schemaVersion,
        agentConnected: this.agent !== null,
        watchers: this.watchers.size,
      });
    }
    if (url.pathname === "/events") {
      const mode = url.searchParams.get("mode") === "watch" ? "watch" : "agent";
      const lastEventId = parseLastEventId(
        request.headers.get("last-event-id") ?? url.searchParams.get("lastEventId"),
      );
      const heartbeatMs = Number(url.searchParams.get("heartbeatMs") ?? 15_000);
      const response = this.openStream(mode, lastEventId, heartbeatMs);
      // Dispatching on connect scheduled timeouts: arm for them before answering.
      await this.rearm();
      return response;
    }
    return Response.json(
      { error: { code: "NOT_FOUND", message: "no such hub route", retryable: false } },
      { status: 404 },
    );
  }

  private openStream(mode: "agent" | "watch", lastEventId: number | null, heartbeatMs: number): Response {
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const stream: Stream = { id: this.nextStreamId++, mode, writer: writable.getWriter(), closed: false };
    stream.writer.closed.then(
      () => this.forgetStream(stream),
      () => this.forgetStream(stream),
    );
    this.write(stream, formatSse({ retry: SSE_RETRY_MS }));
    if (mode === "agent") {
      // A second stream for the same client replaces the first.
      if (this.agent) this.closeStream(this.agent);
      this.agent = stream;
      this.replay(stream, lastEventId);
      this.pump();
      this.afterWrite();
    } else {
      this.watchers.add(stream);
      if (lastEventId !== null) this.replayAll(stream, lastEventId);
    }
    this.ensureHeartbeat(Math.max(100, Math.min(heartbeatMs, 15_000)));
    return new Response(readable, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        "x-accel-buffering": "no",
      },
    });
  }

  /** Unacknowledged commands after `lastEventId` (all of them on a fresh connect), in order, once. */
  private replay(stream: Stream, lastEventId: number | null): void {
    const rows = this.sql
      .exec<EventRow>(
        `SELECT e.seq, e.type, e.command_id, e.data FROM events e
         LEFT JOIN commands c ON c.id = e.command_id
         WHERE e.seq > ? AND (
           (e.type = 'command' AND c.status = 'dispatched' AND c.seq = e.seq)
           OR (e.type = 'cancel' AND ? IS NOT NULL))
         ORDER BY e.seq`,
        lastEventId ?? 0,
        lastEventId,
      )
      .toArray();
    for (const row of rows)
      this.write(stream, formatSse({ id: row.seq, event: row.type, data: JSON.parse(row.data) }));
  }

  private replayAll(stream: Stream, lastEventId: number): void {
    const rows = this.sql
      .exec<EventRow>(
        "SELECT seq, type, command_id, data FROM events WHERE seq > ? ORDER BY seq",
        lastEventId,
      )
      .toArray();
    for (const row of rows)
      this.write(stream, formatSse({ id: row.seq, event: row.type, data: JSON.parse(row.data) }));
  }

  private ensureHeartbeat(intervalMs: number): void {
    if (this.heartbeat !== null) return;
    this.heartbeat = setInterval(() => {
      const frame = formatSse({ event: "heartbeat", data: { at: Date.now() } });
      if (this.agent) this.write(this.agent, frame);
      for (const w of this.watchers) this.write(w, frame);
      if (!this.agent && this.watchers.size === 0 && this.heartbeat !== null) {
        clearInterval(this.heartbeat);
        this.heartbeat = null;
      }
    }, intervalMs);
  }

  private write(stream: Stream, frame: string): void {
    if (stream.closed) return;
    stream.writer.write(encoder.encode(frame)).catch(() => this.forgetStream(stream));
  }

  private closeStream(stream: Stream | null): void {
    if (!stream || stream.closed) return;
    stream.writer.close().catch(() => {});
    this.forgetStream(stream);
  }

  private forgetStream(stream: Stream): void {
    if (stream.closed) return;
    stream.closed = true;
    if (this.agent === stream) {
      this.agent = null;
      if (this.clientRow()) {
        this.applyLiveness({ kind: "stream_closed", at: Date.now() });
        this.afterWrite();
        void this.rearm();
      }
    }
    this.watchers.delete(stream);
  }

  /** Append to the per-client event log and push to the agent and watchers. */
  private emit(type: "command" | "cancel", commandId: string, data: unknown): number {
    const now = Date.now();
    const seq = this.sql
      .exec<{ seq: number }>(
        "INSERT INTO events (type, command_id, data, at) VALUES (?, ?, ?, ?) RETURNING seq",
        type,
        commandId,
        JSON.stringify(data),
        now,
      )
      .one().seq;
    const frame = formatSse({ id: seq, event: type, data });
    if (this.agent) this.write(this.agent, frame);
    for (const w of this.watchers) this.write(w, frame);
    return seq;
  }

  /** Dispatch queued commands, by priority then age, while the agent is connected. */
  private pump(): void {
    if (!this.agent) return;
    const now = Date.now();
    const pending = this.sql
      .exec<CommandRow>(
        "SELECT * FROM commands WHERE status = 'pending' ORDER BY priority DESC, created_at, id",
      )
      .toArray();
    for (const row of pending) {
      if (row.deadline !== null && row.deadline <= now) {
        this.transition(row, "expire", "deadline passed before delivery", now);
        continue;
      }
      const updated = this.transition(row, "dispatch", "sent to agent", now);
      const seq = this.emit("command", row.id, {
        id: row.id,
        action: row.action,
        payload: JSON.parse(row.payload),
        priority: row.priority,
        attempt: updated.attempt,
        timeoutSec: row.timeout_sec,
        deadline: row.deadline,
        createdAt: row.created_at,
      });
      this.sql.exec("UPDATE commands SET seq = ? WHERE id = ?", seq, row.id);
      this.unschedule("expire", row.id);
      this.schedule("timeout", row.id, now + row.timeout_sec * 1000);
    }
  }

  // ---------- state changes ----------

  /** Apply a lifecycle event: validated by the machine, logged, and put in the outbox. */
  private transition(row: CommandRow, event: CommandEvent, cause: string, now: number): CommandRow {
    const from = row.status as CommandState;
    const to = commandMachine.next(from, event);
    if (to === undefined) {
      throw new HubFailure("INVALID_TRANSITION", `command is ${from}; cannot ${event.replace("_", " ")}`, {
        current: from,
        allowed: commandMachine.allowedEvents(from),
      });
    }
    const attempt = event === "retry" ? row.attempt + 1 : row.attempt;
    if (event === "retry") this.sql.exec("UPDATE commands SET result = NULL WHERE id = ?", row.id);
    this.sql.exec(
      "UPDATE commands SET status = ?, attempt = ?, updated_at = ? WHERE id = ?",
      to,
      attempt,
      now,
      row.id,
    );
    if (commandMachine.terminal.has(to)) {
      this.unschedule("timeout", row.id);
      this.unschedule("expire", row.id);
    }
    const updated = this.commandRow(row.id)!;
    this.recordChange(updated, from, to, cause, now);
    return this.commandRow(row.id)!;
  }

  private recordChange(
    row: CommandRow,
    from: CommandState | null,
    to: CommandState,
    cause: string,
    now: number,
  ): void {
    const logSeq = row.log_seq + 1;
    const version = row.version + 1;
    this.sql.exec("UPDATE commands SET log_seq = ?, version = ? WHERE id = ?", logSeq, version, row.id);
    this.sql.exec(
      "INSERT INTO command_log (command_id, seq, from_status, to_status, cause, at) VALUES (?, ?, ?, ?, ?, ?)",
      row.id,
      logSeq,
      from,
      to,
      cause,
      now,
    );
    const snapshot = this.commandRow(row.id)!;
    const clientId = this.clientRow()?.id;
    this.sql.exec(
      "INSERT INTO timeline (at, kind, ref, data) VALUES (?, 'command', ?, ?)",
      now,
      row.id,
      JSON.stringify({ action: row.action, from, to, cause }),
    );
    if (commandMachine.terminal.has(to)) {
      this.queueFeedEvent(`command.${to}`, now, {
        commandId: row.id,
        action: row.action,
        attempt: snapshot.attempt,
        cause,
      });
    }
    this.sql.exec(
      "INSERT INTO outbox (kind, payload, created_at) VALUES ('command', ?, ?)",
      JSON.stringify({
        ...toCommand(snapshot),
        clientId,
        version: snapshot.version,
        idempotencyKey: snapshot.idempotency_key,
      }),
      now,
    );
    this.sql.exec(
      "INSERT INTO outbox (kind, payload, created_at) VALUES ('log', ?, ?)",
      JSON.stringify({ commandId: row.id, seq: logSeq, from, to, cause, at: now }),
      now,
    );
  }

  /** After any write: make sure the outbox drains soon. */
  private afterWrite(): void {
    // Changes within OUTBOX_FLUSH_MS share one drain (one Postgres transaction), so a busy
    // hub does not open a connection per command; the audit copy trails by one to two windows.
    const waiting = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n;
    if (waiting > 0 && !this.hasSchedule("outbox")) {
      // Jittered over a second window so a fleet of busy hubs does not connect all at once.
      const flush = settingsOf(this.env).OUTBOX_FLUSH_MS;
      this.schedule("outbox", "-", Date.now() + flush + Math.floor(Math.random() * flush));
    }
    const feed = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM feed_outbox").one().n;
    if (feed > 0 && !this.hasSchedule("feed")) this.schedule("feed", "-", Date.now());
  }

  // ---------- liveness ----------

  private thresholdMs(): number {
    const own = Number(this.meta("stale_threshold_sec") ?? "");
    return (Number.isFinite(own) && own > 0 ? own : settingsOf(this.env).STALE_HOST_THRESHOLD_SECONDS) * 1000;
  }

  private liveness(): LivenessState {
    const raw = this.meta("liveness");
    return raw ? (JSON.parse(raw) as LivenessState) : initialLiveness();
  }

  /** One liveness input: state saved, change on the timeline, event queued, next check scheduled. */
  private applyLiveness(input: LivenessInput): void {
    const step = stepLiveness(this.liveness(), input, this.thresholdMs());
    this.setMeta("liveness", JSON.stringify(step.state));
    if (step.change) {
      this.sql.exec(
        "INSERT INTO timeline (at, kind, ref, data) VALUES (?, 'connectivity', NULL, ?)",
        step.change.at,
        JSON.stringify({
          from: step.change.from,
          to: step.change.to,
          published: step.change.published,
          cause: input.kind,
        }),
      );
    }
    if (step.publish) {
      this.queueFeedEvent(step.publish.topic, step.publish.at, {
        status: step.publish.status,
        ...(step.publish.flapping ? { flapping: true, suppressed: step.publish.suppressed } : {}),
        // The evidence an operator needs to judge a stale host.
        lastHeartbeatAt: step.state.lastSeen,
        lastStreamCloseAt: step.state.lastStreamClose,
        lastAckAt: Number(this.meta("last_ack") ?? "") || null,
        thresholdSec: this.thresholdMs() / 1000,
        // A stale host's sessions are left as they are (the workload may well still run; only
        // the link is gone) and named here, so whoever acts on the event knows what is at stake.
        ...(step.publish.topic === "host.stale"
          ? {
              sessions: this.sql
                .exec<{ id: string; name: string; status: string }>(
                  "SELECT id, name, status FROM sessions WHERE status IN ('pending', 'starting', 'running', 'stopping')",
                )
                .toArray(),
            }
          : {}),
      });
    }
    if (step.nextCheckAt === null) this.unschedule("liveness", "-");
    else this.schedule("liveness", "-", step.nextCheckAt);
  }

  /**
   * Device presence rides on the agent's heartbeat (from the devices' status topics and last
   * wills); a device whose status changed since the last heartbeat becomes a device.online or
   * device.offline event and a timeline entry.
   */
  private recordDevicePresence(devices: { id: string; status: string; at: number }[], now: number): void {
    if (devices.length === 0) return;
    const known = JSON.parse(this.meta("devices") ?? "{}") as Record<string, string>;
    for (const d of devices) {
      const online = d.status === "online";
      const status = online ? "online" : "offline";
      if (known[d.id] === status) continue;
      known[d.id] = status;
      this.sql.exec(
        "INSERT INTO timeline (at, kind, ref, data) VALUES (?, 'device', ?, ?)",
        now,
        d.id,
        JSON.stringify({ status, reported: d.status, reportedAt: d.at }),
      );
      this.queueFeedEvent(online ? "device.online" : "device.offline", now, {
        deviceId: d.id,
        reported: d.status,
        reportedAt: d.at,
      });
    }
    this.setMeta("devices", JSON.stringify(known));
  }

  private queueFeedEvent(topic: string, at: number, data: Record<string, unknown>): void {
    this.sql.exec(
      "INSERT INTO feed_outbox (event_id, topic, at, data) VALUES (?, ?, ?, ?)",
      `evt_${ulid(at)}`,
      topic,
      at,
      JSON.stringify(data),
    );
  }

  private async drainFeed(): Promise<void> {
    const rows = this.sql
      .exec<{ id: number; event_id: string; topic: string; at: number; data: string }>(
        "SELECT id, event_id, topic, at, data FROM feed_outbox ORDER BY id LIMIT 100",
      )
      .toArray();
    if (rows.length === 0) return;
    const owner = this.clientRow()?.id;
    const clientId = typeof owner === "string" ? owner : null;
    try {
      const feed = this.env.FLEET_FEED.get(this.env.FLEET_FEED.idFromName("fleet")) as unknown as {
        publish(events: FleetEventInput[]): Promise<{ stored: number }>;
      };
      await feed.publish(
        rows.map((r) => ({
          eventId: r.event_id,
          topic: r.topic,
          clientId,
          at: r.at,
          data: JSON.parse(r.data),
        })),
      );
      this.sql.exec("DELETE FROM feed_outbox WHERE id <= ?", rows.at(-1)!.id);
      if (rows.length === 100) this.schedule("feed", "-", Date.now());
    } catch (error) {
      this.schedule("feed", "-", Date.now() + 1000);
      log("warn", "fleet feed publish failed; will retry", { client_id: clientId, error: String(error) });
    }
  }

  /** Idempotent: each due duty re-checks the state it acts on, so firing twice changes nothing more. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    const due = this.sql
      .exec<{ kind: string; ref: string }>(
        "SELECT kind, ref FROM schedule WHERE due_at <= ? ORDER BY due_at",
        now,
      )
      .toArray();
    for (const entry of due) {
      this.unschedule(entry.kind, entry.ref);
      if (entry.kind === "timeout") {
        const row = this.commandRow(entry.ref);
        if (row && (row.status === "dispatched" || row.status === "running")) {
          this.transition(row, "time_out", `no result within ${row.timeout_sec}s`, now);
          this.emit("cancel", row.id, { id: row.id, reason: "timed out" });
        }
      } else if (entry.kind === "expire") {
        const row = this.commandRow(entry.ref);
        if (row && row.status === "pending")
          this.transition(row, "expire", "deadline passed before delivery", now);
      } else if (entry.kind === "outbox") {
        await this.drain(now);
      } else if (entry.kind === "liveness") {
        if (this.clientRow()) this.applyLiveness({ kind: "tick", at: now });
      } else if (entry.kind === "feed") {
        await this.drainFeed();
      }
    }
    this.afterWrite();
    await this.rearm();
  }

  private async drain(now: number): Promise<void> {
    const rows = this.sql
      .exec<{ id: number; kind: string; payload: string }>(
        "SELECT id, kind, payload FROM outbox ORDER BY id LIMIT ?",
        OUTBOX_BATCH,
      )
      .toArray();
    if (rows.length === 0) return;
    try {
      await drainOutbox(this.env, rows as OutboxRow[]);
      this.sql.exec("DELETE FROM outbox WHERE id <= ?", rows.at(-1)!.id);
      this.sql.exec("DELETE FROM meta WHERE key = 'outbox_failures'");
      if (rows.length === OUTBOX_BATCH) this.schedule("outbox", "-", now);
    } catch (error) {
      const failures = Number(this.meta("outbox_failures") ?? "0") + 1;
      this.setMeta("outbox_failures", String(failures));
      // Backoff with jitter, capped at a minute: Postgres being down delays the audit copy only.
      const delay = Math.min(60_000, 500 * 2 ** Math.min(failures, 7)) * (0.75 + Math.random() * 0.5);
      this.schedule("outbox", "-", now + Math.round(delay));
      log("warn", "outbox drain failed; will retry", {
        client_id: this.clientRow()?.id,
        waiting: rows.length,
        failures,
        retry_in_ms: Math.round(delay),
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  private schedule(kind: string, ref: string, dueAt: number): void {
    this.sql.exec(
      "INSERT INTO schedule (kind, ref, due_at) VALUES (?, ?, ?) ON CONFLICT (kind, ref) DO UPDATE SET due_at = excluded.due_at",
      kind,
      ref,
      dueAt,
    );
  }

  private unschedule(kind: string, ref: string): void {
    this.sql.exec("DELETE FROM schedule WHERE kind = ? AND ref = ?", kind, ref);
  }

  private hasSchedule(kind: string): boolean {
    return this.sql.exec("SELECT 1 FROM schedule WHERE kind = ? LIMIT 1", kind).toArray().length > 0;
  }

  /**
   * One alarm per object, armed for the earliest duty. Never for a time already past: an alarm
   * set in the past from inside the alarm handler can be taken for the one that just ran and
   * cleared with it (seen under load in bench/stale), so a due duty is armed for the next
   * millisecond instead.
   */
  private async rearm(): Promise<void> {
    const next = this.sql.exec<{ due: number | null }>("SELECT MIN(due_at) AS due FROM schedule").one().due;
    const current = await this.ctx.storage.getAlarm();
    if (next === null) {
      if (current !== null) await this.ctx.storage.deleteAlarm();
      return;
    }
    const at = Math.max(next, Date.now() + 1);
    if (current === null || current > at || current < Date.now()) await this.ctx.storage.setAlarm(at);
  }

  // ---------- helpers ----------

  /**
   * Runs a unit of work as one storage transaction; expected failures become data. The alarm
   * is re-armed (awaited) before the answer, so a duty scheduled by the work is never lost.
   */
  private async run<T>(work: () => T): Promise<HubResult<T>> {
    if (this.status !== "ready") {
      return {
        ok: false,
        error: { code: "DEPENDENCY_UNAVAILABLE", message: `client hub is ${this.status}` },
      };
    }
    let result: HubResult<T>;
    try {
      result = { ok: true, value: this.ctx.storage.transactionSync(work) };
    } catch (error) {
      if (!(error instanceof HubFailure)) throw error;
      result = { ok: false, error: { code: error.code, message: error.message, details: error.details } };
    }
    await this.rearm();
    return result;
  }

  private clientRow(): Record<string, SqlStorageValue> | undefined {
    return this.sql.exec("SELECT * FROM client LIMIT 1").toArray()[0];
  }

  private requireClient(): HubClientRecord {
    const row = this.clientRow();
    if (!row || row.deleted_at !== null) throw new HubFailure("NOT_FOUND", "no such client");
    return {
      id: String(row.id),
      name: String(row.name),
      tags: JSON.parse(String(row.tags)) as string[],
      metadata: JSON.parse(String(row.metadata)) as Record<string, unknown>,
      createdAt: Number(row.created_at),
      keyRotatedAt: row.key_rotated_at === null ? null : Number(row.key_rotated_at),
    };
  }

  private commandRow(id: string): CommandRow | undefined {
    return this.sql.exec<CommandRow>("SELECT * FROM commands WHERE id = ?", id).toArray()[0];
  }

  private requireCommand(id: string): CommandRow {
    this.requireClient();
    const row = this.commandRow(id);
    if (!row) throw new HubFailure("NOT_FOUND", "no such command");
    return row;
  }

  private liveCommands(): CommandRow[] {
    return this.sql
      .exec<CommandRow>("SELECT * FROM commands WHERE status IN ('pending', 'dispatched', 'running')")
      .toArray();
  }

  private meta(key: string): string | undefined {
    return this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value;
  }

  private setMeta(key: string, value: string): void {
    this.sql.exec(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key,
      value,
    );
  }
}

interface SessionRow extends Record<string, SqlStorageValue> {
  id: string;
  name: string;
  spec: string;
  status: string;
  exit_code: number | null;
  started_at: number | null;
  ended_at: number | null;
  created_at: number;
  updated_at: number;
  version: number;
}

function toSession(row: SessionRow): Session {
  return {
    id: row.id,
    clientId: `cl_${row.id.split("_")[1]!}`,
    name: row.name,
    spec: JSON.parse(row.spec) as Record<string, unknown>,
    status: row.status as SessionState,
    exitCode: row.exit_code,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toCommand(row: CommandRow): Command {
  const clientUlid = row.id.split("_")[1]!;
  return {
    id: row.id,
    clientId: `cl_${clientUlid}`,
    action: row.action,
    payload: JSON.parse(row.payload) as Record<string, unknown>,
    priority: row.priority,
    status: row.status as CommandState,
    attempt: row.attempt,
    timeoutSec: row.timeout_sec,
    deadline: row.deadline,
    coalesceKey: row.coalesce_key,
    seq: row.seq,
    result: row.result === null ? null : (JSON.parse(row.result) as Result),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function parseLastEventId(value: string | null): number | null {
  if (value === null || value === "") return null;
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? n : null;
}
