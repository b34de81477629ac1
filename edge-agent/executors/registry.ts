/**
 * Every action the agent can run, by name. Running a command never throws: an unknown action,
 * a bad payload, a failure, a timeout or a cancellation all end in a result with a typed error.
 */

import * as v from "valibot";
import type { JournalResult } from "../journal.js";
import { problemsOf } from "../validate.js";
import { collectLogs } from "./collect-logs.js";
import { deviceCommand } from "./device-command.js";
import { exec } from "./exec.js";
import { healthCheck } from "./health-check.js";
import { print } from "./print.js";
import { restartProcess } from "./restart-process.js";
import { screenshot } from "./screenshot.js";
import { CommandError, type Executor, type ExecutorContext } from "./types.js";

export const EXECUTORS: ReadonlyMap<string, Executor> = new Map(
  [restartProcess, exec, healthCheck, print, screenshot, collectLogs, deviceCommand].map((e) => [
    e.action,
    e as Executor,
  ]),
);

export async function runCommand(
  action: string,
  payload: unknown,
  ctx: ExecutorContext,
): Promise<JournalResult> {
  const started = Date.now();
  const fail = (code: string, message: string, data?: unknown, retryable = false): JournalResult => ({
    success: false,
    error: { code, message, retryable },
    ...(data === undefined ? {} : { data }),
    durationMs: Date.now() - started,
  });
  const executor = EXECUTORS.get(action);
  if (!executor)
    return fail("UNKNOWN_ACTION", `this agent has no action ${action}`, { known: [...EXECUTORS.keys()] });
  const parsed = v.safeParse(executor.payload, payload ?? {});
  if (!parsed.success) {
    return fail("INVALID_PAYLOAD", "payload failed validation", { issues: problemsOf(parsed.issues) });
  }
  // One deadline for the whole command, whatever the executor does.
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new CommandError("TIMEOUT", `no result within ${ctx.timeoutMs} ms`)),
    ctx.timeoutMs,
  );
  const signal = AbortSignal.any([ctx.signal, deadline.signal]);
  try {
    const data = await Promise.race([
      executor.run(parsed.output, { ...ctx, signal }),
      new Promise<never>((_, reject) => {
        const onAbort = () =>
          reject(
            deadline.signal.aborted
              ? deadline.signal.reason
              : new CommandError("CANCELED", "the command was canceled", undefined, false),
          );
        if (signal.aborted) onAbort();
        else signal.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
    return { success: true, data, durationMs: Date.now() - started };
  } catch (error) {
    if (error instanceof CommandError) return fail(error.code, error.message, error.data, error.retryable);
    return fail("EXECUTOR_ERROR", error instanceof Error ? error.message : String(error));
  } finally {
    clearTimeout(timer);
  }
}
