/**
 * The agent's calls to the edge (ack, progress, result, heartbeat), each with bounded retries
 * and jittered backoff. The answer says what happened; the caller decides what it means.
 */
import { request } from "./http.js";

export type EdgeAnswer =
  | { kind: "ok"; status: number; body: unknown }
  | { kind: "conflict"; status: 409; body: unknown }
  | { kind: "gone"; status: 404; body: unknown }
  | { kind: "refused"; status: number; body: unknown }
  | { kind: "unreachable"; error: string };

export interface EdgeClientOptions {
  serverUrl: string;
  clientKey: string;
  /** Attempts per call (first try included). */
  attempts?: number;
  baseDelayMs?: number;
  timeoutMs?: number;
}

export class EdgeClient {
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly options: EdgeClientOptions) {
    this.attempts = options.attempts ?? 4;
    this.baseDelayMs = options.baseDelayMs ?? 250;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  ack(commandId: string): Promise<EdgeAnswer> {
    return this.post(`/api/commands/${encodeURIComponent(commandId)}/ack`);
  }

  progress(commandId: string, update: { percent?: number; message?: string }): Promise<EdgeAnswer> {
    return this.post(`/api/commands/${encodeURIComponent(commandId)}/progress`, update, 1);
  }

  result(commandId: string, result: unknown): Promise<EdgeAnswer> {
    return this.post(`/api/commands/${encodeURIComponent(commandId)}/result`, result);
  }

  heartbeat(summary: unknown): Promise<EdgeAnswer> {
    return this.post("/api/heartbeat", summary, 1);
  }

  async post(path: string, body?: unknown, attempts = this.attempts): Promise<EdgeAnswer> {
    let last: EdgeAnswer = { kind: "unreachable", error: "not tried" };
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) {
        const delay = this.baseDelayMs * 2 ** (attempt - 1);
        await new Promise((r) => setTimeout(r, delay / 2 + Math.random() * delay));
      }
      try {
        const res = await request(`${this.options.serverUrl}${path}`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${this.options.clientKey}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          timeoutMs: this.timeoutMs,
        });
        const text = res.text;
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch {}
        if (res.status >= 200 && res.status < 300) return { kind: "ok", status: res.status, body: parsed };
        if (res.status === 409) return { kind: "conflict", status: 409, body: parsed };
        if (res.status === 404) return { kind: "gone", status: 404, body: parsed };
        last = { kind: "refused", status: res.status, body: parsed };
        // Only what may pass is retried: rate limits and unavailable dependencies.
        if (res.status !== 429 && res.status < 500) return last;
        const retryAfter = Number(res.headers["retry-after"]);
        if (Number.isFinite(retryAfter) && retryAfter > 0 && attempt < attempts - 1) {
          await new Promise((r) => setTimeout(r, Math.min(retryAfter, 30) * 1000));
        }
      } catch (error) {
        last = { kind: "unreachable", error: error instanceof Error ? error.message : String(error) };
      }
    }
    return last;
  }
}
