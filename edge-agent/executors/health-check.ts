import * as v from "valibot";
import { sampleHealth } from "../health.js";
import { defineExecutor } from "./types.js";

/** A health sample taken now. */
export const healthCheck = defineExecutor({
  action: "health-check",
  payload: v.strictObject({}),
  async run(_payload, ctx) {
    return sampleHealth(ctx.config, ctx.supervisor);
  },
});
