import { z } from "zod";

/** Ids are prefixed ULID-like strings made by the edge (`cl_...`, `cmd_...`); kept opaque to callers. */
export const IdSchema = z
  .string()
  .min(3)
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/, "ids use letters, digits, '_' and '-'");

/** Epoch milliseconds on the edge's clock; agents' clocks are never trusted for ordering. */
export const TimestampSchema = z.number().int().nonnegative();

export const TagsSchema = z
  .array(
    z
      .string()
      .min(1)
      .max(64)
      .regex(/^[a-z0-9][a-z0-9:._-]*$/, "tags are lower-case words"),
  )
  .max(32);

export const MetadataSchema = z.record(z.string().max(128), z.unknown());
