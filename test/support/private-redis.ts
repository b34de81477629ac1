/** A redis-server of the test's own, so a fault test can stop and start Redis without disturbing the shared one. */
import { type ChildProcess, spawn } from "node:child_process";
import { waitForPort } from "../../bench/lib.js";

export interface PrivateRedis {
  url: string;
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createPrivateRedis(port: number): PrivateRedis {
  let child: ChildProcess | null = null;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async start() {
      child = spawn(
        "redis-server",
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        {
          stdio: "ignore",
        },
      );
      await waitForPort(port);
    },
    async stop() {
      if (!child) return;
      const c = child;
      child = null;
      await new Promise<void>((resolve) => {
        c.once("exit", () => resolve());
        c.kill("SIGKILL");
      });
    },
  };
}
