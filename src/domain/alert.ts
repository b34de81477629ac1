import { z } from "zod";
import { IdSchema, TimestampSchema } from "./common.js";

export const AlertSeveritySchema = z.enum(["info", "warning", "critical"]);
export const AlertStateSchema = z.enum(["firing", "resolved"]);

/**
 * One alert change as an agent forwards it: the agent evaluated the rule, so the times are the
 * agent's own (when it fired, when it resolved), however late the forward arrives.
 */
export const AlertReportSchema = z.strictObject({
  alertId: z.string().regex(/^al_[0-9A-HJKMNP-TV-Z]{26}$/, "expected al_<ULID>"),
  rule: z.string().min(1).max(128),
  state: AlertStateSchema,
  severity: AlertSeveritySchema,
  labels: z
    .record(z.string().max(128), z.string().max(1024))
    .refine((l) => Object.keys(l).length <= 32, "at most 32 labels")
    .default({}),
  value: z.number().nullable().default(null),
  summary: z.string().max(1024).nullable().default(null),
  triggeredAt: TimestampSchema,
  resolvedAt: TimestampSchema.nullable().default(null),
});
export type AlertReport = z.infer<typeof AlertReportSchema>;

export const AlertReportBatchSchema = z.strictObject({
  alerts: z.array(AlertReportSchema).min(1).max(100),
});

export const AlertSchema = z.object({
  id: z.string(),
  clientId: IdSchema,
  rule: z.string(),
  state: AlertStateSchema,
  severity: AlertSeveritySchema,
  labels: z.record(z.string(), z.string()),
  value: z.number().nullable(),
  summary: z.string().nullable(),
  triggeredAt: TimestampSchema,
  resolvedAt: TimestampSchema.nullable(),
});
export type Alert = z.infer<typeof AlertSchema>;
