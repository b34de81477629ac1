import { z } from "zod";
import { IdSchema, MetadataSchema, TagsSchema, TimestampSchema } from "./common.js";

/** A client is one host in the field with its agent; it authenticates with `sk_<id>_<secret>`. */
export const ClientSchema = z.object({
  id: IdSchema,
  name: z.string().min(1).max(128),
  tags: TagsSchema,
  metadata: MetadataSchema,
  createdAt: TimestampSchema,
  keyRotatedAt: TimestampSchema.nullable(),
});
export type Client = z.infer<typeof ClientSchema>;

export const CreateClientSchema = z.strictObject({
  name: z.string().min(1).max(128),
  tags: TagsSchema.optional(),
  metadata: MetadataSchema.optional(),
});
export type CreateClient = z.infer<typeof CreateClientSchema>;

/** `sk_<clientId>_<secret>`: the id is readable so the edge finds the hub without a lookup. */
export const CLIENT_KEY_PATTERN = /^sk_(cl_[0-9A-HJKMNP-TV-Z]{26})_([A-Za-z0-9_-]{32,})$/;

export function parseClientKey(key: string): { clientId: string; secret: string } | null {
  const match = CLIENT_KEY_PATTERN.exec(key);
  if (!match) return null;
  return { clientId: match[1]!, secret: match[2]! };
}
