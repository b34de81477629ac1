import type net from "node:net";

/** Thrown when a port the local cloud needs is taken; the message says what to do. */
export class PortBusyError extends Error {
  override readonly name = "PortBusyError";
  constructor(
    readonly port: number,
    readonly service: string,
    readonly setting: string,
  ) {
    super(
      `port ${port} for ${service} is already in use. Stop whatever listens there ` +
        `(\`ss -ltnp 'sport = :${port}'\` shows it), or choose another port with ${setting}=<port>.`,
    );
  }
}

/** Listen on `port` (0 for any free one) on 127.0.0.1 and resolve the bound port. */
export function listen(server: net.Server, port: number, service: string, setting: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      reject(error.code === "EADDRINUSE" ? new PortBusyError(port, service, setting) : error);
    };
    const onListening = () => {
      server.off("error", onError);
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : port);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, "127.0.0.1");
  });
}

export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    // Drop keep-alive and long-lived sockets (SSE, WebSockets) so close() returns promptly.
    (server as { closeAllConnections?: () => void }).closeAllConnections?.();
  });
}
