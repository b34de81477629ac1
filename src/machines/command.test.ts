import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isFleetdeckError } from "../protocol/errors.js";
import {
  COMMAND_EVENTS,
  COMMAND_STATES,
  type CommandEvent,
  type CommandState,
  commandMachine,
} from "./command.js";

/** The lifecycle written out longhand, independently of the table, as the model. */
interface Model {
  state: CommandState;
  attempt: number;
  sideEffectsStarted: number;
}

function modelStep(m: Model, event: CommandEvent): boolean {
  const s = m.state;
  const live = s === "pending" || s === "dispatched" || s === "running";
  if (event === "dispatch" && s === "pending") m.state = "dispatched";
  else if (event === "ack" && s === "dispatched") {
    m.state = "running";
    m.sideEffectsStarted++;
  } else if ((event === "complete" || event === "fail") && (s === "dispatched" || s === "running"))
    m.state = event === "complete" ? "completed" : "failed";
  else if (event === "time_out" && (s === "dispatched" || s === "running")) m.state = "timed_out";
  else if (event === "cancel" && live) m.state = "canceled";
  else if (event === "expire" && s === "pending") m.state = "expired";
  else if (event === "retry" && (s === "failed" || s === "timed_out")) {
    m.state = "pending";
    m.attempt++;
  } else return false;
  return true;
}

/** The system under test: a command record driven only through the machine. */
class CommandRecord {
  state: CommandState = "pending";
  attempt = 1;
  acks = 0;
  apply(event: CommandEvent): void {
    const to = commandMachine.apply(this.state, event);
    if (event === "retry") this.attempt++;
    if (event === "ack") this.acks++;
    this.state = to;
  }
}

class EventCmd implements fc.Command<Model, CommandRecord> {
  constructor(readonly event: CommandEvent) {}
  check(): boolean {
    return true;
  }
  run(model: Model, real: CommandRecord): void {
    const before = real.state;
    const allowed = modelStep(model, this.event);
    if (allowed) {
      real.apply(this.event);
    } else {
      let thrown: unknown;
      try {
        real.apply(this.event);
      } catch (error) {
        thrown = error;
      }
      expect(isFleetdeckError(thrown) && thrown.code).toBe("INVALID_TRANSITION");
      expect(real.state).toBe(before);
    }
    expect(real.state).toBe(model.state);
    expect(real.attempt).toBe(model.attempt);
    // One attempt reaches running at most once: the side effect runs at most once per attempt.
    expect(real.acks).toBeLessThanOrEqual(model.attempt);
  }
  toString(): string {
    return this.event;
  }
}

describe("command state machine", () => {
  it("agrees with the plain model on every sequence of events", () => {
    const commands = COMMAND_EVENTS.map((e) => fc.constant(new EventCmd(e)));
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 60 }), (cmds) => {
        fc.modelRun(() => {
          const model: Model = { state: "pending", attempt: 1, sideEffectsStarted: 0 };
          return { model, real: new CommandRecord() };
        }, cmds);
      }),
      { numRuns: 500 },
    );
  });

  it("leaves a terminal state only by retry, and only from failed or timed_out", () => {
    for (const state of COMMAND_STATES) {
      if (!commandMachine.terminal.has(state)) continue;
      const allowed = commandMachine.allowedEvents(state);
      if (state === "failed" || state === "timed_out") expect(allowed).toEqual(["retry"]);
      else expect(allowed).toEqual([]);
    }
  });

  it("rejects an invalid transition with 409 and the current state", () => {
    try {
      commandMachine.apply("completed", "ack");
      expect.unreachable();
    } catch (error) {
      expect(isFleetdeckError(error)).toBe(true);
      if (!isFleetdeckError(error)) return;
      expect(error.status).toBe(409);
      expect(error.retryable).toBe(false);
      expect(error.details).toMatchObject({ current: "completed", event: "ack" });
    }
  });

  it("every state is reachable from pending", () => {
    const seen = new Set<CommandState>(["pending"]);
    const queue: CommandState[] = ["pending"];
    while (queue.length > 0) {
      const s = queue.shift()!;
      for (const e of commandMachine.allowedEvents(s)) {
        const to = commandMachine.next(s, e)!;
        if (!seen.has(to)) {
          seen.add(to);
          queue.push(to);
        }
      }
    }
    expect([...seen].sort()).toEqual([...COMMAND_STATES].sort());
  });
});
