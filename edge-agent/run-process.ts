/**
 * Runs a program with a timeout, cancellation and capped output. argv only: no shell unless
 * the caller asks for one explicitly.
 */
import { spawn } from "node:child_process";
import { CommandError } from "./executors/types.js";

export interface ProcessOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when output beyond the cap was dropped. */
  truncated: boolean;
  durationMs: number;
}

export interface RunOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  maxOutputBytes: number;
  cwd?: string;
  env?: Record<string, string>;
  shell?: boolean;
  input?: Buffer;
  /** Keep stdout as raw bytes (screenshots); capped the same way. */
  binary?: boolean;
}

export async function runProcess(
  argv: string[],
  options: RunOptions,
): Promise<ProcessOutcome & { stdoutBytes: Buffer }> {
  const [file, ...args] = options.shell ? ["/bin/sh", "-c", argv.join(" ")] : argv;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(file!, args, {
        cwd: options.cwd,
        env: options.env ? { ...process.env, ...options.env } : process.env,
        stdio: [options.input ? "pipe" : "ignore", "pipe", "pipe"],
        detached: true,
      });
    } catch (error) {
      reject(new CommandError("SPAWN_FAILED", `cannot start ${file}: ${(error as Error).message}`));
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let truncated = false;
    const cap = options.maxOutputBytes;
    child.stdout?.on("data", (chunk: Buffer) => {
      if (outBytes >= cap) {
        truncated = true;
        return;
      }
      const room = cap - outBytes;
      if (chunk.length > room) truncated = true;
      out.push(chunk.subarray(0, room));
      outBytes += Math.min(room, chunk.length);
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      if (errBytes >= cap) {
        truncated = true;
        return;
      }
      const room = cap - errBytes;
      if (chunk.length > room) truncated = true;
      err.push(chunk.subarray(0, room));
      errBytes += Math.min(room, chunk.length);
    });
    if (options.input) child.stdin?.end(options.input);

    let stopReason: "timeout" | "canceled" | null = null;
    const kill = (reason: "timeout" | "canceled") => {
      if (stopReason) return;
      stopReason = reason;
      // The whole process group: a shell's children go too.
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGTERM");
      } catch {}
      setTimeout(() => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {}
      }, 2000).unref();
    };
    const timer = setTimeout(() => kill("timeout"), options.timeoutMs);
    const onAbort = () => kill("canceled");
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();

    child.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      reject(
        new CommandError(
          error.code === "ENOENT" ? "PROGRAM_NOT_FOUND" : "SPAWN_FAILED",
          error.code === "ENOENT"
            ? `${file} is not installed or not on PATH`
            : `cannot start ${file}: ${error.message}`,
        ),
      );
    });
    child.once("close", (exitCode, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      const stdoutBytes = Buffer.concat(out);
      const outcome = {
        exitCode,
        signal,
        stdout: options.binary ? "" : stdoutBytes.toString("utf8"),
        stdoutBytes,
        stderr: Buffer.concat(err).toString("utf8"),
        truncated,
        durationMs: Date.now() - started,
      };
      if (stopReason === "timeout") {
        reject(
          new CommandError("TIMEOUT", `${file} did not finish within ${options.timeoutMs} ms`, {
            stderr: outcome.stderr,
          }),
        );
      } else if (stopReason === "canceled") {
        reject(new CommandError("CANCELED", `${file} was stopped: the command was canceled`));
      } else {
        resolve(outcome);
      }
    });
  });
}
