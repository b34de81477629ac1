import * as v from "valibot";
import { int } from "../validate.js";
import { CommandError, defineExecutor } from "./types.js";

/** Send a command to a bridged MQTT device and wait for its reply (matched by correlation id). */
export const deviceCommand = defineExecutor({
  action: "device-command",
  payload: v.strictObject({
    deviceId: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{1,128}$/, "letters, digits and _.- only")),
    command: v.record(v.string(), v.unknown()),
    timeoutMs: v.optional(int(100, 300_000), 10_000),
  }),
  async run(payload, ctx) {
    if (!ctx.devices)
      throw new CommandError("MQTT_UNAVAILABLE", "the agent has no MQTT connection (set MQTT_URL)");
    const reply = await ctx.devices.request(
      payload.deviceId,
      payload.command,
      Math.min(payload.timeoutMs, ctx.timeoutMs),
      ctx.signal,
    );
    return { deviceId: payload.deviceId, reply };
  },
});
