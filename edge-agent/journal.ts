/**
 * The agent's journal: which commands it received, started and finished, and which results
 * the edge has not accepted yet. It is what makes "at most once" true on the agent: a command
 * id seen before is never run again, however often the edge delivers it.
 *
 * On disk it is SQLite (node:sqlite) in WAL mode with synchronous=FULL: each write is one
 * transaction that is on disk when the call returns, so `kill -9` at any point loses nothing
 * the agent acknowledged. SQLite over an append-only file because the journal is also queried
 * (pending results, commands interrupted by a crash) and must be compacted; SQLite does both
 * with a file format that survives torn writes.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";

export type JournalState = "received" | "started" | "finished";

export interface JournalResult {
  success: boolean;
  data?: unknown;
  error?: { code: string; message: string; retryable?: boolean };
  durationMs: number;
}

export interface JournalEntry {
  commandId: string;
  action: string;
  state: JournalState;
  receivedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  result: JournalResult | null;
  /** The edge has answered the result (accepted it, or said the command had ended otherwise). */
  resultDelivered: boolean;
}

export interface Journal {
  /** Records a delivery. Returns false when this command id was seen before (do not run it). */
  receive(commandId: string, action: string, at: number): boolean;
  start(commandId: string, at: number): void;
  finish(commandId: string, result: JournalResult, at: number): void;
  markDelivered(commandId: string): void;
  get(commandId: string): JournalEntry | undefined;
  /** Finished commands whose result the edge has not taken yet, oldest first. */
  undelivered(): JournalEntry[];
  /** Commands started but never finished: the agent died while running them. */
  interrupted(): JournalEntry[];
  lastEventId(): string | undefined;
  setLastEventId(id: string): void;
  /** Forget delivered entries finished before `before` (their ids stay known for dedupe for `keep` more). */
  compact(before: number): number;
  close(): void;
}

export class MemoryJournal implements Journal {
  private readonly entries = new Map<string, JournalEntry>();
  private eventId: string | undefined;

  receive(commandId: string, action: string, at: number): boolean {
    if (this.entries.has(commandId)) return false;
    this.entries.set(commandId, {
      commandId,
      action,
      state: "received",
      receivedAt: at,
      startedAt: null,
      finishedAt: null,
      result: null,
      resultDelivered: false,
    });
    return true;
  }
  start(commandId: string, at: number): void {
    const e = this.require(commandId);
    e.state = "started";
    e.startedAt = at;
  }
  finish(commandId: string, result: JournalResult, at: number): void {
    const e = this.require(commandId);
    e.state = "finished";
    e.finishedAt = at;
    e.result = structuredClone(result);
  }
  markDelivered(commandId: string): void {
    this.require(commandId).resultDelivered = true;
  }
  get(commandId: string): JournalEntry | undefined {
    const e = this.entries.get(commandId);
    return e ? structuredClone(e) : undefined;
  }
  undelivered(): JournalEntry[] {
    return [...this.entries.values()]
      .filter((e) => e.state === "finished" && !e.resultDelivered)
      .sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0))
      .map((e) => structuredClone(e));
  }
  interrupted(): JournalEntry[] {
    return [...this.entries.values()].filter((e) => e.state === "started").map((e) => structuredClone(e));
  }
  lastEventId(): string | undefined {
    return this.eventId;
  }
  setLastEventId(id: string): void {
    this.eventId = id;
  }
  compact(before: number): number {
    let n = 0;
    for (const [id, e] of this.entries) {
      if (e.resultDelivered && (e.finishedAt ?? 0) < before) {
        this.entries.delete(id);
        n++;
      }
    }
    return n;
  }
  close(): void {}
  private require(commandId: string): JournalEntry {
    const e = this.entries.get(commandId);
    if (!e) throw new Error(`journal has no command ${commandId}`);
    return e;
  }
}

interface Row {
  command_id: string;
  action: string;
  state: JournalState;
  received_at: number;
  started_at: number | null;
  finished_at: number | null;
  result: string | null;
  result_delivered: number;
}

export class SqliteJournal implements Journal {
  private readonly db: DatabaseSync;

  constructor(file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.db = new DatabaseSync(file);
    this.db.exec("PRAGMA journal_mode = WAL");
    this.db.exec("PRAGMA synchronous = FULL");
    this.db.exec("PRAGMA busy_timeout = 5000");
    this.db.exec("PRAGMA cache_size = -256");
    this.db.exec(`CREATE TABLE IF NOT EXISTS commands (
      command_id TEXT PRIMARY KEY, action TEXT NOT NULL, state TEXT NOT NULL,
      received_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
      result TEXT, result_delivered INTEGER NOT NULL DEFAULT 0)`);
    this.db.exec(
      "CREATE INDEX IF NOT EXISTS commands_pending ON commands (state, result_delivered, finished_at)",
    );
    this.db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  }

  receive(commandId: string, action: string, at: number): boolean {
    const r = this.db
      .prepare(
        "INSERT INTO commands (command_id, action, state, received_at) VALUES (?, ?, 'received', ?) ON CONFLICT DO NOTHING",
      )
      .run(commandId, action, at);
    return Number(r.changes) === 1;
  }
  start(commandId: string, at: number): void {
    this.expectOne(
      this.db
        .prepare("UPDATE commands SET state = 'started', started_at = ? WHERE command_id = ?")
        .run(at, commandId),
      commandId,
    );
  }
  finish(commandId: string, result: JournalResult, at: number): void {
    this.expectOne(
      this.db
        .prepare("UPDATE commands SET state = 'finished', finished_at = ?, result = ? WHERE command_id = ?")
        .run(at, JSON.stringify(result), commandId),
      commandId,
    );
  }
  markDelivered(commandId: string): void {
    this.expectOne(
      this.db.prepare("UPDATE commands SET result_delivered = 1 WHERE command_id = ?").run(commandId),
      commandId,
    );
  }
  get(commandId: string): JournalEntry | undefined {
    const row = this.db.prepare("SELECT * FROM commands WHERE command_id = ?").get(commandId) as
      | Row
      | undefined;
    return row ? toEntry(row) : undefined;
  }
  undelivered(): JournalEntry[] {
    return (
      this.db
        .prepare(
          "SELECT * FROM commands WHERE state = 'finished' AND result_delivered = 0 ORDER BY finished_at, command_id",
        )
        .all() as unknown as Row[]
    ).map(toEntry);
  }
  interrupted(): JournalEntry[] {
    return (
      this.db
        .prepare("SELECT * FROM commands WHERE state = 'started' ORDER BY started_at")
        .all() as unknown as Row[]
    ).map(toEntry);
  }
  lastEventId(): string | undefined {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'last_event_id'").get() as
      | { value: string }
      | undefined;
    return row?.value;
  }
  setLastEventId(id: string): void {
    this.db
      .prepare(
        "INSERT INTO meta (key, value) VALUES ('last_event_id', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      )
      .run(id);
  }
  compact(before: number): number {
    return Number(
      this.db.prepare("DELETE FROM commands WHERE result_delivered = 1 AND finished_at < ?").run(before)
        .changes,
    );
  }
  close(): void {
    this.db.close();
  }
  private expectOne(result: { changes: number | bigint }, commandId: string): void {
    if (Number(result.changes) !== 1) throw new Error(`journal has no command ${commandId}`);
  }
}

function toEntry(row: Row): JournalEntry {
  return {
    commandId: row.command_id,
    action: row.action,
    state: row.state,
    receivedAt: row.received_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    result: row.result === null ? null : (JSON.parse(row.result) as JournalResult),
    resultDelivered: row.result_delivered === 1,
  };
}
