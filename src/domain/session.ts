import { z } from "zod";
import { SESSION_STATES } from "../machines/session.js";
import { IdSchema, TimestampSchema } from "./common.js";

export const SessionStatusSchema = z.enum(SESSION_STATES);

export const CreateSessionSchema = z.strictObject({
  clientId: IdSchema,
  name: z.string().min(1).max(128),
  spec: z.record(z.string(), z.unknown()).default({}),
});

export const SessionTransitionSchema = z.strictObject({
  to: SessionStatusSchema,
  exitCode: z.number().int().optional(),
  reason: z.string().max(1024).optional(),
});

export const SessionSchema = z.object({
  id: IdSchema,
  clientId: IdSchema,
  name: z.string(),
  spec: z.record(z.string(), z.unknown()),
  status: SessionStatusSchema,
  exitCode: z.number().int().nullable(),
  startedAt: TimestampSchema.nullable(),
  endedAt: TimestampSchema.nullable(),
  createdAt: TimestampSchema,
  updatedAt: TimestampSchema,
});
export type Session = z.infer<typeof SessionSchema>;

export const SessionEventSchema = z.object({
  seq: z.number().int(),
  from: SessionStatusSchema.nullable(),
  to: SessionStatusSchema,
  exitCode: z.number().int().nullable(),
  reason: z.string().nullable(),
  at: TimestampSchema,
});
export type SessionEvent = z.infer<typeof SessionEventSchema>;
