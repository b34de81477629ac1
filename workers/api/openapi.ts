import { OpenAPIHono } from "@hono/zod-openapi";
import { z } from "zod";
import { FleetdeckError } from "../../src/protocol/errors.js";
import type { AppEnv } from "../app-env.js";

/** Every router validates with zod and answers 422 with the failing paths. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw new FleetdeckError("VALIDATION_FAILED", "request failed validation", {
          details: {
            target: result.target,
            issues: result.error.issues.map((i) => ({ path: i.path, message: i.message, code: i.code })),
          },
        });
      }
    },
  });
}

export const ErrorSchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.unknown().optional(),
    retryable: z.boolean(),
  }),
});

export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return {
    required: true,
    content: { "application/json": { schema } },
    ...(description ? { description } : {}),
  };
}

export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** The error answers every authenticated route may give. */
export const errorResponses = {
  400: jsonResponse(ErrorSchema, "Malformed JSON (INVALID_JSON)"),
  401: jsonResponse(ErrorSchema, "Missing, invalid or revoked credentials"),
  403: jsonResponse(ErrorSchema, "Known caller without the needed role"),
  404: jsonResponse(ErrorSchema, "No such resource, or another client's"),
  413: jsonResponse(ErrorSchema, "Body larger than MAX_BODY_BYTES"),
  422: jsonResponse(ErrorSchema, "Validation failed; details list the failing paths"),
  429: jsonResponse(ErrorSchema, "Rate limited; see Retry-After"),
  503: jsonResponse(ErrorSchema, "A dependency is unavailable; retry after Retry-After"),
} as const;

export const security = [{ bearer: [] }];
