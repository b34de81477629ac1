import * as v from "valibot";
import { runProcess } from "../run-process.js";
import { int } from "../validate.js";
import { CommandError, defineExecutor } from "./types.js";

/** Capture the X11 screen with ImageMagick's `import`; PNG, base64, under a size cap. */
export const screenshot = defineExecutor({
  action: "screenshot",
  payload: v.strictObject({
    display: v.optional(v.pipe(v.string(), v.regex(/^:\d+(\.\d+)?$/, "expected an X display like :0"))),
    /** Scale down, e.g. 50 for half size, to stay under the cap. */
    scalePercent: v.optional(int(5, 100), 100),
  }),
  async run(payload, ctx) {
    const display = payload.display ?? ctx.config.display ?? process.env.DISPLAY;
    if (!display)
      throw new CommandError("NO_DISPLAY", "no X display: set display in the agent's config or DISPLAY");
    const argv = ["import", "-display", display, "-window", "root"];
    if (payload.scalePercent < 100) argv.push("-resize", `${payload.scalePercent}%`);
    argv.push("png:-");
    const cap = ctx.config.screenshotMaxBytes;
    const r = await runProcess(argv, {
      timeoutMs: ctx.timeoutMs,
      signal: ctx.signal,
      maxOutputBytes: cap + 1,
      binary: true,
    });
    if (r.exitCode !== 0)
      throw new CommandError("CAPTURE_FAILED", `import exited ${r.exitCode}: ${r.stderr.trim()}`);
    if (r.truncated || r.stdoutBytes.length > cap) {
      throw new CommandError(
        "TOO_LARGE",
        `the screenshot is over the ${cap}-byte cap; ask for a smaller scalePercent`,
        {
          capBytes: cap,
        },
      );
    }
    const png = r.stdoutBytes;
    if (png.subarray(0, 8).toString("hex") !== "89504e470d0a1a0a")
      throw new CommandError("CAPTURE_FAILED", "import did not produce a PNG");
    return {
      format: "png",
      bytes: png.length,
      width: png.readUInt32BE(16),
      height: png.readUInt32BE(20),
      base64: png.toString("base64"),
    };
  },
});
