/**
 * One alert's life as a pure step function of (rule, state, observation): no clock, no I/O, so
 * a property test can drive it with a fake clock. States: inactive -> pending -> firing ->
 * (resolved) -> inactive.
 *
 * - pending: the condition holds; it fires once it has held for the rule's `for`.
 * - firing: stays firing until the condition has been false for `keepFiringFor`.
 * - held: a command is acting on the rule's target; a pending alert does not fire until the
 *   hold is released (the hold is recorded once in the history).
 * - cooldown: a firing is always recorded and forwarded, but notified only if the previous
 *   notification of this alert is at least `cooldown` old.
 * - flapping: FLAP_CHANGES fire/resolve changes within FLAP_WINDOW_MS mark the alert flapping;
 *   while it flaps nothing is notified; it is stable again after a window with no change.
 */
import type { AlertRule } from "./rules.js";

export const FLAP_WINDOW_MS = 10 * 60_000;
export const FLAP_CHANGES = 4;

export type AlertState = "inactive" | "pending" | "firing";

export interface InstanceState {
  state: AlertState;
  activeSince: number | null;
  firedAt: number | null;
  clearSince: number | null;
  alertId: string | null;
  lastNotifiedAt: number | null;
  /** Whether this firing's trigger was notified (so its resolution is too). */
  notified: boolean;
  heldRecorded: boolean;
  changes: number[];
  flapping: boolean;
  lastValue: number | null;
}

export function initialState(): InstanceState {
  return {
    state: "inactive",
    activeSince: null,
    firedAt: null,
    clearSince: null,
    alertId: null,
    lastNotifiedAt: null,
    notified: false,
    heldRecorded: false,
    changes: [],
    flapping: false,
    lastValue: null,
  };
}

export type HistoryState = "pending" | "firing" | "resolved" | "held" | "flapping" | "stable";

export type Effect =
  | {
      kind: "history";
      state: HistoryState;
      at: number;
      value: number | null;
      alertId: string | null;
      note?: string;
    }
  | {
      kind: "forward";
      event: "triggered" | "resolved";
      alertId: string;
      triggeredAt: number;
      resolvedAt: number | null;
      value: number | null;
    }
  | {
      kind: "notify";
      event: "triggered" | "resolved";
      alertId: string;
      triggeredAt: number;
      resolvedAt: number | null;
      value: number | null;
    };

export interface Observation {
  now: number;
  /** The expression's value for this alert; null when the series is gone (treated as not met). */
  value: number | null;
  conditionMet: boolean;
  held: boolean;
}

type RuleTiming = Pick<AlertRule, "for" | "keepFiringFor" | "cooldown">;

export function step(
  rule: RuleTiming,
  before: InstanceState,
  obs: Observation,
  newId: () => string,
): { state: InstanceState; effects: Effect[] } {
  const s: InstanceState = { ...before, changes: before.changes.filter((t) => obs.now - t < FLAP_WINDOW_MS) };
  const effects: Effect[] = [];
  const { now, value } = obs;
  if (value !== null) s.lastValue = value;
  const history = (state: HistoryState, note?: string) =>
    effects.push({ kind: "history", state, at: now, value, alertId: s.alertId, ...(note ? { note } : {}) });

  // Flapping ends after a full window with no change.
  if (s.flapping && s.changes.length === 0) {
    s.flapping = false;
    history("stable");
    if (s.state === "firing" && !s.notified && s.alertId && s.firedAt !== null) {
      notify("triggered", s.firedAt, null);
    }
  }

  if (obs.conditionMet) {
    s.clearSince = null;
    if (s.state === "inactive") {
      s.state = "pending";
      s.activeSince = now;
      s.heldRecorded = false;
      history("pending");
    }
    if (s.state === "pending" && now - s.activeSince! >= rule.for) {
      if (obs.held) {
        if (!s.heldRecorded) {
          s.heldRecorded = true;
          history("held", "a command is acting on this rule's target");
        }
      } else {
        s.state = "firing";
        s.firedAt = now;
        s.alertId = newId();
        s.notified = false;
        change();
        history("firing");
        effects.push({
          kind: "forward",
          event: "triggered",
          alertId: s.alertId,
          triggeredAt: now,
          resolvedAt: null,
          value,
        });
        if (s.flapping) history("firing", "not notified: flapping");
        else if (s.lastNotifiedAt !== null && now - s.lastNotifiedAt < rule.cooldown)
          history("firing", "not notified: cooldown");
        else notify("triggered", now, null);
      }
    }
  } else if (s.state === "pending") {
    s.state = "inactive";
    s.activeSince = null;
  } else if (s.state === "firing") {
    if (s.clearSince === null) s.clearSince = now;
    if (now - s.clearSince >= rule.keepFiringFor) {
      const alertId = s.alertId!;
      const firedAt = s.firedAt!;
      history("resolved");
      effects.push({
        kind: "forward",
        event: "resolved",
        alertId,
        triggeredAt: firedAt,
        resolvedAt: now,
        value,
      });
      if (s.notified && !s.flapping) notify("resolved", firedAt, now);
      change();
      s.state = "inactive";
      s.activeSince = null;
      s.clearSince = null;
      s.notified = false;
    }
  }
  return { state: s, effects };

  function change(): void {
    s.changes.push(now);
    if (!s.flapping && s.changes.length >= FLAP_CHANGES) {
      s.flapping = true;
      effects.push({
        kind: "history",
        state: "flapping",
        at: now,
        value,
        alertId: s.alertId,
        note: `${s.changes.length} changes in ${FLAP_WINDOW_MS / 60_000} min`,
      });
    }
  }

  function notify(event: "triggered" | "resolved", triggeredAt: number, resolvedAt: number | null): void {
    if (event === "triggered") {
      s.lastNotifiedAt = now;
      s.notified = true;
    }
    effects.push({ kind: "notify", event, alertId: s.alertId!, triggeredAt, resolvedAt, value });
  }
}
