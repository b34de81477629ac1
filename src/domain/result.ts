import { z } from "zod";

/** What an agent reports when it finishes a command. */
export const ResultSchema = z.strictObject({
  success: z.boolean(),
  data: z.unknown().optional(),
  error: z
    .strictObject({
      code: z.string().min(1).max(64),
      message: z.string().max(4096),
      retryable: z.boolean().optional(),
    })
    .optional(),
  durationMs: z.number().int().nonnegative(),
});
export type Result = z.infer<typeof ResultSchema>;
