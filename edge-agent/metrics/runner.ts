/**
 * Runs each collector on its own interval, independently: a slow or failing collector delays
 * and breaks nothing else. Samples are due on a fixed grid (start + k * interval), so lateness
 * is measurable and does not accumulate. A collector that fails `failureThreshold` times in a
 * row turns unhealthy (logged once, agent_collector_status 0) and keeps being tried; its first
 * success turns it healthy again.
 */
import type { Collector } from "./collectors.js";
import { type Family, family, one } from "./family.js";

export type CollectorStatus = "healthy" | "unhealthy";

export interface CollectorState {
  name: string;
  status: CollectorStatus;
  intervalSecs: number;
  consecutiveFailures: number;
  errorsTotal: number;
  lastSuccessAt: number | null;
  lastDurationSecs: number;
  lastError: string | null;
  samplesTotal: number;
}

export interface RunnerOptions {
  failureThreshold?: number;
  /** A collection taking longer than this counts as a failure (its result is dropped). */
  timeoutMs?: number;
  log?: (level: "info" | "warn", msg: string, fields?: Record<string, unknown>) => void;
  /** Called with each collector's lateness (seconds past its due time) when it starts. */
  onDelay?: (collector: string, seconds: number) => void;
  /** Called after every successful sample. */
  onSample?: (collector: string, families: Family[]) => void;
}

interface Slot {
  collector: Collector;
  state: CollectorState;
  timer: NodeJS.Timeout | null;
  due: number;
  running: boolean;
}

export class CollectorRunner {
  private readonly slots: Slot[];
  private readonly latest = new Map<string, Family[]>();
  private factor = 1;
  private stopped = true;
  private readonly failureThreshold: number;
  private readonly timeoutMs: number;

  constructor(
    collectors: Collector[],
    private readonly options: RunnerOptions = {},
  ) {
    this.failureThreshold = options.failureThreshold ?? 3;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.slots = collectors.map((collector) => ({
      collector,
      timer: null,
      due: 0,
      running: false,
      state: {
        name: collector.name,
        status: "healthy",
        intervalSecs: collector.intervalSecs,
        consecutiveFailures: 0,
        errorsTotal: 0,
        lastSuccessAt: null,
        lastDurationSecs: 0,
        lastError: null,
        samplesTotal: 0,
      },
    }));
  }

  start(): void {
    this.stopped = false;
    const now = Date.now();
    for (const slot of this.slots) {
      slot.due = now;
      this.arm(slot);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const slot of this.slots) if (slot.timer) clearTimeout(slot.timer);
  }

  /** Stretches every interval by `factor` (self-limits); applies from each collector's next sample. */
  setIntervalFactor(factor: number): void {
    this.factor = factor;
    for (const slot of this.slots) slot.state.intervalSecs = slot.collector.intervalSecs * factor;
  }

  intervalFactor(): number {
    return this.factor;
  }

  states(): CollectorState[] {
    return this.slots.map((s) => ({ ...s.state }));
  }

  /** The latest families of every collector plus the runner's own. */
  families(): Family[] {
    return [...[...this.latest.values()].flat(), ...this.ownFamilies()];
  }

  /** Samples every collector once now (tests, and the first scrape before any interval passed). */
  async collectAll(): Promise<void> {
    await Promise.all(this.slots.map((slot) => this.runOnce(slot, Date.now())));
  }

  private arm(slot: Slot): void {
    if (this.stopped) return;
    const delay = Math.max(0, slot.due - Date.now());
    slot.timer = setTimeout(() => void this.tick(slot), delay);
    slot.timer.unref();
  }

  private async tick(slot: Slot): Promise<void> {
    const started = Date.now();
    this.options.onDelay?.(slot.collector.name, Math.max(0, started - slot.due) / 1000);
    await this.runOnce(slot, started);
    const interval = slot.collector.intervalSecs * this.factor * 1000;
    slot.due += interval;
    // Fell more than one interval behind (machine suspended, event loop stalled): skip ahead
    // rather than fire a burst of catch-up samples.
    if (slot.due < Date.now()) slot.due = Date.now() + interval;
    this.arm(slot);
  }

  private async runOnce(slot: Slot, started: number): Promise<void> {
    if (slot.running) return;
    slot.running = true;
    const state = slot.state;
    let timer: NodeJS.Timeout | undefined;
    try {
      const families = await Promise.race([
        slot.collector.collect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`collection took longer than ${this.timeoutMs} ms`)),
            this.timeoutMs,
          );
        }),
      ]);
      this.latest.set(slot.collector.name, families);
      state.lastSuccessAt = Date.now();
      state.samplesTotal++;
      state.consecutiveFailures = 0;
      state.lastError = null;
      if (state.status === "unhealthy") {
        state.status = "healthy";
        this.options.log?.("info", `collector ${state.name} recovered`, { collector: state.name });
      }
      this.options.onSample?.(slot.collector.name, families);
    } catch (error) {
      state.errorsTotal++;
      state.consecutiveFailures++;
      state.lastError = error instanceof Error ? error.message : String(error);
      if (state.status === "healthy" && state.consecutiveFailures >= this.failureThreshold) {
        state.status = "unhealthy";
        this.options.log?.("warn", `collector ${state.name} is unhealthy`, {
          collector: state.name,
          failures: state.consecutiveFailures,
          error: state.lastError,
        });
      }
    } finally {
      clearTimeout(timer);
      state.lastDurationSecs = (Date.now() - started) / 1000;
      slot.running = false;
    }
  }

  private ownFamilies(): Family[] {
    const per = (pick: (s: CollectorState) => number) =>
      this.slots.map((s) => one(pick(s.state), { collector: s.state.name }));
    return [
      family(
        "agent_collector_last_success_timestamp",
        "Unix time (seconds) of each collector's last successful sample.",
        "gauge",
        ["collector"],
        per((s) => (s.lastSuccessAt ?? 0) / 1000),
      ),
      family(
        "agent_collector_errors_total",
        "Failed samples per collector.",
        "counter",
        ["collector"],
        per((s) => s.errorsTotal),
      ),
      family(
        "agent_collector_duration_seconds",
        "How long each collector's last sample took.",
        "gauge",
        ["collector"],
        per((s) => s.lastDurationSecs),
      ),
      family(
        "agent_collector_status",
        "1 while a collector is healthy, 0 after it failed too many times in a row.",
        "gauge",
        ["collector"],
        per((s) => (s.status === "healthy" ? 1 : 0)),
      ),
      family(
        "agent_collector_interval_seconds",
        "Each collector's current interval (longer while the agent is over its budgets).",
        "gauge",
        ["collector"],
        per((s) => s.intervalSecs),
      ),
    ];
  }
}
