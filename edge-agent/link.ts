/**
 * The agent's SSE link to its client's stream. It resumes with Last-Event-ID (kept in the
 * journal), reconnects with jittered exponential backoff, and a watchdog reconnects when no
 * event or heartbeat has arrived within twice the heartbeat interval. Events are handled one
 * at a time, in order; the last event id moves only after its handler returned.
 */
import { EventEmitter } from "node:events";
import { type ParsedSseEvent, SseParser } from "../src/protocol/sse.js";
import { open } from "./http.js";

export interface LinkOptions {
  serverUrl: string;
  clientKey: string;
  clientId: string;
  lastEventId(): string | undefined;
  setLastEventId(id: string): void;
  onEvent(event: ParsedSseEvent): Promise<void>;
  /** The edge promises a heartbeat at least this often; the watchdog allows twice it. */
  heartbeatIntervalMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

export class EdgeLink extends EventEmitter<{ connected: []; disconnected: [string] }> {
  reconnects = 0;
  connected = false;
  private stopped = false;
  private controller: AbortController | null = null;
  private loop: Promise<void> | null = null;
  private attempt = 0;

  constructor(private readonly options: LinkOptions) {
    super();
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.controller?.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const log = this.options.log ?? (() => {});
    while (!this.stopped) {
      const reason = await this.connectOnce().catch((error: unknown) =>
        error instanceof Error ? error.message : String(error),
      );
      if (this.stopped) break;
      if (this.connected) {
        this.connected = false;
        this.emit("disconnected", reason);
      }
      this.reconnects++;
      const min = this.options.minBackoffMs ?? 500;
      const max = this.options.maxBackoffMs ?? 30_000;
      const ceiling = Math.min(max, min * 2 ** Math.min(this.attempt, 10));
      const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
      this.attempt++;
      log("warn", "edge stream lost; reconnecting", { reason, retry_in_ms: delay, attempt: this.attempt });
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private async connectOnce(): Promise<string> {
    const controller = new AbortController();
    this.controller = controller;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.options.clientKey}`,
      accept: "text/event-stream",
    };
    const lastEventId = this.options.lastEventId();
    if (lastEventId) headers["last-event-id"] = lastEventId;
    const res = await open(`${this.options.serverUrl}/api/events/${this.options.clientId}`, {
      headers,
      signal: controller.signal,
      timeoutMs: 30_000,
    });
    // The head has arrived: from here the watchdog, not a socket timeout, decides.
    res.socket?.setTimeout(0);
    if (res.statusCode === 401) {
      res.destroy();
      // A revoked or rotated key: keep trying slowly, and say so loudly.
      this.attempt = Math.max(this.attempt, 6);
      this.options.log?.(
        "error",
        "the edge refused this agent's client key (401); check FLEETDECK_CLIENT_KEY",
      );
      return "unauthorized";
    }
    if (res.statusCode !== 200) {
      res.destroy();
      return `edge answered ${res.statusCode}`;
    }
    this.connected = true;
    this.attempt = 0;
    this.emit("connected");
    const watchdogMs = 2 * (this.options.heartbeatIntervalMs ?? 15_000);
    let watchdog = setTimeout(() => controller.abort(new Error("no heartbeat")), watchdogMs);
    const parser = new SseParser();
    res.setEncoding("utf8");
    try {
      for await (const chunk of res) {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(new Error("no heartbeat")), watchdogMs);
        for (const event of parser.push(chunk as string)) {
          if (event.event === "heartbeat") continue;
          await this.options.onEvent(event);
          if (event.id !== undefined) this.options.setLastEventId(event.id);
        }
      }
      return "stream ended";
    } catch (error) {
      if (controller.signal.aborted && controller.signal.reason instanceof Error)
        return controller.signal.reason.message;
      throw error;
    } finally {
      clearTimeout(watchdog);
      controller.abort();
      res.destroy();
    }
  }
}
