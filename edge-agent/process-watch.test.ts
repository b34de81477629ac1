import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AgentConfigSchema } from "./config.js";
import { ProcessSupervisor } from "./process-supervisor.js";
import { ProcessWatch, type WatchedProcess } from "./process-watch.js";
import { parseOrThrow } from "./validate.js";

const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-watch-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A program with a name of its own, so the watch sees only ours. */
function uniqueProgram(): { name: string; file: string } {
  const name = `fdw${Math.random().toString(36).slice(2, 9)}`;
  const file = path.join(dir, name);
  copyFileSync("/bin/sleep", file);
  return { name, file };
}

describe("process watch (MONITORED_PROCESS_NAME)", () => {
  it("reports a watched process starting and stopping", async () => {
    const { name, file } = uniqueProgram();
    const watch = new ProcessWatch([name], 100);
    const changes: WatchedProcess[] = [];
    watch.on("change", (p) => changes.push(p));
    watch.start();
    await new Promise((r) => setTimeout(r, 250));
    expect(watch.current()).toEqual([{ name, running: false, pid: null }]);
    const child = spawn(file, ["30"], { stdio: "ignore" });
    await expect.poll(() => changes.at(-1)?.running, { timeout: 3000 }).toBe(true);
    expect(changes.at(-1)!.pid).toBe(child.pid);
    child.kill("SIGKILL");
    await expect.poll(() => changes.at(-1)?.running, { timeout: 3000 }).toBe(false);
    watch.stop();
  });
});

describe("process supervisor", () => {
  it("restarts a supervised process that dies, with backoff, and reports each state", async () => {
    const { file } = uniqueProgram();
    const config = parseOrThrow(AgentConfigSchema, {
      serverUrl: "http://127.0.0.1:9",
      clientKey: `sk_cl_${"0".repeat(26)}_${"k".repeat(43)}`,
      dataDir: dir,
      processes: { worker: { command: [file, "30"], restartOnExit: true } },
    });
    const supervisor = new ProcessSupervisor(config);
    const states: string[] = [];
    supervisor.on("change", (e) => states.push(e.state));
    supervisor.startAll();
    await expect.poll(() => supervisor.pid("worker"), { timeout: 2000 }).not.toBeNull();
    const first = supervisor.pid("worker")!;
    process.kill(first, "SIGKILL");
    await expect
      .poll(() => supervisor.pid("worker") !== first && states.includes("restarted"), { timeout: 5000 })
      .toBe(true);
    expect(states.slice(0, 3)).toEqual(["started", "stopped", "restarted"]);
    await supervisor.stopAll();
  });
});
