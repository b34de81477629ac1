/**
 * Watches processes by name (MONITORED_PROCESS_NAME, or a list) and reports when one starts
 * or stops. Linux reads /proc; elsewhere `ps` answers.
 */
import { execFile } from "node:child_process";
import { EventEmitter } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { util } from "./builtins.js";

const execFileAsync = util.promisify(execFile);

export interface WatchedProcess {
  name: string;
  running: boolean;
  pid: number | null;
}

export async function findProcesses(names: string[]): Promise<WatchedProcess[]> {
  const found = new Map<string, number>();
  if (process.platform === "linux") {
    // Synchronous reads of these tiny kernel files cost a tenth of async ones (no thread-pool
    // round trips); yielding every 200 processes keeps the event loop responsive.
    const entries = readdirSync("/proc");
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (i > 0 && i % 200 === 0) await new Promise((r) => setImmediate(r));
      if (!/^\d+$/.test(entry)) continue;
      try {
        const comm = readFileSync(`/proc/${entry}/comm`, "utf8").trim();
        if (names.includes(comm) && !found.has(comm)) found.set(comm, Number(entry));
      } catch {
        // Gone between readdir and read: expected.
      }
    }
  } else {
    const { stdout } = await execFileAsync("ps", ["-axo", "pid=,comm="]);
    for (const line of stdout.split("\n")) {
      const m = /^\s*(\d+)\s+(.+)$/.exec(line);
      if (!m) continue;
      const base = m[2]!.split("/").at(-1)!;
      if (names.includes(base) && !found.has(base)) found.set(base, Number(m[1]));
    }
  }
  return names.map((name) => ({ name, running: found.has(name), pid: found.get(name) ?? null }));
}

export class ProcessWatch extends EventEmitter<{ change: [WatchedProcess] }> {
  private last = new Map<string, WatchedProcess>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly names: string[],
    private readonly intervalMs: number,
  ) {
    super();
  }

  current(): WatchedProcess[] {
    return [...this.last.values()];
  }

  start(): void {
    if (this.names.length === 0) return;
    const tick = async () => {
      try {
        for (const p of await findProcesses(this.names)) {
          const before = this.last.get(p.name);
          this.last.set(p.name, p);
          if (before && (before.running !== p.running || before.pid !== p.pid)) this.emit("change", p);
        }
      } catch {
        // A failed scan is retried on the next tick.
      }
    };
    void tick();
    this.timer = setInterval(tick, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
