/**
 * Validation for the agent: settings, alert rules, command payloads.
 *
 * The agent validates with valibot, not zod (which the Worker uses): loaded and used, zod keeps
 * about 10 MB more resident in the agent process than valibot for the same schemas (measured with
 * esbuild bundles of each in an empty Node 22: 54.5 MB vs 44.8 MB; bench/RESULTS.md), and the
 * agent has an RSS budget. These helpers keep the common shapes short.
 */
import * as v from "valibot";

/** A number within [min, max] (either bound optional). */
export function num(min?: number, max?: number) {
  return v.pipe(
    v.number(),
    v.check((n) => Number.isFinite(n), "expected a finite number"),
    v.check((n) => min === undefined || n >= min, `expected at least ${min}`),
    v.check((n) => max === undefined || n <= max, `expected at most ${max}`),
  );
}

/** An integer within [min, max] (either bound optional). */
export function int(min?: number, max?: number) {
  return v.pipe(num(min, max), v.integer("expected an integer"));
}

/** A non-empty string of at most `max` characters. */
export function text(max = Number.POSITIVE_INFINITY, min = 1) {
  return v.pipe(
    v.string(),
    v.minLength(min, `expected at least ${min} character(s)`),
    v.maxLength(max, `expected at most ${max} characters`),
  );
}

export function url() {
  return v.pipe(v.string(), v.url("expected a URL"));
}

export function stringMap() {
  return v.record(v.string(), v.string());
}

export interface Problem {
  /** Keys from the root to the failing value, e.g. ["alertRules", 0, "for"]. */
  path: (string | number)[];
  message: string;
}

export function problemsOf(issues: readonly v.BaseIssue<unknown>[]): Problem[] {
  return issues.map((issue) => ({
    path: (issue.path ?? []).map((item) => item.key as string | number),
    // valibot words a missing key as 'Invalid key: Expected "name" but received undefined'.
    message: issue.received === "undefined" && issue.expected?.startsWith('"') ? "required" : issue.message,
  }));
}

/** An issue path for a cross-field check (addIssue in v.rawCheck), from plain keys. */
export function pathTo(
  ...keys: [string | number, ...(string | number)[]]
): [v.IssuePathItem, ...v.IssuePathItem[]] {
  const item = (key: string | number): v.IssuePathItem => ({
    type: "unknown",
    origin: "value",
    input: undefined,
    key,
    value: undefined,
  });
  return [item(keys[0]), ...keys.slice(1).map(item)];
}

export class ValidationError extends Error {
  override readonly name = "ValidationError";
  constructor(readonly problems: Problem[]) {
    super(problems.map((p) => `${p.path.join(".") || "(root)"}: ${p.message}`).join("; "));
  }
}

/** Parse or throw a ValidationError naming every failing path. */
export function parseOrThrow<S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, input);
  if (!result.success) throw new ValidationError(problemsOf(result.issues));
  return result.output;
}
