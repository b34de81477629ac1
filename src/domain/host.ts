import { z } from "zod";
import { IdSchema, TagsSchema, TimestampSchema } from "./common.js";

export const HOST_STATES = ["online", "suspect", "offline"] as const;
export const HostStatusSchema = z.enum(HOST_STATES);
export type HostStatus = z.infer<typeof HostStatusSchema>;

/** The health summary an agent sends with each heartbeat. */
export const HeartbeatSchema = z.strictObject({
  agentVersion: z.string().max(64),
  hostname: z.string().max(255).optional(),
  uptimeSec: z.number().nonnegative().optional(),
  load: z.array(z.number()).max(3).optional(),
  cpuPercent: z.number().min(0).max(100).optional(),
  memoryPercent: z.number().min(0).max(100).optional(),
  diskPercent: z.number().min(0).max(100).optional(),
  processes: z
    .array(
      z.strictObject({ name: z.string().max(128), running: z.boolean(), pid: z.number().int().nullable() }),
    )
    .max(64)
    .optional(),
  queueDepth: z.number().int().nonnegative().optional(),
  spoolDepth: z.number().int().nonnegative().optional(),
  runningCommands: z.number().int().nonnegative().optional(),
  /** Presence of the MQTT devices behind this host (from their status topics and last wills). */
  devices: z
    .array(z.strictObject({ id: z.string().max(128), status: z.string().max(32), at: z.number().int() }))
    .max(256)
    .optional(),
  undeliveredResults: z.number().int().nonnegative().optional(),
  sentAt: TimestampSchema.optional(),
});
export type Heartbeat = z.infer<typeof HeartbeatSchema>;

export const HostSchema = z.object({
  clientId: IdSchema,
  status: HostStatusSchema,
  lastSeenAt: TimestampSchema.nullable(),
  agentVersion: z.string().nullable(),
  tags: TagsSchema,
  staleThresholdSec: z.number().int().min(1).max(3600),
  lastHeartbeat: HeartbeatSchema.nullable(),
});
export type Host = z.infer<typeof HostSchema>;
