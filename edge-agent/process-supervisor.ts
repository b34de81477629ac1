/**
 * Processes named in the config: either systemd units (restarted with systemctl) or commands
 * the agent starts and supervises itself. `restart()` reports the old and new pid.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { AgentConfig } from "./config.js";
import { CommandError } from "./executors/types.js";
import { runProcess } from "./run-process.js";

export type ProcessEvent = {
  name: string;
  state: "started" | "stopped" | "restarted";
  pid: number | null;
  exitCode?: number | null;
};

interface Supervised {
  child: ChildProcess | null;
  restarts: number;
  stopping: boolean;
  timer: NodeJS.Timeout | null;
}

export class ProcessSupervisor extends EventEmitter<{ change: [ProcessEvent] }> {
  private readonly supervised = new Map<string, Supervised>();

  constructor(private readonly config: AgentConfig) {
    super();
  }

  /**
   * Start every supervised command (systemd units are systemd's to run). A copy left running by
   * an agent that was killed (its pid file says so) is stopped first, so there is never two.
   */
  startAll(): void {
    mkdirSync(this.pidDir(), { recursive: true });
    for (const [name, spec] of Object.entries(this.config.processes)) {
      if (!spec.command) continue;
      this.stopLeftover(name);
      this.spawn(name);
    }
  }

  private pidDir(): string {
    return path.join(this.config.dataDir, "processes");
  }

  private stopLeftover(name: string): void {
    const file = path.join(this.pidDir(), `${encodeURIComponent(name)}.pid`);
    let pid: number;
    try {
      pid = Number(readFileSync(file, "utf8").trim());
    } catch {
      return;
    }
    if (Number.isInteger(pid) && pid > 1) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // Already gone.
      }
    }
    rmSync(file, { force: true });
  }

  pid(name: string): number | null {
    return this.supervised.get(name)?.child?.pid ?? null;
  }

  async restart(
    name: string,
    signal: AbortSignal,
    timeoutMs: number,
  ): Promise<{ oldPid: number | null; newPid: number | null }> {
    const spec = this.config.processes[name];
    if (!spec) {
      throw new CommandError("UNKNOWN_PROCESS", `no process named ${name} in the agent's config`, {
        known: Object.keys(this.config.processes),
      });
    }
    if (spec.systemdUnit) {
      const oldPid = await this.systemdPid(spec.systemdUnit, signal);
      const r = await runProcess(["systemctl", "restart", spec.systemdUnit], {
        timeoutMs,
        signal,
        maxOutputBytes: 16_384,
      });
      if (r.exitCode !== 0) {
        throw new CommandError(
          "RESTART_FAILED",
          `systemctl restart ${spec.systemdUnit} exited ${r.exitCode}`,
          { stderr: r.stderr },
        );
      }
      const newPid = await this.systemdPid(spec.systemdUnit, signal);
      this.emit("change", { name, state: "restarted", pid: newPid });
      return { oldPid, newPid };
    }
    const entry = this.supervised.get(name);
    const oldPid = entry?.child?.pid ?? null;
    if (entry?.child && entry.child.exitCode === null) {
      entry.stopping = true;
      await stopChild(entry.child, 5000);
      entry.stopping = false;
    }
    const child = this.spawn(name, true);
    return { oldPid, newPid: child.pid ?? null };
  }

  async stopAll(): Promise<void> {
    await Promise.all(
      [...this.supervised.values()].map(async (s) => {
        s.stopping = true;
        if (s.timer) clearTimeout(s.timer);
        if (s.child && s.child.exitCode === null) await stopChild(s.child, 5000);
      }),
    );
  }

  private spawn(name: string, restarted = false): ChildProcess {
    const spec = this.config.processes[name]!;
    const [file, ...args] = spec.command!;
    const child = spawn(file!, args, {
      cwd: spec.cwd,
      env: spec.env ? { ...process.env, ...spec.env } : process.env,
      stdio: "ignore",
    });
    const entry = this.supervised.get(name) ?? { child: null, restarts: 0, stopping: false, timer: null };
    entry.child = child;
    this.supervised.set(name, entry);
    const pidFile = path.join(this.pidDir(), `${encodeURIComponent(name)}.pid`);
    if (child.pid !== undefined) {
      mkdirSync(this.pidDir(), { recursive: true });
      writeFileSync(pidFile, String(child.pid));
    }
    child.once("spawn", () =>
      this.emit("change", { name, state: restarted ? "restarted" : "started", pid: child.pid ?? null }),
    );
    child.once("error", () => {});
    child.once("exit", (exitCode) => {
      if (entry.child !== child) return;
      rmSync(pidFile, { force: true });
      this.emit("change", { name, state: "stopped", pid: child.pid ?? null, exitCode });
      if (spec.restartOnExit && !entry.stopping) {
        // Back off 1 s, 2 s, 4 s ... up to a minute between restarts of a crashing process.
        const delay = Math.min(60_000, 1000 * 2 ** Math.min(entry.restarts, 6));
        entry.restarts++;
        entry.timer = setTimeout(() => this.spawn(name, true), delay);
      }
    });
    return child;
  }

  private async systemdPid(unit: string, signal: AbortSignal): Promise<number | null> {
    const r = await runProcess(["systemctl", "show", "-p", "MainPID", "--value", unit], {
      timeoutMs: 10_000,
      signal,
      maxOutputBytes: 1024,
    });
    const pid = Number(r.stdout.trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  }
}

function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}
