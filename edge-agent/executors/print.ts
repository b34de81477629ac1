import { existsSync } from "node:fs";
import * as v from "valibot";
import { runProcess } from "../run-process.js";
import { int, text } from "../validate.js";
import { CommandError, defineExecutor } from "./types.js";

/** Print a file with CUPS's `lp` (Linux and macOS); the result carries the job id. */
export const print = defineExecutor({
  action: "print",
  payload: v.strictObject({
    file: text(4096),
    copies: v.optional(int(1, 100), 1),
    printer: v.optional(text(128)),
    /** lp -o options, e.g. {"sides": "two-sided-long-edge", "media": "A4"}. */
    options: v.optional(
      v.record(
        v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only")),
        text(256, 0),
      ),
      {},
    ),
  }),
  async run(payload, ctx) {
    if (process.platform === "win32")
      throw new CommandError("UNSUPPORTED_PLATFORM", "print uses lp, which Windows lacks");
    if (!existsSync(payload.file)) throw new CommandError("FILE_NOT_FOUND", `no file at ${payload.file}`);
    const printer = payload.printer ?? ctx.config.printer;
    const argv = ["lp", "-n", String(payload.copies)];
    if (printer) argv.push("-d", printer);
    for (const [k, v] of Object.entries(payload.options)) argv.push("-o", `${k}=${v}`);
    argv.push("--", payload.file);
    const r = await runProcess(argv, {
      timeoutMs: ctx.timeoutMs,
      signal: ctx.signal,
      maxOutputBytes: 16_384,
    });
    if (r.exitCode !== 0)
      throw new CommandError("PRINT_FAILED", `lp exited ${r.exitCode}: ${r.stderr.trim()}`);
    // "request id is Office-123 (1 file(s))"
    const jobId = /request id is (\S+)/.exec(r.stdout)?.[1];
    if (!jobId) throw new CommandError("PRINT_FAILED", `lp gave no job id: ${r.stdout.trim()}`);
    return { jobId, printer: printer ?? null, copies: payload.copies };
  },
});
