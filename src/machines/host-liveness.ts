/**
 * Host liveness as a pure step function: heartbeats, stream closes and clock ticks in; the
 * new state, the change (if any), the event to publish (if any) and when to look again out.
 *
 *   online  --stream closed, or no heartbeat for half the threshold-->  suspect
 *   any     --no heartbeat for the whole threshold-->                   offline (published as host.stale)
 *   any     --heartbeat-->                                              online
 *
 * Flap damping: a host publishes at most FLAP_LIMIT connectivity events in any FLAP_WINDOW.
 * Past that it is flapping: its changes are still recorded, but not published, until it has
 * held one state for FLAP_QUIET and the window has room again; then that state is published
 * once, with `flapping: true` and the number of changes that were held back.
 */
import type { HostStatus } from "../domain/host.js";

export const FLAP_LIMIT = 4;
export const FLAP_WINDOW_MS = 5 * 60_000;
export const FLAP_QUIET_MS = 60_000;

export interface LivenessState {
  status: HostStatus;
  lastSeen: number | null;
  lastStreamClose: number | null;
  /** When each of the recently published events went out (within FLAP_WINDOW). */
  published: number[];
  flapping: boolean;
  stableSince: number | null;
  suppressed: number;
}

export type LivenessInput =
  | { kind: "heartbeat"; at: number }
  | { kind: "stream_closed"; at: number }
  | { kind: "tick"; at: number };

export interface LivenessEvent {
  topic: "host.online" | "host.suspect" | "host.stale";
  at: number;
  status: HostStatus;
  flapping?: boolean;
  suppressed?: number;
}

export interface LivenessStep {
  state: LivenessState;
  change: { from: HostStatus; to: HostStatus; at: number; published: boolean } | null;
  publish: LivenessEvent | null;
  /** When the next tick is due, or null when nothing can change without new input. */
  nextCheckAt: number | null;
}

export function initialLiveness(): LivenessState {
  return {
    status: "offline",
    lastSeen: null,
    lastStreamClose: null,
    published: [],
    flapping: false,
    stableSince: null,
    suppressed: 0,
  };
}

const TOPIC: Record<HostStatus, LivenessEvent["topic"]> = {
  online: "host.online",
  suspect: "host.suspect",
  offline: "host.stale",
};

export function stepLiveness(
  previous: LivenessState,
  input: LivenessInput,
  thresholdMs: number,
): LivenessStep {
  const state: LivenessState = {
    ...previous,
    published: previous.published.filter((t) => t > input.at - FLAP_WINDOW_MS),
  };
  let to: HostStatus = state.status;
  if (input.kind === "heartbeat") {
    state.lastSeen = input.at;
    to = "online";
  } else if (input.kind === "stream_closed") {
    state.lastStreamClose = input.at;
    if (state.status === "online") to = "suspect";
  } else if (state.lastSeen !== null) {
    const age = input.at - state.lastSeen;
    if (age >= thresholdMs) to = "offline";
    else if (age >= thresholdMs / 2 && state.status === "online") to = "suspect";
  }

  let change: LivenessStep["change"] = null;
  let publish: LivenessEvent | null = null;
  if (to !== state.status) {
    const from = state.status;
    state.status = to;
    if (!state.flapping && state.published.length >= FLAP_LIMIT) state.flapping = true;
    if (state.flapping) {
      state.suppressed++;
      state.stableSince = input.at;
    } else {
      publish = { topic: TOPIC[to], at: input.at, status: to };
      state.published.push(input.at);
    }
    change = { from, to, at: input.at, published: publish !== null };
  } else if (
    state.flapping &&
    state.stableSince !== null &&
    input.at - state.stableSince >= FLAP_QUIET_MS &&
    state.published.length < FLAP_LIMIT
  ) {
    // Quiet long enough, and the window has room: say once where it settled.
    publish = {
      topic: TOPIC[state.status],
      at: input.at,
      status: state.status,
      flapping: true,
      suppressed: state.suppressed,
    };
    state.flapping = false;
    state.suppressed = 0;
    state.stableSince = null;
    state.published.push(input.at);
  }

  const checks: number[] = [];
  if (state.lastSeen !== null) {
    if (state.status === "online") checks.push(state.lastSeen + thresholdMs / 2);
    if (state.status !== "offline") checks.push(state.lastSeen + thresholdMs);
  }
  if (state.flapping && state.stableSince !== null) {
    // When it has been quiet long enough and the oldest event in the window has aged out.
    const roomAt = state.published.length >= FLAP_LIMIT ? state.published[0]! + FLAP_WINDOW_MS + 1 : 0;
    checks.push(Math.max(state.stableSince + FLAP_QUIET_MS, roomAt));
  }
  const future = checks.filter((t) => t > input.at);
  return {
    state,
    change,
    publish,
    nextCheckAt: future.length > 0 ? Math.min(...future) : checks.length > 0 ? input.at : null,
  };
}
