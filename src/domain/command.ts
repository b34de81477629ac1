import { z } from "zod";
import { COMMAND_STATES } from "../machines/command.js";
import { IdSchema, TimestampSchema } from "./common.js";
import { ResultSchema } from "./result.js";

export const CommandStatusSchema = z.enum(COMMAND_STATES);

/** Actions are names the agent's executor registry knows; the edge only checks their shape. */
export const ActionSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z][a-z0-9-]*$/, "actions are kebab-case names such as restart-process");

export const PrioritySchema = z.number().int().min(0).max(10);

export const CreateCommandSchema = z
  .strictObject({
    clientId: IdSchema,
    action: ActionSchema,
    payload: z.record(z.string(), z.unknown()).default({}),
    priority: PrioritySchema.default(5),
    /** Seconds the agent has from dispatch to result before the command is timed_out. */
    timeoutSec: z.number().int().min(1).max(86_400).default(300),
    /** Absolute deadline (epoch ms) for delivery; past it a pending command is expired. */
    deadline: TimestampSchema.optional(),
    /** Relative form of the deadline. */
    ttlSec: z
      .number()
      .int()
      .min(1)
      .max(30 * 86_400)
      .optional(),
    /** A newer queued command with the same key replaces an older queued one. */
    coalesceKey: z.string().min(1).max(128).optional(),
  })
  .refine((c) => c.deadline === undefined || c.ttlSec === undefined, {
    message: "give deadline or ttlSec, not both",
    path: ["deadline"],
  });
export type CreateCommand = z.infer<typeof CreateCommandSchema>;

export const CommandSchema = z.object({
  id: IdSchema,
  clientId: IdSchema,
  action: ActionSchema,
  payload: z.record(z.string(), z.unknown()),
  priority: PrioritySchema,
  status: CommandStatusSchema,
  attempt: z.number().int().min(1),
  timeoutSec: z.number().int(),
  deadline: TimestampSchema.nullable(),
  coalesceKey: z.string().nullable(),
  /** Per-client event sequence of the latest delivery; the SSE `id`. */
  seq: z.number().int().nullable(),
  result: ResultSchema.nullable(),
  createdAt: TimestampSchema,
  updatedAt: TimestampSchema,
});
export type Command = z.infer<typeof CommandSchema>;

export const CommandLogEntrySchema = z.object({
  commandId: IdSchema,
  seq: z.number().int().min(1),
  from: CommandStatusSchema.nullable(),
  to: CommandStatusSchema,
  cause: z.string().max(256),
  at: TimestampSchema,
});
export type CommandLogEntry = z.infer<typeof CommandLogEntrySchema>;
