/**
 * Postgres is the durable system of record for fleet queries and audit. The ClientHub
 * Durable Object holds each client's live truth and drains into these tables through its
 * outbox with idempotent upserts, so every write here is keyed to be replayable.
 */
import { sql } from "drizzle-orm";
import {
  boolean,
  check,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";

const createdAt = () => timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow();
const updatedAt = () => timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow();

export const clients = pgTable(
  "clients",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    tags: text("tags").array().notNull().default(sql`'{}'::text[]`),
    metadata: jsonb("metadata").notNull().default({}),
    /** SHA-256 of the key's secret part, hex; the key itself is never stored. */
    keyHash: text("key_hash").notNull(),
    keyRotatedAt: timestamp("key_rotated_at", { withTimezone: true }),
    deletedAt: timestamp("deleted_at", { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("clients_tags_idx").using("gin", t.tags)],
);

export const apiTokens = pgTable(
  "api_tokens",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    role: text("role").notNull(),
    tokenHash: text("token_hash").notNull(),
    createdBy: text("created_by"),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("api_tokens_hash_uq").on(t.tokenHash),
    check("api_tokens_role_ck", sql`${t.role} in ('admin', 'operator', 'viewer')`),
  ],
);

export const commands = pgTable(
  "commands",
  {
    id: text("id").primaryKey(),
    clientId: text("client_id")
      .notNull()
      .references(() => clients.id, { onDelete: "cascade" }),
    action: text("action").notNull(),
    payload: jsonb("payload").notNull().default({}),
    priority: integer("priority").notNull().default(5),
    status: text("status").notNull(),
    attempt: integer("attempt").notNull().default(1),
    timeoutSec: integer("timeout_sec").notNull(),
    deadline: timestamp("deadline", { withTimezone: true }),
    coalesceKey: text("coalesce_key"),
    idempotencyKey: text("idempotency_key"),
    result: jsonb("result"),
    /** Monotonic per command: an outbox upsert only applies if it is newer than what is stored. */
    version: integer("version").notNull().default(1),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("commands_client_status_idx").on(t.clientId, t.status),
    index("commands_client_created_idx").on(t.clientId, t.createdAt),
    check(
      "commands_status_ck",
      sql`${t.status} in ('pending','dispatched','running','completed','failed','timed_out','canceled','expired')`,
    ),
    check("commands_priority_ck", sql`${t.priority} between 0 and 10`),
    check("commands_attempt_ck", sql`${t.attempt} >= 1`),
  ],
);

export const commandLogs = pgTable(
  "command_logs",
  {
    commandId: text("command_id")
      .notNull()
      .references(() => commands.id, { onDelete: "cascade" }),
    /** Position in the command's own log; (command_id, seq) makes replays idempotent. */
    seq: integer("seq").notNull(),
    fromStatus: text("from_status"),
    toStatus: text("to_status").notNull(),
    cause: text("cause").notNull(),
    at: timestamp("at", { withTimezone: true }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.commandId, t.seq] })],
);

export const hosts = pgTable(
  "hosts",
  {
    clientId: text("client_id")
      .primaryKey()
      .references(() => clients.id, { onDelete: "cascade" }),
    status: text("status").notNull().default("offline"),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }),
    agentVersion: text("agent_version"),
    staleThresholdSec: integer("stale_threshold_sec"),
    lastHeartbeat: jsonb("last_heartbeat"),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("hosts_status_idx").on(t.status),
    check("hosts_status_ck", sql`${t.status} in ('online','suspect','offline')`),
  ],
);

export const sessions = pgTable(
  "sessions",
  {
    id: text("id").primaryKey(),
    clientId: text("client_id")
      .notNull()
      .references(() => clients.id, { onDelete: "cascade" }),
    serviceId: text("service_id").references(() => services.id, { onDelete: "set null" }),
    name: text("name").notNull(),
    spec: jsonb("spec").notNull().default({}),
    status: text("status").notNull().default("pending"),
    exitCode: integer("exit_code"),
    startedAt: timestamp("started_at", { withTimezone: true }),
    endedAt: timestamp("ended_at", { withTimezone: true }),
    version: integer("version").notNull().default(1),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("sessions_client_status_idx").on(t.clientId, t.status),
    check(
      "sessions_status_ck",
      sql`${t.status} in ('pending','starting','running','stopping','stopped','crashed')`,
    ),
  ],
);

export const sessionEvents = pgTable(
  "session_events",
  {
    sessionId: text("session_id")
      .notNull()
      .references(() => sessions.id, { onDelete: "cascade" }),
    seq: integer("seq").notNull(),
    fromStatus: text("from_status"),
    toStatus: text("to_status").notNull(),
    exitCode: integer("exit_code"),
    reason: text("reason"),
    at: timestamp("at", { withTimezone: true }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.sessionId, t.seq] })],
);

export const services = pgTable(
  "services",
  {
    id: text("id").primaryKey(),
    clientId: text("client_id")
      .notNull()
      .references(() => clients.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    spec: jsonb("spec").notNull(),
    status: text("status").notNull().default("pending"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("services_client_name_uq").on(t.clientId, t.name),
    check(
      "services_status_ck",
      sql`${t.status} in ('pending','initializing','running','degraded','terminating','failed')`,
    ),
  ],
);

export const alerts = pgTable(
  "alerts",
  {
    id: text("id").primaryKey(),
    clientId: text("client_id")
      .notNull()
      .references(() => clients.id, { onDelete: "cascade" }),
    rule: text("rule").notNull(),
    /** The agent's own id for this firing: (client_id, fingerprint) deduplicates forwards. */
    fingerprint: text("fingerprint").notNull(),
    severity: text("severity").notNull(),
    state: text("state").notNull(),
    value: doublePrecision("value"),
    labels: jsonb("labels").notNull().default({}),
    summary: text("summary"),
    triggeredAt: timestamp("triggered_at", { withTimezone: true }).notNull(),
    resolvedAt: timestamp("resolved_at", { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("alerts_client_fingerprint_uq").on(t.clientId, t.fingerprint),
    index("alerts_state_idx").on(t.state),
    index("alerts_triggered_idx").on(t.triggeredAt),
    check("alerts_state_ck", sql`${t.state} in ('firing','resolved')`),
    check("alerts_severity_ck", sql`${t.severity} in ('info','warning','critical')`),
  ],
);

export const subscriptions = pgTable(
  "subscriptions",
  {
    id: text("id").primaryKey(),
    url: text("url").notNull(),
    kind: text("kind").notNull(),
    topics: text("topics").array().notNull(),
    /** The Standard Webhooks signing secret (whsec_...); needed to sign, so stored as given. */
    secret: text("secret"),
    active: boolean("active").notNull().default(true),
    createdAt: createdAt(),
  },
  (t) => [check("subscriptions_kind_ck", sql`${t.kind} in ('webhook','slack')`)],
);

export const webhookReceipts = pgTable(
  "webhook_receipts",
  {
    /** The sender's message id (QStash jti / Upstash-Message-Id, or webhook-id). */
    source: text("source").notNull(),
    messageId: text("message_id").notNull(),
    commandId: text("command_id"),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.source, t.messageId] })],
);
