/**
 * Drains a ClientHub's outbox into Postgres in one transaction. Every write is an
 * idempotent upsert: a command row only moves forward (by version) and log rows are keyed by
 * (command_id, seq), so a batch replayed after a crash changes nothing twice.
 */
import { sql } from "drizzle-orm";
import { alerts, commandLogs, commands, hosts, sessionEvents, sessions } from "../src/db/schema.js";
import type { Alert } from "../src/domain/alert.js";
import { openDatabase } from "./db.js";
import { type Env, settingsOf } from "./env.js";

export interface OutboxRow {
  id: number;
  kind: string;
  payload: string;
}

interface CommandSnapshot {
  id: string;
  clientId: string;
  action: string;
  payload: Record<string, unknown>;
  priority: number;
  status: string;
  attempt: number;
  timeoutSec: number;
  deadline: number | null;
  coalesceKey: string | null;
  idempotencyKey: string | null;
  result: unknown;
  createdAt: number;
  updatedAt: number;
  version: number;
}

interface SessionSnapshot {
  id: string;
  clientId: string;
  name: string;
  spec: Record<string, unknown>;
  status: string;
  exitCode: number | null;
  startedAt: number | null;
  endedAt: number | null;
  createdAt: number;
  updatedAt: number;
  version: number;
  event: {
    seq: number;
    from: string | null;
    to: string;
    exitCode: number | null;
    reason: string | null;
    at: number;
  };
}

interface HostSnapshot {
  clientId: string;
  status: string;
  lastSeenAt: number;
  agentVersion: string | null;
  heartbeat: unknown;
  at: number;
}

interface LogSnapshot {
  commandId: string;
  seq: number;
  from: string | null;
  to: string;
  cause: string;
  at: number;
}

/**
 * Hubs that share an isolate drain through a few connections at a time: a fleet of busy hubs
 * would otherwise open one Postgres connection each at once, past what Postgres (or Neon's
 * pooler) accepts. A waiting drain just finishes later; its rows stay in the outbox meanwhile.
 */
class DrainSlots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  async run<T>(limit: number, work: () => Promise<T>): Promise<T> {
    if (this.active >= limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await work();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
const slots = new DrainSlots();

export async function drainOutbox(env: Env, rows: OutboxRow[]): Promise<void> {
  const limit = settingsOf(env).OUTBOX_MAX_CONCURRENT_DRAINS;
  return slots.run(limit, () => writeBatch(env, rows));
}

async function writeBatch(env: Env, rows: OutboxRow[]): Promise<void> {
  const latest = new Map<string, CommandSnapshot>();
  const logs: LogSnapshot[] = [];
  let host: HostSnapshot | null = null;
  const sessionRows = new Map<string, SessionSnapshot>();
  const sessionLog: (SessionSnapshot["event"] & { sessionId: string })[] = [];
  const alertRows = new Map<string, Alert>();
  for (const row of rows) {
    if (row.kind === "alert") {
      const alert = JSON.parse(row.payload) as Alert;
      // Within a batch the later change of the same alert wins (firing then resolved).
      if (alertRows.get(alert.id)?.state !== "resolved") alertRows.set(alert.id, alert);
      continue;
    }
    if (row.kind === "session") {
      const snapshot = JSON.parse(row.payload) as SessionSnapshot;
      const seen = sessionRows.get(snapshot.id);
      if (!seen || seen.version < snapshot.version) sessionRows.set(snapshot.id, snapshot);
      sessionLog.push({ ...snapshot.event, sessionId: snapshot.id });
      continue;
    }
    if (row.kind === "host") {
      const snapshot = JSON.parse(row.payload) as HostSnapshot;
      if (!host || host.at <= snapshot.at) host = snapshot;
      continue;
    }
    if (row.kind === "command") {
      const snapshot = JSON.parse(row.payload) as CommandSnapshot;
      const seen = latest.get(snapshot.id);
      if (!seen || seen.version < snapshot.version) latest.set(snapshot.id, snapshot);
    } else if (row.kind === "log") {
      logs.push(JSON.parse(row.payload) as LogSnapshot);
    }
  }
  const handle = openDatabase(settingsOf(env), 1);
  try {
    await handle.db.transaction(async (tx) => {
      if (latest.size > 0) {
        await tx
          .insert(commands)
          .values(
            [...latest.values()].map((c) => ({
              id: c.id,
              clientId: c.clientId,
              action: c.action,
              payload: c.payload,
              priority: c.priority,
              status: c.status,
              attempt: c.attempt,
              timeoutSec: c.timeoutSec,
              deadline: c.deadline === null ? null : new Date(c.deadline),
              coalesceKey: c.coalesceKey,
              idempotencyKey: c.idempotencyKey,
              result: c.result ?? null,
              version: c.version,
              createdAt: new Date(c.createdAt),
              updatedAt: new Date(c.updatedAt),
            })),
          )
          .onConflictDoUpdate({
            target: commands.id,
            set: {
              status: sql`excluded.status`,
              attempt: sql`excluded.attempt`,
              result: sql`excluded.result`,
              version: sql`excluded.version`,
              updatedAt: sql`excluded.updated_at`,
            },
            setWhere: sql`${commands.version} < excluded.version`,
          });
      }
      if (sessionRows.size > 0) {
        const d = (ms: number | null) => (ms === null ? null : new Date(ms));
        await tx
          .insert(sessions)
          .values(
            [...sessionRows.values()].map((x) => ({
              id: x.id,
              clientId: x.clientId,
              name: x.name,
              spec: x.spec,
              status: x.status,
              exitCode: x.exitCode,
              startedAt: d(x.startedAt),
              endedAt: d(x.endedAt),
              version: x.version,
              createdAt: new Date(x.createdAt),
              updatedAt: new Date(x.updatedAt),
            })),
          )
          .onConflictDoUpdate({
            target: sessions.id,
            set: {
              status: sql`excluded.status`,
              exitCode: sql`excluded.exit_code`,
              startedAt: sql`excluded.started_at`,
              endedAt: sql`excluded.ended_at`,
              version: sql`excluded.version`,
              updatedAt: sql`excluded.updated_at`,
            },
            setWhere: sql`${sessions.version} < excluded.version`,
          });
        await tx
          .insert(sessionEvents)
          .values(
            sessionLog.map((e) => ({
              sessionId: e.sessionId,
              seq: e.seq,
              fromStatus: e.from,
              toStatus: e.to,
              exitCode: e.exitCode,
              reason: e.reason,
              at: new Date(e.at),
            })),
          )
          .onConflictDoNothing();
      }
      if (host) {
        const h = host;
        await tx
          .insert(hosts)
          .values({
            clientId: h.clientId,
            status: h.status,
            lastSeenAt: new Date(h.lastSeenAt),
            agentVersion: h.agentVersion,
            lastHeartbeat: h.heartbeat,
            updatedAt: new Date(h.at),
          })
          .onConflictDoUpdate({
            target: hosts.clientId,
            set: {
              status: sql`excluded.status`,
              lastSeenAt: sql`excluded.last_seen_at`,
              agentVersion: sql`excluded.agent_version`,
              lastHeartbeat: sql`excluded.last_heartbeat`,
              updatedAt: sql`excluded.updated_at`,
            },
            setWhere: sql`${hosts.updatedAt} <= excluded.updated_at`,
          });
      }
      if (alertRows.size > 0) {
        await tx
          .insert(alerts)
          .values(
            [...alertRows.values()].map((a) => ({
              id: a.id,
              clientId: a.clientId,
              rule: a.rule,
              fingerprint: a.id,
              severity: a.severity,
              state: a.state,
              value: a.value,
              labels: a.labels,
              summary: a.summary,
              triggeredAt: new Date(a.triggeredAt),
              resolvedAt: a.resolvedAt === null ? null : new Date(a.resolvedAt),
            })),
          )
          .onConflictDoUpdate({
            target: alerts.id,
            set: {
              state: sql`excluded.state`,
              value: sql`excluded.value`,
              resolvedAt: sql`excluded.resolved_at`,
            },
            // A resolved alert stays resolved, whatever order replays arrive in.
            setWhere: sql`${alerts.state} = 'firing'`,
          });
      }
      if (logs.length > 0) {
        await tx
          .insert(commandLogs)
          .values(
            logs.map((l) => ({
              commandId: l.commandId,
              seq: l.seq,
              fromStatus: l.from,
              toStatus: l.to,
              cause: l.cause,
              at: new Date(l.at),
            })),
          )
          .onConflictDoNothing();
      }
    });
  } finally {
    await handle.close();
  }
}
