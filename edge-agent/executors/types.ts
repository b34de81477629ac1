import type * as v from "valibot";
import type { AgentConfig } from "../config.js";
import type { ProcessSupervisor } from "../process-supervisor.js";

/** A typed failure: it ends the command `failed` with this code, never crashes the agent. */
export class CommandError extends Error {
  override readonly name = "CommandError";
  constructor(
    readonly code: string,
    message: string,
    readonly data?: unknown,
    readonly retryable = false,
  ) {
    super(message);
  }
}

export interface DeviceRequester {
  request(deviceId: string, body: unknown, timeoutMs: number, signal: AbortSignal): Promise<unknown>;
}

export interface ExecutorContext {
  commandId: string;
  config: AgentConfig;
  /** Aborted on cancel, on timeout and on shutdown. */
  signal: AbortSignal;
  /** Milliseconds this command may run. */
  timeoutMs: number;
  maxOutputBytes: number;
  supervisor: ProcessSupervisor;
  devices: DeviceRequester | undefined;
  progress(update: { percent?: number; message?: string }): void;
}

export interface Executor<P extends v.GenericSchema = v.GenericSchema> {
  action: string;
  payload: P;
  run(payload: v.InferOutput<P>, ctx: ExecutorContext): Promise<unknown>;
}

export function defineExecutor<P extends v.GenericSchema>(executor: Executor<P>): Executor<P> {
  return executor;
}
