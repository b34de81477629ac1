/**
 * What the API Worker and a ClientHub say to each other over Durable Object RPC. Errors
 * cross the boundary as data (class identity does not survive RPC) and become a
 * FleetdeckError again on the Worker's side.
 */
import type { AlertReport } from "../domain/alert.js";
import type { Command, CommandLogEntry } from "../domain/command.js";
import type { Heartbeat } from "../domain/host.js";
import type { Result } from "../domain/result.js";
import type { Session, SessionEvent } from "../domain/session.js";
import type { SessionState } from "../machines/session.js";
import type { ErrorCode } from "./errors.js";

export interface HubError {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

export type HubResult<T> = { ok: true; value: T } | { ok: false; error: HubError };

export interface HubClientRecord {
  id: string;
  name: string;
  tags: string[];
  metadata: Record<string, unknown>;
  createdAt: number;
  keyRotatedAt: number | null;
}

export interface HubCreateCommand {
  id: string;
  action: string;
  payload: Record<string, unknown>;
  priority: number;
  timeoutSec: number;
  deadline: number | null;
  coalesceKey: string | null;
  idempotencyKey: string | null;
  /** SHA-256 of the request body, to tell a replay from a reused key. */
  bodyHash: string | null;
  cause: string;
  /** A signed webhook's signature hash: seen before means a replay (refused with 401). */
  replayGuard?: { hash: string; expiresAt: number };
}

export interface HubCreated {
  /** 201 when created now, 200 when an idempotent replay answers the original. */
  replayed: boolean;
  command: Command;
}

export interface HubListCommands {
  status?: string;
  limit: number;
  /** Exclusive: commands older than this id (newest first). */
  before?: string;
}

export interface HostView {
  clientId: string;
  name: string;
  tags: string[];
  status: "online" | "suspect" | "offline";
  lastSeenAt: number | null;
  lastStreamCloseAt: number | null;
  lastAckAt: number | null;
  agentVersion: string | null;
  staleThresholdSec: number;
  flapping: boolean;
  lastHeartbeat: Heartbeat | null;
  streamConnected: boolean;
}

export interface TimelineEntry {
  seq: number;
  at: number;
  kind: string;
  ref: string | null;
  data: Record<string, unknown>;
}

export interface HubSessionTransition {
  to: SessionState;
  exitCode?: number;
  reason?: string;
  by: string;
}

export interface HubApi {
  init(record: HubClientRecord & { keyHash: string }): Promise<HubResult<HubClientRecord>>;
  getClient(): Promise<HubResult<HubClientRecord>>;
  rotateKey(keyHash: string): Promise<HubResult<HubClientRecord>>;
  remove(): Promise<HubResult<{ removed: true }>>;
  verifyKey(keyHash: string): Promise<boolean>;
  createCommand(input: HubCreateCommand): Promise<HubResult<HubCreated>>;
  getCommand(id: string): Promise<HubResult<Command>>;
  listCommands(query: HubListCommands): Promise<HubResult<{ commands: Command[]; next: string | null }>>;
  commandLog(id: string): Promise<HubResult<CommandLogEntry[]>>;
  cancelCommand(id: string, cause: string): Promise<HubResult<Command>>;
  retryCommand(id: string, cause: string): Promise<HubResult<Command>>;
  ackCommand(id: string): Promise<HubResult<Command>>;
  progressCommand(id: string, progress: unknown): Promise<HubResult<Command>>;
  postResult(id: string, result: Result): Promise<HubResult<{ command: Command; duplicate: boolean }>>;
  recordHeartbeat(heartbeat: Heartbeat): Promise<HubResult<{ receivedAt: number }>>;
  reportAlerts(alerts: AlertReport[]): Promise<HubResult<{ accepted: number; duplicates: number }>>;
  getHost(): Promise<HubResult<HostView>>;
  setStaleThreshold(seconds: number | null): Promise<HubResult<HostView>>;
  createSession(input: {
    id: string;
    name: string;
    spec: Record<string, unknown>;
    by: string;
  }): Promise<HubResult<Session>>;
  transitionSession(id: string, change: HubSessionTransition): Promise<HubResult<Session>>;
  getSession(id: string): Promise<HubResult<Session & { history: SessionEvent[] }>>;
  listSessions(query: { status?: string; limit: number }): Promise<HubResult<Session[]>>;
  timeline(query: {
    limit: number;
    before?: number;
  }): Promise<HubResult<{ entries: TimelineEntry[]; next: number | null }>>;
}
