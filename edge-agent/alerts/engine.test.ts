import fc from "fast-check";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { parseOrThrow, ValidationError } from "../validate.js";
import {
  type Effect,
  FLAP_CHANGES,
  FLAP_WINDOW_MS,
  type InstanceState,
  initialState,
  step,
} from "./engine.js";
import { AlertRuleSchema, evaluate, parseExpression } from "./rules.js";

interface Tick {
  dt: number;
  met: boolean;
  held: boolean;
}

/** Drives one alert through a sequence of observations on a fake clock. */
function run(rule: { for: number; keepFiringFor: number; cooldown: number }, ticks: Tick[]) {
  let state: InstanceState = initialState();
  let now = 1_000_000;
  let n = 0;
  const log: { now: number; met: boolean; held: boolean; effects: Effect[]; state: InstanceState }[] = [];
  for (const t of ticks) {
    now += t.dt;
    const out = step(
      rule,
      state,
      { now, value: t.met ? 1 : 0, conditionMet: t.met, held: t.held },
      () => `al_${++n}`,
    );
    state = out.state;
    log.push({ now, met: t.met, held: t.held, effects: out.effects, state });
  }
  return log;
}

const ruleArb = fc.record({
  for: fc.integer({ min: 0, max: 60_000 }),
  keepFiringFor: fc.integer({ min: 0, max: 60_000 }),
  cooldown: fc.integer({ min: 0, max: 600_000 }),
});
const ticksArb = fc.array(
  fc.record({
    dt: fc.integer({ min: 1, max: 30_000 }),
    met: fc.boolean(),
    held: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
  }),
  { maxLength: 120 },
);

describe("alert engine (property, fake clock)", () => {
  it("fires only after the condition held continuously for `for`, and never while held", () => {
    fc.assert(
      fc.property(ruleArb, ticksArb, (rule, ticks) => {
        const log = run(rule, ticks);
        for (let i = 0; i < log.length; i++) {
          const fired = log[i]!.effects.some((e) => e.kind === "forward" && e.event === "triggered");
          if (!fired) continue;
          expect(log[i]!.held).toBe(false);
          // Walk back over the run of met observations ending here.
          let j = i;
          while (j > 0 && log[j - 1]!.met) j--;
          expect(log[i]!.now - log[j]!.now).toBeGreaterThanOrEqual(rule.for);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("resolves only after the condition was false for keepFiringFor; every firing resolves at most once", () => {
    fc.assert(
      fc.property(ruleArb, ticksArb, (rule, ticks) => {
        const log = run(rule, ticks);
        const open = new Map<string, number>();
        for (let i = 0; i < log.length; i++) {
          for (const e of log[i]!.effects) {
            if (e.kind !== "forward") continue;
            if (e.event === "triggered") open.set(e.alertId, i);
            else {
              expect(open.has(e.alertId)).toBe(true);
              open.delete(e.alertId);
              let j = i;
              while (j > 0 && !log[j - 1]!.met) j--;
              expect(log[i]!.now - log[j]!.now).toBeGreaterThanOrEqual(rule.keepFiringFor);
              expect(e.resolvedAt! >= e.triggeredAt).toBe(true);
            }
          }
        }
        // At most one alert open at a time, and it is the state's.
        expect(open.size).toBeLessThanOrEqual(1);
        const last = log.at(-1)?.state;
        if (open.size === 1) expect(last?.state).toBe("firing");
      }),
      { numRuns: 300 },
    );
  });

  it("respects the cooldown between notifications and never notifies while flapping", () => {
    fc.assert(
      fc.property(ruleArb, ticksArb, (rule, ticks) => {
        const log = run(rule, ticks);
        let lastTriggered: number | null = null;
        for (const entry of log) {
          for (const e of entry.effects) {
            if (e.kind !== "notify" || e.event !== "triggered") continue;
            if (lastTriggered !== null)
              expect(entry.now - lastTriggered).toBeGreaterThanOrEqual(rule.cooldown);
            lastTriggered = entry.now;
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("marks an alert flapping after FLAP_CHANGES changes in the window and stable after a quiet window", () => {
    const rule = { for: 0, keepFiringFor: 0, cooldown: 0 };
    const flip: Tick[] = Array.from({ length: 2 * FLAP_CHANGES }, (_, i) => ({
      dt: 1000,
      met: i % 2 === 0,
      held: false,
    }));
    const log = run(rule, [...flip, { dt: FLAP_WINDOW_MS + 1, met: false, held: false }]);
    const states = log.flatMap((l) => l.effects.filter((e) => e.kind === "history").map((e) => e.state));
    expect(states).toContain("flapping");
    expect(states.at(-1)).toBe("stable");
    const notes = log.flatMap((l) => l.effects.filter((e) => e.kind === "notify"));
    // Notified until it started flapping: fewer notifications than firings.
    const firings = log.flatMap((l) =>
      l.effects.filter((e) => e.kind === "forward" && e.event === "triggered"),
    );
    expect(notes.length).toBeLessThan(2 * firings.length);
  });

  it("records a hold once and fires when it is released", () => {
    const rule = { for: 0, keepFiringFor: 0, cooldown: 0 };
    const log = run(rule, [
      { dt: 1000, met: true, held: true },
      { dt: 1000, met: true, held: true },
      { dt: 1000, met: true, held: false },
    ]);
    const history = log.flatMap((l) => l.effects.filter((e) => e.kind === "history").map((e) => e.state));
    expect(history).toEqual(["pending", "held", "firing"]);
  });
});

describe("rule expressions", () => {
  const families = new Map([
    [
      "fleetdeck_filesystem_used_percent",
      {
        name: "fleetdeck_filesystem_used_percent",
        help: "",
        type: "gauge" as const,
        labelNames: ["mountpoint"],
        series: [
          { labels: { mountpoint: "/" }, value: 40 },
          { labels: { mountpoint: "/data" }, value: 95 },
          { labels: { mountpoint: "/boot" }, value: 20 },
        ],
      },
    ],
  ]);

  it("selects series by label, aggregates and applies arithmetic", () => {
    expect(
      evaluate(parseExpression('fleetdeck_filesystem_used_percent{mountpoint="/data"}'), families),
    ).toEqual([{ labels: { mountpoint: "/data" }, value: 95 }]);
    expect(
      evaluate(parseExpression('fleetdeck_filesystem_used_percent{mountpoint=~"/(data|boot)"}'), families),
    ).toHaveLength(2);
    expect(
      evaluate(parseExpression('max(fleetdeck_filesystem_used_percent{mountpoint!="/data"})'), families),
    ).toEqual([{ labels: {}, value: 40 }]);
    expect(
      evaluate(parseExpression("avg(fleetdeck_filesystem_used_percent) / 5"), families)[0]?.value,
    ).toBeCloseTo(155 / 3 / 5);
    expect(evaluate(parseExpression("count(no_such_metric)"), families)).toEqual([{ labels: {}, value: 0 }]);
  });

  it("rejects bad rules with the reason", () => {
    const base = { name: "r", op: ">", threshold: 1 };
    expect(() => parseExpression("max(foo")).toThrow(/unbalanced|cannot read/);
    expect(() => parseExpression('foo{bar~"x"}')).toThrow(/label matcher/);
    expect(() => parseOrThrow(AlertRuleSchema, { ...base, expr: "x / 0" })).toThrow(
      /^expr: .*division by zero/,
    );
    expect(() => parseOrThrow(AlertRuleSchema, { ...base, expr: "x", metric: "y" })).toThrow(
      /exactly one of expr or metric/,
    );
    expect(() => parseOrThrow(AlertRuleSchema, { ...base, expr: "x", for: "5 minutes" })).toThrow(
      /^for: "5 minutes" is not a duration/,
    );
    expect(() => parseOrThrow(AlertRuleSchema, { ...base, expr: "x", nme: "typo" })).toThrow(ValidationError);
    expect(v.safeParse(AlertRuleSchema, { ...base, expr: "x", threshold: "1" }).success).toBe(false);
    // Defaults are durations in seconds like YAML values: cooldown 5 minutes, as the README says.
    const defaults = parseOrThrow(AlertRuleSchema, { ...base, expr: "x" });
    expect([defaults.for, defaults.keepFiringFor, defaults.cooldown]).toEqual([0, 0, 300_000]);
    const ok = parseOrThrow(AlertRuleSchema, {
      ...base,
      metric: "m",
      matchLabels: { a: "b" },
      for: "5m",
      cooldown: "1h",
    });
    expect(ok.for).toBe(300_000);
    expect(ok.cooldown).toBe(3_600_000);
    expect(ok.expression.matchers).toEqual([{ label: "a", op: "=", value: "b" }]);
  });
});
