import * as v from "valibot";
import { text } from "../validate.js";
import { defineExecutor } from "./types.js";

/** Restart a configured process (systemd unit or supervised command); reports old and new pid. */
export const restartProcess = defineExecutor({
  action: "restart-process",
  payload: v.strictObject({ name: text(128) }),
  async run(payload, ctx) {
    const { oldPid, newPid } = await ctx.supervisor.restart(payload.name, ctx.signal, ctx.timeoutMs);
    return { name: payload.name, oldPid, newPid };
  },
});
