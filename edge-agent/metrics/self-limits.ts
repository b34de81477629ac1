/**
 * The agent watches its own CPU and RSS against budgets. Over either budget it doubles its
 * collection intervals (up to 8x); once both are comfortably under (70% of budget) for three
 * checks in a row it halves them again. Every change is logged and shows in the metrics.
 */
import { type Family, family, one, round } from "./family.js";

export interface SelfLimitsOptions {
  cpuPercent: number;
  rssBytes: number;
  checkIntervalSecs: number;
  maxFactor?: number;
  /** Start-up (loading and compiling code) is not steady-state use: no change before this. */
  graceSecs?: number;
  apply: (factor: number) => void;
  log: (level: "info" | "warn", msg: string, fields?: Record<string, unknown>) => void;
  /** For tests: where the usage readings come from. */
  usage?: () => { cpuMicros: number; rssBytes: number; at: number };
}

const realUsage = () => {
  const cpu = process.cpuUsage();
  return { cpuMicros: cpu.user + cpu.system, rssBytes: process.memoryUsage.rss(), at: performance.now() };
};

export class SelfLimits {
  private timer: NodeJS.Timeout | null = null;
  private last: { cpuMicros: number; at: number } | null = null;
  private factor = 1;
  private calmChecks = 0;
  private cpuPercent = 0;
  private rssBytes = 0;
  private over = { cpu: false, rss: false };
  private readonly usage: NonNullable<SelfLimitsOptions["usage"]>;
  private firstAt: number | null = null;

  constructor(private readonly options: SelfLimitsOptions) {
    this.usage = options.usage ?? realUsage;
  }

  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), this.options.checkIntervalSecs * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One reading: updates the factor when the agent is over (or well under) its budgets. */
  check(): void {
    const now = this.usage();
    this.rssBytes = now.rssBytes;
    if (this.last && now.at > this.last.at) {
      this.cpuPercent = (100 * (now.cpuMicros - this.last.cpuMicros)) / ((now.at - this.last.at) * 1000);
    }
    this.last = { cpuMicros: now.cpuMicros, at: now.at };
    this.firstAt ??= now.at;
    if (now.at - this.firstAt < (this.options.graceSecs ?? 30) * 1000) return;
    const { cpuPercent: cpuBudget, rssBytes: rssBudget } = this.options;
    this.over = { cpu: this.cpuPercent > cpuBudget, rss: this.rssBytes > rssBudget };
    const max = this.options.maxFactor ?? 8;
    if (this.over.cpu || this.over.rss) {
      this.calmChecks = 0;
      if (this.factor < max) {
        this.factor = Math.min(max, this.factor * 2);
        this.options.apply(this.factor);
        this.options.log("warn", "agent over its resource budget; collecting less often", {
          cpu_percent: round(this.cpuPercent, 2),
          cpu_budget_percent: cpuBudget,
          rss_bytes: this.rssBytes,
          rss_budget_bytes: rssBudget,
          interval_factor: this.factor,
        });
      }
      return;
    }
    const calm = this.cpuPercent < 0.7 * cpuBudget && this.rssBytes < 0.7 * rssBudget;
    this.calmChecks = calm ? this.calmChecks + 1 : 0;
    if (this.factor > 1 && this.calmChecks >= 3) {
      this.calmChecks = 0;
      this.factor = Math.max(1, this.factor / 2);
      this.options.apply(this.factor);
      this.options.log("info", "agent back under its resource budget; collecting more often", {
        cpu_percent: round(this.cpuPercent, 2),
        rss_bytes: this.rssBytes,
        interval_factor: this.factor,
      });
    }
  }

  intervalFactor(): number {
    return this.factor;
  }

  families(): Family[] {
    return [
      family(
        "agent_self_cpu_percent",
        "The agent's own CPU, percent of one core.",
        "gauge",
        [],
        [one(round(this.cpuPercent, 3))],
      ),
      family(
        "agent_collection_interval_factor",
        "How much the collection intervals are stretched (1 = as configured).",
        "gauge",
        [],
        [one(this.factor)],
      ),
      family(
        "agent_over_budget",
        "1 while the agent is over its budget for the resource.",
        "gauge",
        ["resource"],
        [one(this.over.cpu ? 1 : 0, { resource: "cpu" }), one(this.over.rss ? 1 : 0, { resource: "rss" })],
      ),
    ];
  }
}
