/**
 * The local stand-in for QStash: the v2 REST API that `@upstash/qstash`'s Client calls
 * (publish, batch, enqueue, queues, topics/URL groups, schedules, messages, DLQ, events,
 * signing keys), and deliveries signed exactly as QStash signs them so its Receiver works.
 *
 * Everything lives in memory: it is a development stand-in, not a durable queue.
 * Retries follow `Upstash-Retries` (default 3) with exponential backoff; the base is
 * scaled down (`backoffBaseMs`) so a local run sees retries in seconds, not hours.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import { Cron } from "croner";
import { closeServer, listen } from "./ports.js";
import { signDelivery } from "./qstash-signing.js";

export interface QStashEmulatorOptions {
  port: number;
  token: string;
  currentSigningKey: string;
  nextSigningKey: string;
  /** First retry waits this long, then doubles per retry (capped at maxBackoffMs). */
  backoffBaseMs?: number;
  maxBackoffMs?: number;
  /** How long a deduplication id is remembered. */
  dedupWindowMs?: number;
  /** Per-delivery HTTP timeout. */
  deliveryTimeoutMs?: number;
  log?: (line: Record<string, unknown>) => void;
}

export interface QStashEmulator {
  url: string;
  port: number;
  token: string;
  signingKeys(): { current: string; next: string };
  /** Resolves when no message is waiting or in flight (tests). */
  idle(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

type MessageState = "CREATED" | "ACTIVE" | "RETRY" | "DELIVERED" | "ERROR" | "FAILED" | "CANCELED";

interface Message {
  messageId: string;
  url: string;
  topicName?: string;
  endpointName?: string;
  queueName?: string;
  scheduleId?: string;
  method: string;
  /** Headers forwarded to the destination (Upstash-Forward-* with the prefix removed). */
  header: Record<string, string[]>;
  body: Buffer;
  maxRetries: number;
  retried: number;
  notBefore: number;
  createdAt: number;
  callback?: string;
  failureCallback?: string;
  state: MessageState;
  timer?: NodeJS.Timeout;
  lastResponse?: { status: number; body: string };
}

interface Schedule {
  scheduleId: string;
  cron: string;
  destination: string;
  method: string;
  header: Record<string, string[]>;
  body: string;
  retries: number;
  delay?: number;
  callback?: string;
  failureCallback?: string;
  createdAt: number;
  isPaused: boolean;
  lastScheduleTime?: number;
  nextScheduleTime?: number;
  job: Cron;
  raw: http.IncomingHttpHeaders;
}

interface Queue {
  name: string;
  parallelism: number;
  paused: boolean;
  createdAt: number;
  updatedAt: number;
  waiting: Message[];
  active: number;
}

interface Topic {
  name: string;
  endpoints: { url: string; name?: string }[];
  createdAt: number;
  updatedAt: number;
}

interface DlqMessage {
  dlqId: string;
  messageId: string;
  url: string;
  topicName?: string;
  queueName?: string;
  scheduleId?: string;
  method: string;
  header: Record<string, string[]>;
  body: string;
  maxRetries: number;
  createdAt: number;
  responseStatus?: number;
  responseBody?: string;
}

interface EventLog {
  time: number;
  state: MessageState;
  messageId: string;
  url: string;
  topicName?: string;
  queueName?: string;
  scheduleId?: string;
  error?: string;
  responseStatus?: number;
}

class QStashHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const DEFAULT_RETRIES = 3;
const MAX_RETRIES = 5;

export async function startQStashEmulator(options: QStashEmulatorOptions): Promise<QStashEmulator> {
  const keys = { current: options.currentSigningKey, next: options.nextSigningKey };
  const backoffBase = options.backoffBaseMs ?? 500;
  const maxBackoff = options.maxBackoffMs ?? 30_000;
  const dedupWindow = options.dedupWindowMs ?? 10 * 60_000;
  const deliveryTimeout = options.deliveryTimeoutMs ?? 15_000;
  const log = options.log ?? (() => {});

  const messages = new Map<string, Message>();
  const dedup = new Map<string, { messageId: string; url: string; expiresAt: number }>();
  const topics = new Map<string, Topic>();
  const queues = new Map<string, Queue>();
  const schedules = new Map<string, Schedule>();
  const dlq = new Map<string, DlqMessage>();
  const events: EventLog[] = [];
  let inFlight = 0;
  let stopped = false;

  function record(message: Message, state: MessageState, extra: Partial<EventLog> = {}): void {
    message.state = state;
    events.push({
      time: Date.now(),
      state,
      messageId: message.messageId,
      url: message.url,
      ...(message.topicName ? { topicName: message.topicName } : {}),
      ...(message.queueName ? { queueName: message.queueName } : {}),
      ...(message.scheduleId ? { scheduleId: message.scheduleId } : {}),
      ...extra,
    });
    if (events.length > 10_000) events.splice(0, events.length - 10_000);
  }

  // ---------- delivery ----------

  function schedule(message: Message): void {
    const wait = Math.max(0, message.notBefore - Date.now());
    message.timer = setTimeout(() => {
      message.timer = undefined;
      void attempt(message);
    }, wait);
  }

  function enqueueOrSchedule(message: Message): void {
    messages.set(message.messageId, message);
    record(message, "CREATED");
    if (message.queueName) {
      const queue = ensureQueue(message.queueName);
      queue.waiting.push(message);
      pumpQueue(queue);
    } else {
      schedule(message);
    }
  }

  function pumpQueue(queue: Queue): void {
    while (!queue.paused && queue.active < queue.parallelism && queue.waiting.length > 0) {
      const message = queue.waiting.shift()!;
      if (message.state === "CANCELED") continue;
      queue.active++;
      schedule(message);
    }
  }

  function releaseQueueSlot(message: Message): void {
    if (!message.queueName) return;
    const queue = queues.get(message.queueName);
    if (!queue) return;
    queue.active = Math.max(0, queue.active - 1);
    pumpQueue(queue);
  }

  async function attempt(message: Message): Promise<void> {
    if (stopped || message.state === "CANCELED") return;
    inFlight++;
    record(message, "ACTIVE");
    let status = 0;
    let responseBody = "";
    let failure: string | undefined;
    try {
      const headers = new Headers();
      for (const [name, values] of Object.entries(message.header))
        for (const v of values) headers.append(name, v);
      headers.set(
        "Upstash-Signature",
        signDelivery(keys.current, { url: message.url, body: message.body, messageId: message.messageId }),
      );
      headers.set("Upstash-Message-Id", message.messageId);
      headers.set("Upstash-Retried", String(message.retried));
      headers.set("Upstash-Caller-Ip", "127.0.0.1");
      if (message.scheduleId) headers.set("Upstash-Schedule-Id", message.scheduleId);
      if (message.topicName) headers.set("Upstash-Topic-Name", message.topicName);
      if (message.queueName) headers.set("Upstash-Queue-Name", message.queueName);
      const response = await fetch(message.url, {
        method: message.method,
        headers,
        body:
          message.method === "GET" || message.method === "HEAD" ? undefined : new Uint8Array(message.body),
        signal: AbortSignal.timeout(deliveryTimeout),
        redirect: "manual",
      });
      status = response.status;
      responseBody = (await response.text()).slice(0, 4096);
      if (status < 200 || status >= 300) failure = `destination answered ${status}`;
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
    } finally {
      inFlight--;
    }
    message.lastResponse = { status, body: responseBody };
    // Canceled while the request was in flight (DELETE /v2/messages/:id).
    if ((message.state as MessageState) === "CANCELED") return;

    if (!failure) {
      record(message, "DELIVERED", { responseStatus: status });
      log({ msg: "qstash delivered", message_id: message.messageId, url: message.url, status });
      releaseQueueSlot(message);
      if (message.callback) callback(message, message.callback, status, responseBody);
      messages.delete(message.messageId);
      return;
    }
    if (message.retried < message.maxRetries) {
      const delay = Math.min(maxBackoff, backoffBase * 2 ** message.retried);
      message.retried++;
      message.notBefore = Date.now() + delay;
      record(message, "RETRY", { error: failure, ...(status ? { responseStatus: status } : {}) });
      log({
        msg: "qstash retry",
        message_id: message.messageId,
        url: message.url,
        error: failure,
        retried: message.retried,
        delay_ms: delay,
      });
      schedule(message);
      return;
    }
    record(message, "FAILED", { error: failure, ...(status ? { responseStatus: status } : {}) });
    log({ msg: "qstash dead letter", message_id: message.messageId, url: message.url, error: failure });
    const dlqId = `${Date.now()}-${randomUUID()}`;
    dlq.set(dlqId, {
      dlqId,
      messageId: message.messageId,
      url: message.url,
      ...(message.topicName ? { topicName: message.topicName } : {}),
      ...(message.queueName ? { queueName: message.queueName } : {}),
      ...(message.scheduleId ? { scheduleId: message.scheduleId } : {}),
      method: message.method,
      header: message.header,
      body: message.body.toString("utf8"),
      maxRetries: message.maxRetries,
      createdAt: message.createdAt,
      ...(status ? { responseStatus: status, responseBody } : {}),
    });
    releaseQueueSlot(message);
    messages.delete(message.messageId);
    if (message.failureCallback) callback(message, message.failureCallback, status, responseBody);
  }

  /** Callbacks are themselves QStash messages whose body describes the original delivery. */
  function callback(original: Message, url: string, status: number, body: string): void {
    const payload = JSON.stringify({
      status,
      header: {},
      body: Buffer.from(body).toString("base64"),
      retried: original.retried,
      maxRetries: original.maxRetries,
      sourceMessageId: original.messageId,
      url: original.url,
      method: original.method,
      sourceHeader: original.header,
      sourceBody: original.body.toString("base64"),
    });
    enqueueOrSchedule(
      newMessage({
        url,
        method: "POST",
        header: { "Content-Type": ["application/json"] },
        body: Buffer.from(payload),
      }),
    );
  }

  function newMessage(
    fields: Partial<Message> & Pick<Message, "url" | "method" | "header" | "body">,
  ): Message {
    return {
      messageId: `msg_${randomBytes(16).toString("hex")}`,
      maxRetries: DEFAULT_RETRIES,
      retried: 0,
      notBefore: Date.now(),
      createdAt: Date.now(),
      state: "CREATED",
      ...fields,
    };
  }

  function ensureQueue(name: string): Queue {
    let queue = queues.get(name);
    if (!queue) {
      queue = {
        name,
        parallelism: 1,
        paused: false,
        createdAt: Date.now(),
        updatedAt: Date.now(),
        waiting: [],
        active: 0,
      };
      queues.set(name, queue);
    }
    return queue;
  }

  // ---------- publishing ----------

  interface PublishInput {
    destination: string;
    headers: Headers;
    body: Buffer;
    queueName?: string;
    scheduleId?: string;
  }

  function publish(input: PublishInput): unknown {
    const { destination, headers, body } = input;
    const targets = resolveDestination(destination);
    const method = (headers.get("upstash-method") ?? "POST").toUpperCase();
    const header = forwardedHeaders(headers);
    const retriesHeader = headers.get("upstash-retries");
    const maxRetries = retriesHeader === null ? DEFAULT_RETRIES : parseRetries(retriesHeader);
    const notBefore = computeNotBefore(headers);
    const callbackUrl = headers.get("upstash-callback") ?? undefined;
    const failureCallback = headers.get("upstash-failure-callback") ?? undefined;
    const dedupId =
      headers.get("upstash-deduplication-id") ??
      (headers.get("upstash-content-based-deduplication") === "true"
        ? createHash("sha256").update(destination).update(body).digest("hex")
        : undefined);

    const responses = targets.map((target) => {
      const key = dedupId ? `${dedupId}|${target.url}` : undefined;
      if (key) {
        const seen = dedup.get(key);
        if (seen && seen.expiresAt > Date.now()) {
          return { messageId: seen.messageId, url: target.url, deduplicated: true };
        }
      }
      const message = newMessage({
        url: target.url,
        ...(target.topicName ? { topicName: target.topicName } : {}),
        ...(target.name ? { endpointName: target.name } : {}),
        ...(input.queueName ? { queueName: input.queueName } : {}),
        ...(input.scheduleId ? { scheduleId: input.scheduleId } : {}),
        method,
        header,
        body,
        maxRetries,
        notBefore,
        ...(callbackUrl ? { callback: callbackUrl } : {}),
        ...(failureCallback ? { failureCallback } : {}),
      });
      if (key)
        dedup.set(key, {
          messageId: message.messageId,
          url: target.url,
          expiresAt: Date.now() + dedupWindow,
        });
      enqueueOrSchedule(message);
      return { messageId: message.messageId, url: target.url };
    });
    // A URL answers one object; a topic answers one entry per endpoint.
    if (targets.length === 1 && !targets[0]!.topicName) {
      const { url: _url, ...single } = responses[0]!;
      return single;
    }
    return responses;
  }

  function resolveDestination(destination: string): { url: string; topicName?: string; name?: string }[] {
    if (/^https?:\/\//i.test(destination)) {
      try {
        new URL(destination);
      } catch {
        throw new QStashHttpError(400, `invalid destination url: ${destination}`);
      }
      return [{ url: destination }];
    }
    const topic = topics.get(destination);
    if (!topic) throw new QStashHttpError(404, `topic ${destination} not found`);
    if (topic.endpoints.length === 0) throw new QStashHttpError(400, `topic ${destination} has no endpoints`);
    return topic.endpoints.map((e) => ({
      url: e.url,
      topicName: topic.name,
      ...(e.name ? { name: e.name } : {}),
    }));
  }

  // ---------- schedules ----------

  function createSchedule(destination: string, headers: Headers, body: Buffer): { scheduleId: string } {
    const cron = headers.get("upstash-cron");
    if (!cron) throw new QStashHttpError(400, "Upstash-Cron header is required");
    resolveDestination(destination);
    let job: Cron;
    const scheduleId = headers.get("upstash-schedule-id") ?? `scd_${randomBytes(12).toString("hex")}`;
    const existing = schedules.get(scheduleId);
    existing?.job.stop();
    try {
      job = new Cron(cron, { paused: false, catch: true }, () => fire(scheduleId));
    } catch (error) {
      throw new QStashHttpError(
        400,
        `invalid cron expression ${cron}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    const raw: http.IncomingHttpHeaders = {};
    headers.forEach((value, name) => {
      raw[name] = value;
    });
    const retriesHeader = headers.get("upstash-retries");
    const scheduleEntry: Schedule = {
      scheduleId,
      cron,
      destination,
      method: (headers.get("upstash-method") ?? "POST").toUpperCase(),
      header: forwardedHeaders(headers),
      body: body.toString("utf8"),
      retries: retriesHeader === null ? DEFAULT_RETRIES : parseRetries(retriesHeader),
      ...(headers.get("upstash-callback") ? { callback: headers.get("upstash-callback")! } : {}),
      ...(headers.get("upstash-failure-callback")
        ? { failureCallback: headers.get("upstash-failure-callback")! }
        : {}),
      createdAt: existing?.createdAt ?? Date.now(),
      isPaused: false,
      job,
      raw,
    };
    const next = job.nextRun();
    if (next) scheduleEntry.nextScheduleTime = next.getTime();
    schedules.set(scheduleId, scheduleEntry);
    return { scheduleId };
  }

  function fire(scheduleId: string): void {
    const entry = schedules.get(scheduleId);
    if (!entry || entry.isPaused || stopped) return;
    entry.lastScheduleTime = Date.now();
    const next = entry.job.nextRun();
    if (next) entry.nextScheduleTime = next.getTime();
    const headers = new Headers();
    for (const [name, value] of Object.entries(entry.raw)) {
      if (typeof value === "string" && name !== "upstash-cron" && name !== "upstash-schedule-id")
        headers.set(name, value);
    }
    try {
      publish({ destination: entry.destination, headers, body: Buffer.from(entry.body), scheduleId });
    } catch (error) {
      log({ msg: "qstash schedule could not publish", schedule_id: scheduleId, error: String(error) });
    }
  }

  function scheduleView(s: Schedule): Record<string, unknown> {
    return {
      scheduleId: s.scheduleId,
      cron: s.cron,
      createdAt: s.createdAt,
      destination: s.destination,
      method: s.method,
      header: s.header,
      body: s.body,
      retries: s.retries,
      ...(s.callback ? { callback: s.callback } : {}),
      ...(s.failureCallback ? { failureCallback: s.failureCallback } : {}),
      isPaused: s.isPaused,
      ...(s.lastScheduleTime ? { lastScheduleTime: s.lastScheduleTime } : {}),
      ...(s.nextScheduleTime ? { nextScheduleTime: s.nextScheduleTime } : {}),
    };
  }

  // ---------- HTTP ----------

  const server = http.createServer(function handleQStashRequest(req, res) {
    handle(req).then(
      (result) => {
        if (result === undefined) res.writeHead(200).end();
        else
          res
            .writeHead(result.status ?? 200, { "content-type": "application/json" })
            .end(JSON.stringify(result.body));
      },
      (error: unknown) => {
        const status = error instanceof QStashHttpError ? error.status : 500;
        const message = error instanceof Error ? error.message : String(error);
        if (!res.headersSent)
          res
            .writeHead(status, { "content-type": "application/json" })
            .end(JSON.stringify({ error: message }));
      },
    );
  });

  async function handle(req: http.IncomingMessage): Promise<{ status?: number; body: unknown } | undefined> {
    const auth = req.headers.authorization ?? "";
    if (auth !== `Bearer ${options.token}`)
      throw new QStashHttpError(401, "Unauthorized: invalid or missing QStash token");
    const rawUrl = req.url ?? "/";
    const queryIndex = rawUrl.indexOf("?");
    const pathname = queryIndex === -1 ? rawUrl : rawUrl.slice(0, queryIndex);
    const query = new URLSearchParams(queryIndex === -1 ? "" : rawUrl.slice(queryIndex + 1));
    const method = req.method ?? "GET";
    const headers = toHeaders(req.headers);
    const body = await readBody(req);

    // Destinations are URLs appended to the path as-is (query included), so match on the raw URL.
    const publishMatch = /^\/v2\/publish\/(.+)$/.exec(rawUrl);
    if (method === "POST" && publishMatch)
      return { body: publish({ destination: decodeDestination(publishMatch[1]!), headers, body }) };

    const enqueueMatch = /^\/v2\/enqueue\/([^/]+)\/(.+)$/.exec(rawUrl);
    if (method === "POST" && enqueueMatch) {
      return {
        body: publish({
          destination: decodeDestination(enqueueMatch[2]!),
          headers,
          body,
          queueName: decodeURIComponent(enqueueMatch[1]!),
        }),
      };
    }

    const scheduleCreate = /^\/v2\/schedules\/(https?:.+|[^/]+)$/.exec(rawUrl);
    if (method === "POST" && scheduleCreate)
      return { body: createSchedule(decodeDestination(scheduleCreate[1]!), headers, body) };

    if (method === "POST" && pathname === "/v2/batch") {
      const list = parseJson(body);
      if (!Array.isArray(list)) throw new QStashHttpError(400, "batch body must be an array of messages");
      return {
        body: list.map((item: unknown) => {
          if (
            !item ||
            typeof item !== "object" ||
            typeof (item as { destination?: unknown }).destination !== "string"
          ) {
            throw new QStashHttpError(400, "each batch message needs a destination");
          }
          const m = item as {
            destination: string;
            headers?: Record<string, string>;
            body?: string;
            queue?: string;
          };
          return publish({
            destination: m.destination,
            headers: new Headers(m.headers ?? {}),
            body: Buffer.from(m.body ?? ""),
            ...(m.queue ? { queueName: m.queue } : {}),
          });
        }),
      };
    }

    let match: RegExpExecArray | null;
    // Messages
    match = /^\/v2\/messages\/([^/]+)$/.exec(pathname);
    if (match) {
      const message = messages.get(match[1]!);
      if (!message) throw new QStashHttpError(404, `message ${match[1]} not found`);
      if (method === "GET") return { body: messageView(message) };
      if (method === "DELETE") {
        if (message.timer) clearTimeout(message.timer);
        record(message, "CANCELED");
        messages.delete(message.messageId);
        if (message.queueName) {
          const queue = queues.get(message.queueName);
          if (queue) queue.waiting = queue.waiting.filter((m) => m !== message);
        }
        return { status: 202, body: {} };
      }
    }
    // Topics (URL groups)
    match = /^\/v2\/topics\/([^/]+)\/endpoints$/.exec(pathname);
    if (match) {
      const name = decodeURIComponent(match[1]!);
      const payload = parseJson(body) as { endpoints?: { url?: string; name?: string }[] };
      if (!payload || !Array.isArray(payload.endpoints))
        throw new QStashHttpError(400, "body must be {endpoints: [{url}]}");
      if (method === "POST") {
        const topic = topics.get(name) ?? {
          name,
          endpoints: [],
          createdAt: Date.now(),
          updatedAt: Date.now(),
        };
        for (const endpoint of payload.endpoints) {
          if (!endpoint.url || !/^https?:\/\//.test(endpoint.url))
            throw new QStashHttpError(400, `invalid endpoint url: ${endpoint.url}`);
          if (!topic.endpoints.some((e) => e.url === endpoint.url)) {
            topic.endpoints.push({ url: endpoint.url, ...(endpoint.name ? { name: endpoint.name } : {}) });
          }
        }
        topic.updatedAt = Date.now();
        topics.set(name, topic);
        return undefined;
      }
      if (method === "DELETE") {
        const topic = topics.get(name);
        if (!topic) throw new QStashHttpError(404, `topic ${name} not found`);
        topic.endpoints = topic.endpoints.filter(
          (e) => !payload.endpoints!.some((d) => (d.url && d.url === e.url) || (d.name && d.name === e.name)),
        );
        topic.updatedAt = Date.now();
        return undefined;
      }
    }
    if (pathname === "/v2/topics" && method === "GET") return { body: [...topics.values()] };
    match = /^\/v2\/topics\/([^/]+)$/.exec(pathname);
    if (match) {
      const name = decodeURIComponent(match[1]!);
      const topic = topics.get(name);
      if (!topic) throw new QStashHttpError(404, `topic ${name} not found`);
      if (method === "GET") return { body: topic };
      if (method === "DELETE") {
        topics.delete(name);
        return undefined;
      }
    }
    // Queues
    if (pathname === "/v2/queues" && method === "POST") {
      const payload = parseJson(body) as { queueName?: string; parallelism?: number; paused?: boolean };
      if (!payload?.queueName) throw new QStashHttpError(400, "queueName is required");
      const queue = ensureQueue(payload.queueName);
      queue.parallelism = Math.max(1, payload.parallelism ?? queue.parallelism);
      if (payload.paused !== undefined) queue.paused = payload.paused;
      queue.updatedAt = Date.now();
      pumpQueue(queue);
      return undefined;
    }
    if (pathname === "/v2/queues" && method === "GET") return { body: [...queues.values()].map(queueView) };
    match = /^\/v2\/queues\/([^/]+)(?:\/(pause|resume))?$/.exec(pathname);
    if (match) {
      const queue = queues.get(decodeURIComponent(match[1]!));
      if (!queue) throw new QStashHttpError(404, `queue ${match[1]} not found`);
      if (match[2] && method === "POST") {
        queue.paused = match[2] === "pause";
        pumpQueue(queue);
        return undefined;
      }
      if (method === "GET") return { body: queueView(queue) };
      if (method === "DELETE") {
        queues.delete(queue.name);
        return undefined;
      }
    }
    // Schedules
    if (pathname === "/v2/schedules" && method === "GET")
      return { body: [...schedules.values()].map(scheduleView) };
    match = /^\/v2\/schedules\/([^/]+)\/(pause|resume)$/.exec(pathname);
    if (match && (method === "PATCH" || method === "POST")) {
      const entry = schedules.get(match[1]!);
      if (!entry) throw new QStashHttpError(404, `schedule ${match[1]} not found`);
      entry.isPaused = match[2] === "pause";
      return undefined;
    }
    match = /^\/v2\/schedules\/([^/]+)$/.exec(pathname);
    if (match) {
      const entry = schedules.get(match[1]!);
      if (!entry) throw new QStashHttpError(404, `schedule ${match[1]} not found`);
      if (method === "GET") return { body: scheduleView(entry) };
      if (method === "DELETE") {
        entry.job.stop();
        schedules.delete(entry.scheduleId);
        return undefined;
      }
    }
    // Dead-letter queue
    if (pathname === "/v2/dlq" && method === "GET") {
      const count = Math.min(Number(query.get("count") ?? 100) || 100, 100);
      const cursor = query.get("cursor");
      const all = [...dlq.values()].sort((a, b) => a.dlqId.localeCompare(b.dlqId));
      const start = cursor ? all.findIndex((m) => m.dlqId > cursor) : 0;
      const page = start === -1 ? [] : all.slice(start, start + count);
      const more = start !== -1 && start + count < all.length;
      return { body: { messages: page, ...(more ? { cursor: page.at(-1)!.dlqId } : {}) } };
    }
    match = /^\/v2\/dlq\/([^/]+)$/.exec(pathname);
    if (match) {
      const entry = dlq.get(match[1]!);
      if (!entry) throw new QStashHttpError(404, `dlq message ${match[1]} not found`);
      if (method === "GET") return { body: entry };
      if (method === "DELETE") {
        dlq.delete(entry.dlqId);
        return undefined;
      }
    }
    // Events (logs)
    if (pathname === "/v2/events" && method === "GET") {
      const messageIds = query.getAll("messageIds");
      const filtered = events.filter(
        (e) =>
          (messageIds.length === 0 || messageIds.includes(e.messageId)) &&
          (!query.get("state") || e.state === query.get("state")) &&
          (!query.get("url") || e.url === query.get("url")),
      );
      const count = Math.min(Number(query.get("count") ?? 100) || 100, 1000);
      return { body: { events: filtered.slice(-count).reverse() } };
    }
    // Signing keys
    if (pathname === "/v2/keys" && method === "GET")
      return { body: { current: keys.current, next: keys.next } };
    if (pathname === "/v2/keys/rotate" && method === "POST") {
      keys.current = keys.next;
      keys.next = `sig_${randomBytes(24).toString("base64url")}`;
      return { body: { current: keys.current, next: keys.next } };
    }
    throw new QStashHttpError(404, `no route for ${method} ${pathname}`);
  }

  function messageView(m: Message): Record<string, unknown> {
    return {
      messageId: m.messageId,
      url: m.url,
      ...(m.topicName ? { topicName: m.topicName } : {}),
      ...(m.queueName ? { queueName: m.queueName } : {}),
      ...(m.scheduleId ? { scheduleId: m.scheduleId } : {}),
      method: m.method,
      header: m.header,
      body: m.body.toString("utf8"),
      maxRetries: m.maxRetries,
      retried: m.retried,
      notBefore: m.notBefore,
      createdAt: m.createdAt,
      ...(m.callback ? { callback: m.callback } : {}),
      ...(m.failureCallback ? { failureCallback: m.failureCallback } : {}),
      state: m.state,
    };
  }

  function queueView(q: Queue): Record<string, unknown> {
    return {
      name: q.name,
      parallelism: q.parallelism,
      paused: q.paused,
      createdAt: q.createdAt,
      updatedAt: q.updatedAt,
      lag: q.waiting.length,
    };
  }

  const port = await listen(server, options.port, "the QStash emulator", "FLEETDECK_QSTASH_PORT");
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    token: options.token,
    signingKeys: () => ({ ...keys }),
    idle: async function waitForIdle(timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      while (messages.size > 0 || inFlight > 0) {
        if (Date.now() > until)
          throw new Error(`QStash emulator still has ${messages.size} message(s) after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop: async function stopQStashEmulator() {
      stopped = true;
      for (const m of messages.values()) if (m.timer) clearTimeout(m.timer);
      for (const s of schedules.values()) s.job.stop();
      await closeServer(server);
    },
  };
}

/** `Upstash-Forward-X: v` reaches the destination as `X: v`; so does Content-Type. */
function forwardedHeaders(headers: Headers): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  headers.forEach((value, name) => {
    const lower = name.toLowerCase();
    if (lower.startsWith("upstash-forward-")) {
      const target = name.slice("upstash-forward-".length);
      out[target] = [...(out[target] ?? []), value];
    } else if (lower === "content-type") {
      out["Content-Type"] = [...(out["Content-Type"] ?? []), value];
    }
  });
  return out;
}

function parseRetries(value: string): number {
  const retries = Number(value);
  if (!Number.isInteger(retries) || retries < 0)
    throw new QStashHttpError(400, `invalid Upstash-Retries: ${value}`);
  if (retries > MAX_RETRIES) throw new QStashHttpError(400, `Upstash-Retries cannot exceed ${MAX_RETRIES}`);
  return retries;
}

function computeNotBefore(headers: Headers): number {
  const notBefore = headers.get("upstash-not-before");
  if (notBefore !== null) {
    const seconds = Number(notBefore);
    if (!Number.isFinite(seconds) || seconds < 0)
      throw new QStashHttpError(400, `invalid Upstash-Not-Before: ${notBefore}`);
    return seconds * 1000;
  }
  const delay = headers.get("upstash-delay");
  if (delay !== null) return Date.now() + parseDuration(delay);
  return Date.now();
}

/** QStash durations: `10s`, `5m`, `2h`, `1d`; a bare number is seconds. */
export function parseDuration(value: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!match) throw new QStashHttpError(400, `invalid duration: ${value}`);
  const n = Number(match[1]);
  const unit = match[2] ?? "s";
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit]!;
  return n * factor;
}

function decodeDestination(raw: string): string {
  // The SDK appends destinations unencoded; tolerate percent-encoded ones too.
  return /^https?%3A/i.test(raw) ? decodeURIComponent(raw) : raw;
}

function toHeaders(raw: http.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new QStashHttpError(400, "invalid JSON body");
  }
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > 1024 * 1024) {
        reject(new QStashHttpError(413, "message body exceeds 1 MiB"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
