import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { type ParsedSseEvent, SseParser } from "../../src/protocol/sse.js";

export const ADMIN = "test-admin-token-0123456789abcdef";

const worker = (exports as unknown as { default: Fetcher }).default;

export async function api(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers["content-type"] ??= "application/json";
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
  }
  const res = await worker.fetch(`http://fleetdeck.test${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {}
  return { status: res.status, body: parsed, headers: res.headers };
}

export async function createClient(name = "gw"): Promise<{ id: string; key: string }> {
  const res = await api("POST", "/api/clients", { token: ADMIN, body: { name } });
  if (res.status !== 201) throw new Error(`create client: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.id, key: res.body.clientKey };
}

export async function createCommand(
  clientId: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
) {
  return api("POST", "/api/commands", {
    token: ADMIN,
    headers,
    body: { clientId, action: "health-check", payload: {}, ...extra },
  });
}

export interface TestStream {
  status: number;
  /** The next event that is not a heartbeat. */
  next(timeoutMs?: number): Promise<ParsedSseEvent>;
  /** Every event (heartbeats included) received so far. */
  received: ParsedSseEvent[];
  close(): Promise<void>;
}

export function openStream(clientId: string, token: string, lastEventId?: string): Promise<TestStream> {
  return openSse(`/api/events/${clientId}`, token, lastEventId);
}

/** The operators' fleet stream, `/api/stream?topics=...`. */
export function openFeed(token: string, topics: string, lastEventId?: string): Promise<TestStream> {
  return openSse(`/api/stream?topics=${encodeURIComponent(topics)}`, token, lastEventId);
}

async function openSse(path: string, token: string, lastEventId?: string): Promise<TestStream> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (lastEventId !== undefined) headers["last-event-id"] = lastEventId;
  const res = await worker.fetch(`http://fleetdeck.test${path}`, { headers });
  const received: ParsedSseEvent[] = [];
  const queue: ParsedSseEvent[] = [];
  const waiters: ((e: ParsedSseEvent) => void)[] = [];
  const parser = new SseParser();
  const reader = res.body?.getReader();
  const decoder = new TextDecoder();
  let closed = false;
  void (async () => {
    if (!reader) return;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parser.push(decoder.decode(value, { stream: true }))) {
          received.push(event);
          if (event.event === "heartbeat") continue;
          const waiter = waiters.shift();
          if (waiter) waiter(event);
          else queue.push(event);
        }
      }
    } catch {}
    closed = true;
  })();
  return {
    status: res.status,
    received,
    next(timeoutMs = 3000) {
      const ready = queue.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no event within ${timeoutMs} ms (closed: ${closed})`)),
          timeoutMs,
        );
        waiters.push((e) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
    },
    async close() {
      await reader?.cancel().catch(() => {});
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs a client's hub alarm now for the given duties (outbox, feed, ...), as if they were due. */
export async function runHubAlarm(clientId: string, kinds: string[]): Promise<void> {
  const stub = env.CLIENT_HUB.get(env.CLIENT_HUB.idFromName(clientId));
  await runInDurableObject(stub, async (_hub: unknown, state) => {
    for (const k of kinds)
      state.storage.sql.exec("UPDATE schedule SET due_at = ? WHERE kind = ?", Date.now() - 1, k);
    await state.storage.setAlarm(Date.now() - 1);
  });
  await runDurableObjectAlarm(stub);
}
