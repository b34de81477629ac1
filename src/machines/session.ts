import { defineMachine } from "./machine.js";

export const SESSION_STATES = ["pending", "starting", "running", "stopping", "stopped", "crashed"] as const;
export type SessionState = (typeof SESSION_STATES)[number];

/**
 * pending -> starting -> running -> stopping -> stopped; any non-terminal state may crash.
 * Events are named by their target state, as the transition API takes `{to}`.
 */
export const sessionMachine = defineMachine<SessionState, SessionState>(
  "session",
  {
    pending: { starting: "starting", crashed: "crashed" },
    starting: { running: "running", crashed: "crashed" },
    running: { stopping: "stopping", crashed: "crashed" },
    stopping: { stopped: "stopped", crashed: "crashed" },
    stopped: {},
    crashed: {},
  },
  ["stopped", "crashed"],
);
