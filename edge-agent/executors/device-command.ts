import { z } from "zod";
import { CommandError, defineExecutor } from "./types.js";

/** Send a command to a bridged MQTT device and wait for its reply (matched by correlation id). */
export const deviceCommand = defineExecutor({
  action: "device-command",
  payload: z.strictObject({
    deviceId: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/),
    command: z.record(z.string(), z.unknown()),
    timeoutMs: z.number().int().min(100).max(300_000).default(10_000),
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
