import { type ParsedSseEvent, SseParser } from "../../src/protocol/sse.js";

/** A small SSE reader over fetch for tests and benchmarks (the agent has its own link). */
export interface SseConnection {
  status: number;
  next(timeoutMs?: number): Promise<ParsedSseEvent>;
  onEvent?: (event: ParsedSseEvent) => void;
  received: ParsedSseEvent[];
  closed: Promise<void>;
  close(): void;
}

export async function connectSse(
  url: string,
  token: string,
  options: { lastEventId?: string; onEvent?: (event: ParsedSseEvent) => void } = {},
): Promise<SseConnection> {
  const controller = new AbortController();
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "text/event-stream" };
  if (options.lastEventId !== undefined) headers["last-event-id"] = options.lastEventId;
  const res = await fetch(url, { headers, signal: controller.signal });
  const queue: ParsedSseEvent[] = [];
  const waiters: ((e: ParsedSseEvent) => void)[] = [];
  const received: ParsedSseEvent[] = [];
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const closed = (async () => {
    if (!res.body) return;
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { value: chunk, done } = await reader.read();
        if (done) break;
        for (const event of parser.push(decoder.decode(chunk, { stream: true }))) {
          if (event.event === "heartbeat") continue;
          received.push(event);
          options.onEvent?.(event);
          const waiter = waiters.shift();
          if (waiter) waiter(event);
          else queue.push(event);
        }
      }
    } catch {}
  })();
  return {
    status: res.status,
    received,
    closed,
    next(timeoutMs = 5000) {
      const ready = queue.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no event within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((e) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
    },
    close() {
      controller.abort();
    },
  };
}
