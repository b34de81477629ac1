import { defineMachine } from "./machine.js";

export const COMMAND_STATES = [
  "pending",
  "dispatched",
  "running",
  "completed",
  "failed",
  "timed_out",
  "canceled",
  "expired",
] as const;
export type CommandState = (typeof COMMAND_STATES)[number];

export const COMMAND_EVENTS = [
  "dispatch",
  "ack",
  "complete",
  "fail",
  "time_out",
  "cancel",
  "expire",
  "retry",
] as const;
export type CommandEvent = (typeof COMMAND_EVENTS)[number];

/**
 * pending -> dispatched -> running -> completed | failed | timed_out, plus canceled and
 * expired (deadline passed before delivery). A result may arrive without an ack (the agent
 * may skip it), so complete/fail are allowed from dispatched too. `retry` takes a failed or
 * timed-out command back to pending; the caller bumps its attempt.
 */
export const commandMachine = defineMachine<CommandState, CommandEvent>(
  "command",
  {
    pending: { dispatch: "dispatched", cancel: "canceled", expire: "expired" },
    dispatched: {
      ack: "running",
      complete: "completed",
      fail: "failed",
      time_out: "timed_out",
      cancel: "canceled",
    },
    running: { complete: "completed", fail: "failed", time_out: "timed_out", cancel: "canceled" },
    completed: {},
    failed: { retry: "pending" },
    timed_out: { retry: "pending" },
    canceled: {},
    expired: {},
  },
  ["completed", "failed", "timed_out", "canceled", "expired"],
);

export function isTerminalCommandState(state: CommandState): boolean {
  return commandMachine.terminal.has(state);
}
