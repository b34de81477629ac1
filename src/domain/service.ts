import { z } from "zod";
import { IdSchema, TimestampSchema } from "./common.js";

/** A service is a desired spec reconciled over its sessions; its status is derived. */
export const SERVICE_STATES = [
  "pending",
  "initializing",
  "running",
  "degraded",
  "terminating",
  "failed",
] as const;
export const ServiceStatusSchema = z.enum(SERVICE_STATES);

export const ServiceSpecSchema = z.strictObject({
  image: z.string().max(256).optional(),
  command: z.array(z.string()).max(64).optional(),
  replicas: z.number().int().min(0).max(64).default(1),
  version: z.string().max(64).optional(),
  env: z.record(z.string(), z.string()).optional(),
});

export const ServiceSchema = z.object({
  id: IdSchema,
  clientId: IdSchema,
  name: z.string().min(1).max(128),
  spec: ServiceSpecSchema,
  status: ServiceStatusSchema,
  createdAt: TimestampSchema,
  updatedAt: TimestampSchema,
});
export type Service = z.infer<typeof ServiceSchema>;
