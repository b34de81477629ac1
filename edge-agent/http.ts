/**
 * The agent's HTTP client, on node:http(s) rather than fetch: fetch (undici) costs an idle agent
 * about 12 MB more resident memory, and these are the agent's only HTTP needs (JSON requests
 * with a timeout, and one long-lived SSE response). Connections to the same host are kept alive.
 */
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { http, https } from "./builtins.js";

// node:https (TLS) is loaded on the first https:// request: about 4 MB resident in an agent that
// only talks plain HTTP (a loopback edge, or a TLS-terminating proxy beside it).
const agents: { http: import("node:http").Agent; https?: import("node:https").Agent } = {
  http: new http.Agent({ keepAlive: true, maxSockets: 8 }),
};

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Opens a request and resolves with the response head; the body is the caller's to read. */
export function open(
  url: string,
  options: Omit<RequestOptions, "timeoutMs"> & { timeoutMs?: number },
): Promise<IncomingMessage> {
  const target = new URL(url);
  const secure = target.protocol === "https:";
  return new Promise((resolve, reject) => {
    if (secure) agents.https ??= new (https().Agent)({ keepAlive: true, maxSockets: 8 });
    const agent = secure ? agents.https : agents.http;
    const req = (secure ? https() : http).request(
      target,
      {
        method: options.method ?? "GET",
        headers: {
          ...options.headers,
          ...(options.body === undefined
            ? {}
            : { "content-length": String(Buffer.byteLength(options.body)) }),
        },
        agent,
        ...(options.signal ? { signal: options.signal } : {}),
      },
      resolve,
    );
    req.on("error", reject);
    if (options.timeoutMs) {
      req.setTimeout(options.timeoutMs, () =>
        req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)),
      );
    }
    req.end(options.body);
  });
}

/** A whole request and response, the body as text; network errors and timeouts reject. */
export async function request(url: string, options: RequestOptions): Promise<HttpAnswer> {
  const res = await open(url, options);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return { status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") };
}
