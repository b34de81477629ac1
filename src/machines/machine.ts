import { FleetdeckError } from "../protocol/errors.js";

/** A table-driven state machine: `table[from][event]` is the next state, or absent when not allowed. */
export type TransitionTable<S extends string, E extends string> = Readonly<
  Record<S, Readonly<Partial<Record<E, S>>>>
>;

export interface Machine<S extends string, E extends string> {
  readonly name: string;
  readonly states: readonly S[];
  readonly terminal: ReadonlySet<S>;
  /** The next state, or undefined when `event` is not allowed in `from`. */
  next(from: S, event: E): S | undefined;
  /** The next state; throws INVALID_TRANSITION (409, never retried) naming the current state. */
  apply(from: S, event: E): S;
  allowedEvents(from: S): E[];
}

export function defineMachine<S extends string, E extends string>(
  name: string,
  table: TransitionTable<S, E>,
  terminal: readonly S[],
): Machine<S, E> {
  const states = Object.keys(table) as S[];
  const terminalSet: ReadonlySet<S> = new Set(terminal);
  function next(from: S, event: E): S | undefined {
    return table[from]?.[event];
  }
  return {
    name,
    states,
    terminal: terminalSet,
    next,
    apply: function applyTransition(from, event) {
      const to = next(from, event);
      if (to === undefined) {
        throw new FleetdeckError("INVALID_TRANSITION", `${name} cannot ${event} from ${from}`, {
          details: { current: from, event, allowed: Object.keys(table[from] ?? {}) },
        });
      }
      return to;
    },
    allowedEvents: function allowedEvents(from) {
      return Object.keys(table[from] ?? {}) as E[];
    },
  };
}
