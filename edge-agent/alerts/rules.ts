/**
 * Alert rules as the agent's YAML holds them, and the small expression language they use:
 *
 *   [max|min|avg|sum|count (] metric_name [{label="v", label!="v", label=~"re", label!~"re"}] [)] [* / + - number]
 *
 * Without an aggregation every matching series is its own alert (one per label set, as in
 * Prometheus); with one, the rule has a single alert over all of them.
 */

import * as v from "valibot";
import type { Family, Labels } from "../metrics/family.js";
import { num, pathTo, stringMap, text } from "../validate.js";

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "5m", "1h", or a number of seconds. */
export const DurationSchema = v.pipe(
  v.union([num(0), v.string()], "expected a duration (like 30s, 5m, 1h) or a number of seconds"),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const d = dataset.value;
    if (typeof d === "number") return Math.round(d * 1000);
    const m = DURATION.exec(d.trim());
    if (!m) {
      addIssue({ message: `"${d}" is not a duration (like 30s, 5m, 1h)` });
      return NEVER;
    }
    return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? "s"]!);
  }),
);

export const OPERATORS = [">", "<", ">=", "<=", "==", "!="] as const;
export type Operator = (typeof OPERATORS)[number];
export const SEVERITIES = ["info", "warning", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

export function compare(value: number, op: Operator, threshold: number): boolean {
  switch (op) {
    case ">":
      return value > threshold;
    case "<":
      return value < threshold;
    case ">=":
      return value >= threshold;
    case "<=":
      return value <= threshold;
    case "==":
      return value === threshold;
    case "!=":
      return value !== threshold;
  }
}

interface Matcher {
  label: string;
  op: "=" | "!=" | "=~" | "!~";
  value: string;
  re?: RegExp;
}

export interface Expression {
  text: string;
  metric: string;
  matchers: Matcher[];
  aggregate: "max" | "min" | "avg" | "sum" | "count" | null;
  arithmetic: { op: "*" | "/" | "+" | "-"; operand: number } | null;
}

export class ExpressionError extends Error {
  override readonly name = "ExpressionError";
}

const EXPR =
  /^\s*(?:(max|min|avg|sum|count)\s*\(\s*)?([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{([^}]*)\})?\s*(\))?\s*(?:([*/+-])\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?))?\s*$/;
const MATCHER = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$/;

export function parseExpression(text: string): Expression {
  const m = EXPR.exec(text);
  if (!m)
    throw new ExpressionError(
      `cannot read expression "${text}": expected [agg(]metric{label="v"}[)] [op number]`,
    );
  const [, aggregate, metric, body, close, arOp, arNum] = m;
  if (Boolean(aggregate) !== Boolean(close)) throw new ExpressionError(`unbalanced parentheses in "${text}"`);
  const matchers: Matcher[] = [];
  for (const part of (body ?? "").split(",").filter((p) => p.trim())) {
    const mm = MATCHER.exec(part);
    if (!mm) throw new ExpressionError(`cannot read label matcher "${part.trim()}" in "${text}"`);
    const matcher: Matcher = {
      label: mm[1]!,
      op: mm[2] as Matcher["op"],
      value: mm[3]!.replace(/\\(.)/g, "$1"),
    };
    if (matcher.op === "=~" || matcher.op === "!~") {
      try {
        matcher.re = new RegExp(`^(?:${matcher.value})$`);
      } catch (error) {
        throw new ExpressionError(`bad regular expression in "${text}": ${(error as Error).message}`);
      }
    }
    matchers.push(matcher);
  }
  if (arOp === "/" && Number(arNum) === 0) throw new ExpressionError(`division by zero in "${text}"`);
  return {
    text,
    metric: metric!,
    matchers,
    aggregate: (aggregate as Expression["aggregate"]) ?? null,
    arithmetic: arOp ? { op: arOp as "*" | "/" | "+" | "-", operand: Number(arNum) } : null,
  };
}

function matches(labels: Labels, matchers: Matcher[]): boolean {
  return matchers.every((m) => {
    const v = labels[m.label] ?? "";
    if (m.op === "=") return v === m.value;
    if (m.op === "!=") return v !== m.value;
    if (m.op === "=~") return m.re!.test(v);
    return !m.re!.test(v);
  });
}

/** The expression's value(s) over the current families: one entry per alert it would make. */
export function evaluate(
  expr: Expression,
  families: ReadonlyMap<string, Family>,
): { labels: Labels; value: number }[] {
  const f = families.get(expr.metric);
  const series = (f?.series ?? []).filter((s) => matches(s.labels, expr.matchers));
  const apply = (v: number) => {
    if (!expr.arithmetic) return v;
    const { op, operand } = expr.arithmetic;
    return op === "*" ? v * operand : op === "/" ? v / operand : op === "+" ? v + operand : v - operand;
  };
  if (!expr.aggregate) return series.map((s) => ({ labels: s.labels, value: apply(s.value) }));
  if (series.length === 0) return expr.aggregate === "count" ? [{ labels: {}, value: apply(0) }] : [];
  const values = series.map((s) => s.value);
  const v =
    expr.aggregate === "max"
      ? Math.max(...values)
      : expr.aggregate === "min"
        ? Math.min(...values)
        : expr.aggregate === "sum"
          ? values.reduce((a, b) => a + b, 0)
          : expr.aggregate === "count"
            ? values.length
            : values.reduce((a, b) => a + b, 0) / values.length;
  return [{ labels: {}, value: apply(v) }];
}

export const AlertRuleSchema = v.pipe(
  v.strictObject({
    name: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.:-]{1,128}$/, "letters, digits and _.:- only")),
    /** An expression (see above), or `metric` with `matchLabels`. */
    expr: v.optional(text()),
    metric: v.optional(text()),
    matchLabels: v.optional(stringMap()),
    op: v.picklist(OPERATORS),
    threshold: num(),
    // Defaults are durations in seconds, passed through DurationSchema like a value from YAML.
    for: v.optional(DurationSchema, 0),
    keepFiringFor: v.optional(DurationSchema, 0),
    /** Least time between two notifications that an alert fired. */
    cooldown: v.optional(DurationSchema, 300),
    severity: v.optional(v.picklist(SEVERITIES), "warning"),
    labels: v.optional(stringMap(), {}),
    summary: v.optional(text(1024, 0)),
    /** Channel names to notify; all configured channels when left out. */
    channels: v.optional(v.array(text())),
    /**
     * What this rule watches, as commands name it (process:<name>, device:<id>, script:<name>):
     * while a command acts on it, the rule's alerts are held until the command's result.
     */
    target: v.optional(
      v.pipe(
        v.string(),
        v.regex(/^(process|device|script):.+$/, "expected process:<name>, device:<id> or script:<name>"),
      ),
    ),
  }),
  v.check((r) => Boolean(r.expr) !== Boolean(r.metric), "give exactly one of expr or metric"),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const r = dataset.value;
    const source =
      r.expr ??
      `${r.metric}{${Object.entries(r.matchLabels ?? {})
        .map(([k, val]) => `${k}="${val.replace(/"/g, '\\"')}"`)
        .join(",")}}`;
    try {
      return { ...r, expression: parseExpression(source) };
    } catch (error) {
      addIssue({ message: (error as Error).message, path: pathTo("expr") });
      return NEVER;
    }
  }),
);

export type AlertRule = v.InferOutput<typeof AlertRuleSchema>;

/** The targets a command acts on, for holding the alerts it will predictably trip. */
export function commandTargets(action: string, payload: Record<string, unknown>): string[] {
  if (action === "restart-process" && typeof payload.name === "string") return [`process:${payload.name}`];
  if (action === "device-command" && typeof payload.deviceId === "string")
    return [`device:${payload.deviceId}`];
  if (action === "exec" && typeof payload.script === "string") return [`script:${payload.script}`];
  return [];
}
