import { open, stat } from "node:fs/promises";
import * as v from "valibot";
import { int, text } from "../validate.js";
import { CommandError, defineExecutor } from "./types.js";

/** The tail of a log file named in the config (never an arbitrary path). */
export const collectLogs = defineExecutor({
  action: "collect-logs",
  payload: v.strictObject({
    file: text(128),
    lines: v.optional(int(1, 100_000), 200),
  }),
  async run(payload, ctx) {
    const file = ctx.config.logFiles[payload.file];
    if (!file) {
      throw new CommandError("LOG_NOT_ALLOWED", `no log file named ${payload.file} in the agent's config`, {
        allowed: Object.keys(ctx.config.logFiles),
      });
    }
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch {
      throw new CommandError("FILE_NOT_FOUND", `log file ${file} does not exist`);
    }
    // Read backwards in chunks until enough lines, or the output cap, is reached.
    const handle = await open(file, "r");
    try {
      const cap = ctx.maxOutputBytes;
      let position = size;
      let text = "";
      while (position > 0 && text.split("\n").length <= payload.lines + 1 && text.length < cap) {
        const length = Math.min(64 * 1024, position);
        position -= length;
        const buf = Buffer.alloc(length);
        await handle.read(buf, 0, length, position);
        text = buf.toString("utf8") + text;
      }
      let lines = text.split("\n");
      if (lines.at(-1) === "") lines.pop();
      lines = lines.slice(-payload.lines);
      let out = lines.join("\n");
      const truncated = Buffer.byteLength(out) > cap;
      if (truncated) out = Buffer.from(out).subarray(-cap).toString("utf8");
      return { file: payload.file, lines: lines.length, text: out, truncated, sizeBytes: size };
    } finally {
      await handle.close();
    }
  },
});
