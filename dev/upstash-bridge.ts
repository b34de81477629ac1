/**
 * The local stand-in for Upstash Redis: its REST protocol in front of a TCP Redis, so the
 * Worker and the agent use `@upstash/redis` unchanged.
 *
 *   POST /            body ["SET","k","v"]            -> {"result": ...}
 *   POST /pipeline    body [["SET","k","v"],["GET","k"]] -> [{"result"}|{"error"}, ...]
 *   POST /multi-exec  body as /pipeline, run in MULTI/EXEC -> [{"result"}|{"error"}, ...]
 *   GET  /set/k/v     a command in the path (curl-friendly)
 *
 * With `Upstash-Encoding: base64`, string replies are base64 (status "OK" stays plain), as
 * Upstash sends them. Errors: 401 for a missing or wrong token, 400 `{"error":"ERR ..."}`.
 */

import { createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import { Redis, ReplyError } from "ioredis";

function isReplyError(error: unknown): error is Error {
  return error instanceof ReplyError;
}

import { closeServer, listen } from "./ports.js";

export interface UpstashBridge {
  url: string;
  port: number;
  token: string;
  stop(): Promise<void>;
}

export interface UpstashBridgeOptions {
  port: number;
  token: string;
  redisUrl: string;
  /** Largest request body accepted; Upstash's own limit is far higher, this guards the dev box. */
  maxBodyBytes?: number;
}

/** Commands that would block the shared connection or change its state are refused. */
const REFUSED = new Set([
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "MONITOR",
  "SELECT",
  "QUIT",
  "RESET",
  "MULTI",
  "EXEC",
  "DISCARD",
  "WATCH",
  "BLPOP",
  "BRPOP",
  "BLMOVE",
  "BZPOPMIN",
  "BZPOPMAX",
  "BLMPOP",
  "BZMPOP",
  "BRPOPLPUSH",
  "WAIT",
  "SHUTDOWN",
]);

type Reply = null | number | string | Buffer | Reply[];
type CommandArgs = (string | number | boolean)[];

export class BridgeRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startUpstashBridge(options: UpstashBridgeOptions): Promise<UpstashBridge> {
  const redis = new Redis(options.redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  redis.on("error", () => {
    // Reconnection is ioredis's job; requests meanwhile answer 503 through their own errors.
  });
  await redis.connect().catch((error: unknown) => {
    redis.disconnect();
    throw new Error(
      `cannot reach Redis at ${options.redisUrl} (${error instanceof Error ? error.message : String(error)}). ` +
        "Start Redis (for example `redis-server --daemonize yes`) or set REDIS_URL to one that runs.",
    );
  });
  const expected = Buffer.from(`Bearer ${options.token}`);
  const maxBody = options.maxBodyBytes ?? 10 * 1024 * 1024;

  const server = http.createServer(function handleUpstashRequest(req, res) {
    handle(req).then(
      ({ status, body }) => send(res, status, body),
      (error: unknown) => {
        if (error instanceof BridgeRequestError) send(res, error.status, { error: error.message });
        else
          send(res, 503, {
            error: `ERR redis unavailable: ${error instanceof Error ? error.message : String(error)}`,
          });
      },
    );
  });

  async function handle(req: http.IncomingMessage): Promise<{ status: number; body: unknown }> {
    const auth = Buffer.from(req.headers.authorization ?? "");
    const tokenQuery = new URL(req.url ?? "/", "http://x").searchParams.get("_token");
    const authorised =
      (auth.length === expected.length && timingSafeEqual(auth, expected)) ||
      (tokenQuery !== null && tokenQuery === options.token);
    if (!authorised) throw new BridgeRequestError(401, "Unauthorized");
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    const path = new URL(req.url ?? "/", "http://x").pathname;

    if (req.method === "POST" && (path === "/pipeline" || path === "/multi-exec")) {
      const commands = parseCommandList(await readBody(req, maxBody));
      const results = path === "/pipeline" ? await runPipeline(commands) : await runTransaction(commands);
      return { status: 200, body: results.map((r) => encodeEntry(r, base64)) };
    }
    if (req.method === "POST" && (path === "/" || path === "")) {
      const command = parseCommand(parseJsonBody(await readBody(req, maxBody)));
      const reply = await run(command);
      return { status: 200, body: { result: encode(reply, base64) } };
    }
    if (req.method === "GET" || (req.method === "POST" && path.length > 1)) {
      const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
      if (parts.length === 0) throw new BridgeRequestError(400, "ERR empty command");
      if (req.method === "POST") {
        const body = await readBody(req, maxBody);
        if (body.length > 0) parts.push(body.toString("utf8"));
      }
      const reply = await run(parseCommand(parts));
      return { status: 200, body: { result: encode(reply, base64) } };
    }
    throw new BridgeRequestError(405, "ERR method not allowed");
  }

  async function run(command: CommandArgs): Promise<Reply> {
    const [name, ...args] = adapt(command);
    try {
      return (await redis.callBuffer(name!, ...args)) as Reply;
    } catch (error) {
      if (isReplyError(error)) throw new BridgeRequestError(400, error.message);
      throw error;
    }
  }

  async function runPipeline(commands: CommandArgs[]): Promise<Entry[]> {
    const pipeline = redis.pipeline();
    for (const command of commands) {
      const [name, ...args] = adapt(command);
      pipeline.callBuffer(name!, ...args);
    }
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(toEntry);
  }

  async function runTransaction(commands: CommandArgs[]): Promise<Entry[]> {
    const multi = redis.multi();
    for (const command of commands) {
      const [name, ...args] = adapt(command);
      multi.callBuffer(name!, ...args);
    }
    try {
      const replies = (await multi.exec()) ?? [];
      return replies.map(toEntry);
    } catch (error) {
      if (isReplyError(error)) throw new BridgeRequestError(400, error.message);
      throw error;
    }
  }

  const port = await listen(
    server,
    options.port,
    "the Upstash Redis REST bridge",
    "FLEETDECK_REDIS_REST_PORT",
  );
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    token: options.token,
    stop: async function stopUpstashBridge() {
      await closeServer(server);
      redis.disconnect();
    },
  };
}

/**
 * Upper-cased names reach Redis untouched: ioredis keys its reply transformers (HGETALL into
 * an object, and so on) by lower-case name, and REST clients expect Redis's raw replies.
 */
function adapt(command: CommandArgs): string[] {
  const [first, ...rest] = command.map(String);
  const name = first!.toUpperCase();
  if (name === "EVAL" || name === "EVAL_RO" || name === "SCRIPT")
    return [name, ...rest.map(stripUnsupportedScriptFlags)];
  if (name === "EVALSHA" || name === "EVALSHA_RO")
    return [name, scriptShaAliases.get(rest[0]!) ?? rest[0]!, ...rest.slice(1)];
  return [name, ...rest];
}

/**
 * Upstash accepts the `allow-key-locking` script flag (a scheduling hint @upstash/ratelimit
 * sets); Redis 7.0 rejects the whole script for it. The bridge drops the flag and remembers
 * the rewritten script's SHA under the original one so EVALSHA keeps working.
 */
const scriptShaAliases = new Map<string, string>();
function stripUnsupportedScriptFlags(arg: string): string {
  if (!arg.startsWith("#!lua") || !arg.includes("allow-key-locking")) return arg;
  const [shebang, ...body] = arg.split("\n");
  const flags =
    /flags=(\S*)/
      .exec(shebang!)?.[1]
      ?.split(",")
      .filter((f) => f && f !== "allow-key-locking") ?? [];
  const rewritten = [flags.length > 0 ? `#!lua flags=${flags.join(",")}` : "#!lua", ...body].join("\n");
  scriptShaAliases.set(sha1(arg), sha1(rewritten));
  return rewritten;
}

function sha1(text: string): string {
  return createHash("sha1").update(text).digest("hex");
}

type Entry = { result: Reply } | { error: string };

function toEntry([error, reply]: [Error | null, unknown]): Entry {
  if (error) return { error: error.message };
  return { result: reply as Reply };
}

function encodeEntry(entry: Entry, base64: boolean): unknown {
  return "error" in entry ? entry : { result: encode(entry.result, base64) };
}

function encode(reply: Reply, base64: boolean): unknown {
  if (reply === null || typeof reply === "number") return reply;
  if (Array.isArray(reply)) return reply.map((r) => encode(r, base64));
  const buffer = Buffer.isBuffer(reply) ? reply : Buffer.from(reply);
  if (!base64) return buffer.toString("utf8");
  // Status replies come back from callBuffer as buffers too; Upstash leaves "OK" plain.
  if (buffer.length === 2 && buffer.toString() === "OK") return "OK";
  return buffer.toString("base64");
}

function parseCommand(value: unknown): CommandArgs {
  if (!Array.isArray(value) || value.length === 0) {
    throw new BridgeRequestError(400, "ERR failed to parse command: expected a non-empty JSON array");
  }
  for (const part of value) {
    if (typeof part !== "string" && typeof part !== "number" && typeof part !== "boolean") {
      throw new BridgeRequestError(400, "ERR failed to parse command: arguments must be strings or numbers");
    }
  }
  const name = String(value[0]).toUpperCase();
  if (REFUSED.has(name)) throw new BridgeRequestError(400, `ERR command ${name} is not supported over REST`);
  return value as CommandArgs;
}

function parseCommandList(body: Buffer): CommandArgs[] {
  const value = parseJsonBody(body);
  if (!Array.isArray(value) || value.length === 0) {
    throw new BridgeRequestError(400, "ERR failed to parse pipeline request: expected an array of commands");
  }
  return value.map(parseCommand);
}

function parseJsonBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new BridgeRequestError(400, "ERR failed to parse command: invalid JSON");
  }
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new BridgeRequestError(413, "ERR max request size exceeded"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}
