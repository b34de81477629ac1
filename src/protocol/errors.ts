/**
 * The one error type for expected failures. Every rejection the edge sends is
 * shaped `{"error":{"code","message","details?","retryable"}}` (see ARCHITECTURE.md).
 */

export const ERROR_CODES = {
  INVALID_JSON: { status: 400, retryable: false },
  BAD_REQUEST: { status: 400, retryable: false },
  UNAUTHORIZED: { status: 401, retryable: false },
  FORBIDDEN: { status: 403, retryable: false },
  NOT_FOUND: { status: 404, retryable: false },
  CONFLICT: { status: 409, retryable: false },
  INVALID_TRANSITION: { status: 409, retryable: false },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false },
  VALIDATION_FAILED: { status: 422, retryable: false },
  IDEMPOTENCY_KEY_REUSED: { status: 422, retryable: false },
  RATE_LIMITED: { status: 429, retryable: true },
  INTERNAL: { status: 500, retryable: true },
  DEPENDENCY_UNAVAILABLE: { status: 503, retryable: true },
  MISCONFIGURED: { status: 500, retryable: false },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    details?: unknown;
    retryable: boolean;
  };
}

export interface FleetdeckErrorOptions {
  details?: unknown;
  /** Seconds a client should wait before trying again (429, 503). */
  retryAfterSec?: number;
  cause?: unknown;
}

export class FleetdeckError extends Error {
  override readonly name = "FleetdeckError";
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: unknown;
  readonly retryAfterSec: number | undefined;

  constructor(code: ErrorCode, message: string, options: FleetdeckErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryable = ERROR_CODES[code].retryable;
    this.details = options.details;
    this.retryAfterSec = options.retryAfterSec;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { error: { code: this.code, message: this.message, retryable: this.retryable } };
    if (this.details !== undefined) body.error.details = this.details;
    return body;
  }
}

export function isFleetdeckError(value: unknown): value is FleetdeckError {
  return value instanceof FleetdeckError;
}

/** The body for anything that is not a FleetdeckError: no message or stack leaks out. */
export function internalErrorBody(): ErrorBody {
  return { error: { code: "INTERNAL", message: "internal error", retryable: true } };
}
