import { readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../dev/local-cloud.js";
import { runMigrations } from "../../dev/migrate.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";

let database: TestDatabase;
let client: pg.Client;

beforeAll(async () => {
  database = await createTestDatabase("fleetdeck_schema");
  await runMigrations(database.url);
  client = new pg.Client({ connectionString: database.url });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
  await database?.drop();
});

async function expectViolation(statement: string, constraint: string) {
  await client.query("savepoint s");
  try {
    await client.query(statement);
    throw new Error(`expected ${constraint} to reject: ${statement}`);
  } catch (error) {
    expect((error as { constraint?: string }).constraint ?? String(error)).toBe(constraint);
  } finally {
    await client.query("rollback to savepoint s");
  }
}

describe("the committed migrations on a fresh database", () => {
  it("create every table the system of record needs", async () => {
    const { rows } = await client.query<{ table_name: string }>(
      "select table_name from information_schema.tables where table_schema = 'public' order by table_name",
    );
    expect(rows.map((r) => r.table_name)).toEqual([
      "alerts",
      "api_tokens",
      "clients",
      "command_logs",
      "commands",
      "hosts",
      "services",
      "session_events",
      "sessions",
      "subscriptions",
      "webhook_receipts",
    ]);
  });

  it("are idempotent: applying them again changes nothing", async () => {
    await runMigrations(database.url);
    const { rows } = await client.query("select count(*)::int as n from drizzle.__drizzle_migrations");
    // One row per committed migration, however often they are applied.
    const journal = JSON.parse(readFileSync(path.join(REPO_ROOT, "drizzle/meta/_journal.json"), "utf8")) as {
      entries: unknown[];
    };
    expect(journal.entries.length).toBeGreaterThanOrEqual(2);
    expect(rows[0].n).toBe(journal.entries.length);
  });

  it("enforce the lifecycles, roles and keys as constraints", async () => {
    await client.query("begin");
    try {
      await client.query("insert into clients (id, name, key_hash) values ('cl_a', 'gw-a', 'h')");
      await client.query(
        "insert into commands (id, client_id, action, status, timeout_sec) values ('cmd_1', 'cl_a', 'exec', 'pending', 30)",
      );
      await expectViolation(
        "insert into commands (id, client_id, action, status, timeout_sec) values ('cmd_2', 'cl_a', 'exec', 'bogus', 30)",
        "commands_status_ck",
      );
      await expectViolation(
        "insert into commands (id, client_id, action, status, priority, timeout_sec) values ('cmd_3', 'cl_a', 'exec', 'pending', 11, 30)",
        "commands_priority_ck",
      );
      await expectViolation(
        "insert into commands (id, client_id, action, status, timeout_sec) values ('cmd_4', 'cl_missing', 'exec', 'pending', 30)",
        "commands_client_id_clients_id_fk",
      );
      await client.query(
        "insert into command_logs (command_id, seq, to_status, cause, at) values ('cmd_1', 1, 'pending', 'created', now())",
      );
      await expectViolation(
        "insert into command_logs (command_id, seq, to_status, cause, at) values ('cmd_1', 1, 'pending', 'again', now())",
        "command_logs_command_id_seq_pk",
      );
      await expectViolation(
        "insert into api_tokens (id, name, role, token_hash) values ('tok_1', 't', 'root', 'x')",
        "api_tokens_role_ck",
      );
      await expectViolation(
        "insert into sessions (id, client_id, name, status) values ('s1', 'cl_a', 'w', 'flying')",
        "sessions_status_ck",
      );
      await client.query(
        "insert into alerts (id, client_id, rule, fingerprint, severity, state, triggered_at) values ('al_1', 'cl_a', 'cpu', 'fp1', 'critical', 'firing', now())",
      );
      await expectViolation(
        "insert into alerts (id, client_id, rule, fingerprint, severity, state, triggered_at) values ('al_2', 'cl_a', 'cpu', 'fp1', 'critical', 'firing', now())",
        "alerts_client_fingerprint_uq",
      );
      await expectViolation(
        "insert into subscriptions (id, url, kind, topics) values ('sub_1', 'http://x', 'email', '{}')",
        "subscriptions_kind_ck",
      );
      await client.query("insert into webhook_receipts (source, message_id) values ('qstash', 'msg_1')");
      await expectViolation(
        "insert into webhook_receipts (source, message_id) values ('qstash', 'msg_1')",
        "webhook_receipts_source_message_id_pk",
      );
      // Deleting a client removes what hangs off it.
      await client.query("delete from clients where id = 'cl_a'");
      const { rows } = await client.query("select count(*)::int as n from commands");
      expect(rows[0].n).toBe(0);
    } finally {
      await client.query("rollback");
    }
  });
});
