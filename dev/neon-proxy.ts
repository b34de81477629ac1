/**
 * The local stand-in for Neon's WebSocket endpoint: the Worker's `@neondatabase/serverless`
 * Pool speaks the Postgres wire protocol inside WebSocket frames; this relays each socket to
 * a TCP Postgres. Only the configured targets are relayed, so it is no open proxy.
 */
import http from "node:http";
import net from "node:net";
import { WebSocketServer } from "ws";
import { closeServer, listen } from "./ports.js";

export interface NeonProxy {
  port: number;
  /** The value for the Worker's NEON_WS_PROXY setting. */
  wsProxy: string;
  connections(): number;
  stop(): Promise<void>;
}

export interface NeonProxyOptions {
  port: number;
  /** host:port pairs the proxy may reach, e.g. ["127.0.0.1:5432"]. */
  allowedTargets: string[];
}

export async function startNeonProxy(options: NeonProxyOptions): Promise<NeonProxy> {
  const allowed = new Set(options.allowedTargets.map(normaliseTarget));
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" }).end("WebSocket upgrade required\n");
  });
  const wss = new WebSocketServer({ server, path: "/v1" });
  let open = 0;

  wss.on("connection", function relay(ws, req) {
    const target = new URL(req.url ?? "/", "http://localhost").searchParams.get("address") ?? "";
    if (!allowed.has(normaliseTarget(target))) {
      ws.close(1008, `target ${target || "(none)"} is not allowed`);
      return;
    }
    const [host, portText] = splitTarget(target);
    const tcp = net.connect({ host, port: Number(portText) });
    tcp.setNoDelay(true);
    open++;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      open--;
      tcp.destroy();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close();
    };
    // Frames that arrive before the TCP connection is up are queued by the socket.
    ws.on("message", (data: Buffer | ArrayBuffer | Buffer[]) => {
      tcp.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer));
    });
    tcp.on("data", (chunk) => ws.send(chunk));
    tcp.on("error", close);
    tcp.on("close", close);
    ws.on("close", close);
    ws.on("error", close);
  });

  const port = await listen(server, options.port, "the Neon WebSocket proxy", "FLEETDECK_NEON_PROXY_PORT");
  return {
    port,
    wsProxy: `127.0.0.1:${port}`,
    connections: () => open,
    stop: async function stopNeonProxy() {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await closeServer(server);
    },
  };
}

function splitTarget(target: string): [string, string] {
  const i = target.lastIndexOf(":");
  return [target.slice(0, i), target.slice(i + 1)];
}

function normaliseTarget(target: string): string {
  const [host, port] = splitTarget(target);
  return `${host === "localhost" ? "127.0.0.1" : host}:${port}`;
}
