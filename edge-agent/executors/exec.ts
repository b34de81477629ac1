import * as v from "valibot";
import { runProcess } from "../run-process.js";
import { text } from "../validate.js";
import { CommandError, defineExecutor } from "./types.js";

/** Run a named script from the config's allow-list; nothing else can be run this way. */
export const exec = defineExecutor({
  action: "exec",
  payload: v.strictObject({
    script: text(128),
    args: v.optional(v.pipe(v.array(text(4096, 0)), v.maxLength(64, "expected at most 64 arguments"))),
  }),
  async run(payload, ctx) {
    const script = ctx.config.scripts[payload.script];
    if (!script) {
      throw new CommandError(
        "SCRIPT_NOT_ALLOWED",
        `no script named ${payload.script} in the agent's allow-list`,
        {
          allowed: Object.keys(ctx.config.scripts),
        },
      );
    }
    if (payload.args && payload.args.length > 0 && !script.allowArgs) {
      throw new CommandError("ARGS_NOT_ALLOWED", `script ${payload.script} takes no arguments from commands`);
    }
    const timeoutMs = Math.min(ctx.timeoutMs, (script.timeoutSec ?? Number.POSITIVE_INFINITY) * 1000);
    const outcome = await runProcess([...script.argv, ...(payload.args ?? [])], {
      timeoutMs,
      signal: ctx.signal,
      maxOutputBytes: ctx.maxOutputBytes,
      shell: script.shell,
      ...(script.cwd ? { cwd: script.cwd } : {}),
    });
    const data = {
      exitCode: outcome.exitCode,
      stdout: outcome.stdout,
      stderr: outcome.stderr,
      truncated: outcome.truncated,
      durationMs: outcome.durationMs,
    };
    if (outcome.exitCode !== 0)
      throw new CommandError(
        "EXIT_NONZERO",
        `script ${payload.script} exited ${outcome.exitCode ?? outcome.signal}`,
        data,
      );
    return data;
  },
});
