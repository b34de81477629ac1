/** A Mosquitto of the test's own, so a test can restart the broker without disturbing the shared one. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { waitForPort } from "../../bench/lib.js";

export interface PrivateMosquitto {
  url: string;
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

export function createPrivateMosquitto(port: number): PrivateMosquitto {
  const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-mosquitto-"));
  const conf = path.join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${dir}/\n`,
  );
  let child: ChildProcess | null = null;
  const stop = async () => {
    if (!child) return;
    const c = child;
    child = null;
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.kill("SIGTERM");
    });
  };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    async start() {
      child = spawn("mosquitto", ["-c", conf], { stdio: "ignore" });
      await waitForPort(port);
    },
    stop,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
