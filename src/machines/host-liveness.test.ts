import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FLAP_LIMIT,
  FLAP_QUIET_MS,
  FLAP_WINDOW_MS,
  initialLiveness,
  type LivenessInput,
  type LivenessState,
  stepLiveness,
} from "./host-liveness.js";

const T = 15_000;

function run(inputs: LivenessInput[]) {
  let state: LivenessState = initialLiveness();
  const published = [];
  for (const input of inputs) {
    const step = stepLiveness(state, input, T);
    state = step.state;
    if (step.publish) published.push(step.publish);
  }
  return { state, published };
}

describe("host liveness", () => {
  it("goes online on a heartbeat, suspect when the stream closes, stale past the threshold, online again", () => {
    const { published, state } = run([
      { kind: "heartbeat", at: 0 },
      { kind: "stream_closed", at: 1000 },
      { kind: "tick", at: T },
      { kind: "heartbeat", at: T + 5000 },
    ]);
    expect(published.map((p) => p.topic)).toEqual([
      "host.online",
      "host.suspect",
      "host.stale",
      "host.online",
    ]);
    expect(state.status).toBe("online");
  });

  it("turns suspect when a heartbeat is late, and stale exactly at the threshold", () => {
    let s = stepLiveness(initialLiveness(), { kind: "heartbeat", at: 0 }, T);
    expect(s.nextCheckAt).toBe(T / 2);
    s = stepLiveness(s.state, { kind: "tick", at: T / 2 }, T);
    expect(s.publish?.topic).toBe("host.suspect");
    expect(s.nextCheckAt).toBe(T);
    s = stepLiveness(s.state, { kind: "tick", at: T - 1 }, T);
    expect(s.publish).toBeNull();
    s = stepLiveness(s.state, { kind: "tick", at: T }, T);
    expect(s.publish?.topic).toBe("host.stale");
    expect(s.nextCheckAt).toBeNull();
  });

  it("ticks that find nothing due change nothing (an alarm firing twice is harmless)", () => {
    const a = stepLiveness(initialLiveness(), { kind: "heartbeat", at: 0 }, T);
    const b = stepLiveness(a.state, { kind: "tick", at: 100 }, T);
    const c = stepLiveness(b.state, { kind: "tick", at: 100 }, T);
    expect([b.change, c.change, b.publish, c.publish]).toEqual([null, null, null, null]);
  });

  it("damps flapping: never more than FLAP_LIMIT events in a window, and the settled state is published", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            gap: fc.integer({ min: 1, max: 20_000 }),
            kind: fc.constantFrom("heartbeat", "stream_closed", "tick"),
          }),
          {
            minLength: 1,
            maxLength: 80,
          },
        ),
        (steps) => {
          let at = 0;
          const inputs: LivenessInput[] = steps.map((s) => {
            at += s.gap;
            return { kind: s.kind as LivenessInput["kind"], at };
          });
          // Then it settles: heartbeats every 5 s for two quiet periods, with ticks.
          for (let i = 0; i < 80; i++) {
            at += 5000;
            inputs.push({ kind: "heartbeat", at }, { kind: "tick", at: at + 1 });
          }
          const { published, state } = run(inputs);
          for (const p of published) {
            const inWindow = published.filter((q) => q.at > p.at - FLAP_WINDOW_MS && q.at <= p.at);
            expect(inWindow.length).toBeLessThanOrEqual(FLAP_LIMIT);
          }
          expect(state.flapping).toBe(false);
          expect(published.at(-1)?.status).toBe("online");
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("publishes the settled state once after a quiet minute, with the count held back", () => {
    const inputs: LivenessInput[] = [];
    let at = 0;
    for (let i = 0; i < 8; i++) {
      inputs.push({ kind: "heartbeat", at: at + 1000 }, { kind: "stream_closed", at: at + 2000 });
      at += 2000;
    }
    // It settles: heartbeats every 5 s, with the alarm's ticks, for a quiet minute and until
    // the 5-minute window has room again.
    for (let i = 0; i <= (FLAP_QUIET_MS + FLAP_WINDOW_MS) / 5000; i++) {
      at += 5000;
      inputs.push({ kind: "heartbeat", at }, { kind: "tick", at: at + 1 });
    }
    const { published } = run(inputs);
    expect(published.length).toBe(FLAP_LIMIT + 1);
    expect(published.at(-1)).toMatchObject({ topic: "host.online", flapping: true });
    expect(published.at(-1)!.suppressed).toBeGreaterThan(0);
  });

  it("does not let a settled-state event push a window past the limit (fast-check counterexample)", () => {
    const gaps: [number, LivenessInput["kind"]][] = [
      [1, "heartbeat"],
      [7500, "tick"],
      [1, "heartbeat"],
      [7500, "tick"],
      [7500, "tick"],
      [5158, "tick"],
      [10606, "tick"],
      [15343, "stream_closed"],
      [19995, "stream_closed"],
      [8898, "tick"],
      [1, "heartbeat"],
    ];
    let at = 0;
    const inputs = gaps.map(([gap, kind]): LivenessInput => {
      at += gap;
      return { kind, at };
    });
    const { published } = run(inputs);
    for (const p of published) {
      expect(
        published.filter((q) => q.at > p.at - FLAP_WINDOW_MS && q.at <= p.at).length,
      ).toBeLessThanOrEqual(FLAP_LIMIT);
    }
  });
});
