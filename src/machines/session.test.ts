import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isFleetdeckError } from "../protocol/errors.js";
import { SESSION_STATES, type SessionState, sessionMachine } from "./session.js";

const ORDER: SessionState[] = ["pending", "starting", "running", "stopping", "stopped"];

/** The plain model: one step forward along ORDER, or crash from anything not finished. */
function modelAllows(from: SessionState, to: SessionState): boolean {
  if (from === "stopped" || from === "crashed") return false;
  if (to === "crashed") return true;
  const i = ORDER.indexOf(from);
  return ORDER[i + 1] === to;
}

describe("session state machine", () => {
  it("agrees with the plain model on every sequence of requested transitions", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...SESSION_STATES), { maxLength: 40 }), (targets) => {
        let real: SessionState = "pending";
        let model: SessionState = "pending";
        for (const to of targets) {
          const ok = modelAllows(model, to);
          if (ok) model = to;
          try {
            real = sessionMachine.apply(real, to);
            expect(ok).toBe(true);
          } catch (error) {
            expect(ok).toBe(false);
            expect(isFleetdeckError(error) && error.code).toBe("INVALID_TRANSITION");
            expect(isFleetdeckError(error) && error.retryable).toBe(false);
          }
          expect(real).toBe(model);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("treats stopped and crashed as terminal", () => {
    expect(sessionMachine.allowedEvents("stopped")).toEqual([]);
    expect(sessionMachine.allowedEvents("crashed")).toEqual([]);
    expect([...sessionMachine.terminal].sort()).toEqual(["crashed", "stopped"]);
  });
});
