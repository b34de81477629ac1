/**
 * Evaluates the agent's alert rules against the latest collector samples, on the agent, so
 * alerts fire and resolve while the edge is unreachable. Every change goes to the local store
 * in one transaction; from there forwards reach the edge (with the alert's own timestamps) and
 * notifications reach the channels, each with retries, whenever they can.
 */
import { ulid } from "../../src/domain/ids.js";
import type { EdgeAnswer } from "../edge-client.js";
import type { Family, Labels } from "../metrics/family.js";
import type { AlertNotification, Channels } from "./channels.js";
import { type Effect, type InstanceState, initialState, step } from "./engine.js";
import { type AlertRule, compare, evaluate } from "./rules.js";
import type { AlertStore } from "./store.js";

export interface AlertManagerOptions {
  rules: AlertRule[];
  channels: Channels;
  store: AlertStore;
  families: () => Family[];
  clientId: string;
  hostname: string;
  evaluateIntervalMs: number;
  /** Sends forwards to the edge (POST /api/alerts). */
  forward: (alerts: Record<string, unknown>[]) => Promise<EdgeAnswer>;
  log: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
  now?: () => number;
  maxNotificationAttempts?: number;
  /** First retry delay of a failed notification; it doubles per attempt, up to 5 minutes. */
  retryBaseMs?: number;
}

interface Instance {
  key: string;
  rule: AlertRule;
  labels: Labels;
  state: InstanceState;
}

export interface ActiveAlert {
  alertId: string | null;
  rule: string;
  state: "pending" | "firing";
  severity: string;
  labels: Labels;
  value: number | null;
  since: number;
  flapping: boolean;
}

export class AlertManager {
  private readonly instances = new Map<string, Instance>();
  private readonly holds = new Map<string, { targets: string[]; action: string }>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly now: () => number;
  private readonly sending = new SerialPasses(() => this.sendPass());
  private readonly forwarding = new SerialPasses(() => this.forwardPass());

  constructor(private readonly options: AlertManagerOptions) {
    this.now = options.now ?? Date.now;
    const rules = new Map(options.rules.map((r) => [r.name, r]));
    for (const saved of options.store.instances()) {
      const rule = rules.get(saved.rule);
      // A rule removed from the config takes its saved alerts with it.
      if (rule)
        this.instances.set(saved.key, { key: saved.key, rule, labels: saved.labels, state: saved.state });
    }
    for (const rule of options.rules) {
      for (const name of rule.channels ?? []) {
        if (!options.channels.names().includes(name))
          throw new Error(`alert rule ${rule.name}: no channel named "${name}" in alertChannels`);
      }
    }
  }

  start(): void {
    const every = (ms: number, task: () => Promise<void> | void) => {
      const t = setInterval(() => {
        Promise.resolve(task()).catch((error: unknown) =>
          this.options.log("warn", "alert task failed", { error: String(error) }),
        );
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.options.evaluateIntervalMs, () => this.evaluate());
    every(1000, () => this.sendNotifications());
    every(5000, () => this.forward());
    every(3600_000, () => this.options.store.compact(this.now() - 30 * 24 * 3600_000));
  }

  /** Stops the timers, lets passes in flight finish, tries the edge once more, closes the store. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.sending.idle();
    await this.forward().catch(() => {});
    this.options.channels.close();
    this.options.store.close();
  }

  /** One evaluation of every rule against the latest samples. */
  evaluate(): void {
    const now = this.now();
    const families = new Map(this.options.families().map((f) => [f.name, f]));
    for (const rule of this.options.rules) {
      const seen = new Set<string>();
      for (const { labels: seriesLabels, value } of evaluate(rule.expression, families)) {
        const labels = { ...seriesLabels, ...rule.labels };
        const key = `${rule.name}|${JSON.stringify(Object.entries(labels).sort())}`;
        seen.add(key);
        this.observe(rule, key, labels, value, now);
      }
      // Series that disappeared: their alerts see "no data", which is "condition not met".
      for (const inst of [...this.instances.values()]) {
        if (inst.rule === rule && !seen.has(inst.key)) this.observe(rule, inst.key, inst.labels, null, now);
      }
    }
    void this.sendNotifications();
    void this.forward();
  }

  private observe(rule: AlertRule, key: string, labels: Labels, value: number | null, now: number): void {
    const inst = this.instances.get(key) ?? { key, rule, labels, state: initialState() };
    const held =
      rule.target !== undefined && [...this.holds.values()].some((h) => h.targets.includes(rule.target!));
    const { state, effects } = step(
      rule,
      inst.state,
      { now, value, conditionMet: value !== null && compare(value, rule.op, rule.threshold), held },
      () => `al_${ulid(now)}`,
    );
    // A disk write only when the state machine moved: a new value alone is not worth one (hosts
    // run on SD cards), and a series that stays inactive leaves nothing to store.
    const significant = (s: InstanceState) => JSON.stringify({ ...s, lastValue: null });
    if (effects.length > 0 || significant(state) !== significant(inst.state))
      this.options.store.apply({
        key,
        rule: rule.name,
        severity: rule.severity,
        labels,
        state,
        effects,
        forwardPayload: (e) => this.forwardPayload(rule, labels, e),
        notifyPayload: (e) => this.notification(rule, labels, e),
        channels: rule.channels ?? this.options.channels.names(),
        now,
      });
    inst.state = state;
    if (state.state === "inactive" && state.changes.length === 0 && state.lastNotifiedAt === null)
      this.instances.delete(key);
    else this.instances.set(key, inst);
    for (const e of effects) {
      if (e.kind === "forward")
        this.options.log(
          e.event === "triggered" ? "warn" : "info",
          `alert ${rule.name} ${e.event === "triggered" ? "firing" : "resolved"}`,
          {
            alert_id: e.alertId,
            rule: rule.name,
            severity: rule.severity,
            value: e.value,
            labels,
          },
        );
    }
  }

  /** A command is about to act on these targets: their rules' alerts wait for its result. */
  hold(commandId: string, action: string, targets: string[]): void {
    const affected = this.options.rules.filter((r) => r.target && targets.includes(r.target));
    if (affected.length === 0) return;
    this.holds.set(commandId, { targets, action });
    for (const rule of affected) {
      this.options.store.addHistory({
        rule: rule.name,
        alertId: null,
        severity: rule.severity,
        labels: rule.labels,
        state: "held",
        value: null,
        at: this.now(),
        triggeredAt: null,
        resolvedAt: null,
        note: `held while command ${commandId} (${action}) runs on ${rule.target}`,
      });
    }
  }

  release(commandId: string, outcome: string): void {
    const hold = this.holds.get(commandId);
    if (!hold) return;
    this.holds.delete(commandId);
    for (const rule of this.options.rules.filter((r) => r.target && hold.targets.includes(r.target))) {
      this.options.store.addHistory({
        rule: rule.name,
        alertId: null,
        severity: rule.severity,
        labels: rule.labels,
        state: "released",
        value: null,
        at: this.now(),
        triggeredAt: null,
        resolvedAt: null,
        note: `command ${commandId} finished (${outcome})`,
      });
    }
    this.evaluate();
  }

  /** The local history, newest first: pending, firing, resolved, held, released, flapping, stable. */
  history(limit = 100): ReturnType<AlertStore["history"]> {
    return this.options.store.history({ limit });
  }

  active(): ActiveAlert[] {
    return [...this.instances.values()]
      .filter((i) => i.state.state !== "inactive")
      .map((i) => ({
        alertId: i.state.alertId,
        rule: i.rule.name,
        state: i.state.state as "pending" | "firing",
        severity: i.rule.severity,
        labels: i.labels,
        value: i.state.lastValue,
        since: (i.state.state === "firing" ? i.state.firedAt : i.state.activeSince) ?? 0,
        flapping: i.state.flapping,
      }));
  }

  /** Sends due notifications; a failure waits retryBaseMs * 2^(attempts-1) (at most 5 minutes). */
  sendNotifications(): Promise<void> {
    return this.sending.run();
  }

  private async sendPass(): Promise<void> {
    const max = this.options.maxNotificationAttempts ?? 8;
    for (const row of this.options.store.dueNotifications(this.now())) {
      try {
        await this.options.channels.send(
          row.channel,
          row.payload as unknown as AlertNotification,
          `ntf_${row.id}`,
        );
        this.options.store.notificationSent(row.id);
      } catch (error) {
        const attempts = row.attempts + 1;
        const message = error instanceof Error ? error.message : String(error);
        const nextAt =
          attempts >= max
            ? null
            : this.now() + Math.min(300_000, (this.options.retryBaseMs ?? 1000) * 2 ** (attempts - 1));
        this.options.store.notificationFailed(row.id, message, nextAt);
        this.options.log(
          nextAt === null ? "error" : "warn",
          nextAt === null ? "alert notification given up" : "alert notification failed; will retry",
          {
            channel: row.channel,
            attempts,
            error: message,
          },
        );
      }
    }
  }

  /** Sends waiting forwards to the edge, oldest first, 100 at a time. */
  forward(): Promise<void> {
    return this.forwarding.run();
  }

  private async forwardPass(): Promise<void> {
    for (;;) {
      const rows = this.options.store.pendingForwards(100);
      if (rows.length === 0) return;
      const answer = await this.options.forward(rows.map((r) => r.payload));
      if (answer.kind === "ok") {
        this.options.store.removeForwards(rows.at(-1)!.id);
        continue;
      }
      if (answer.kind === "refused" && answer.status >= 400 && answer.status < 500 && answer.status !== 429) {
        // A permanent refusal would block every later alert behind it: log it whole and move on.
        this.options.log("error", "the edge refused alert forwards; dropped", {
          status: answer.status,
          body: answer.body,
          alerts: rows.map((r) => r.payload),
        });
        this.options.store.removeForwards(rows.at(-1)!.id);
        continue;
      }
      return; // unreachable or busy: the rows wait for the next try
    }
  }

  families(): Family[] {
    const count = (state: string) =>
      ["info", "warning", "critical"].map((severity) => ({
        labels: { severity },
        value: [...this.instances.values()].filter(
          (i) => i.state.state === state && i.rule.severity === severity,
        ).length,
      }));
    const n = this.options.store.notificationCounts();
    return [
      {
        name: "agent_alerts_firing",
        help: "Alerts firing, by severity.",
        type: "gauge",
        labelNames: ["severity"],
        series: count("firing"),
      },
      {
        name: "agent_alerts_pending",
        help: "Alerts pending, by severity.",
        type: "gauge",
        labelNames: ["severity"],
        series: count("pending"),
      },
      {
        name: "agent_alert_notifications",
        help: "Alert notifications by status (pending, sent, dead).",
        type: "gauge",
        labelNames: ["status"],
        series: ["pending", "sent", "dead"].map((status) => ({ labels: { status }, value: n[status] ?? 0 })),
      },
      {
        name: "agent_alert_forwards_waiting",
        help: "Alert changes not yet taken by the edge.",
        type: "gauge",
        labelNames: [],
        series: [{ labels: {}, value: this.options.store.forwardsWaiting() }],
      },
    ];
  }

  private forwardPayload(
    rule: AlertRule,
    labels: Labels,
    e: Extract<Effect, { kind: "forward" }>,
  ): Record<string, unknown> {
    return {
      alertId: e.alertId,
      rule: rule.name,
      state: e.event === "triggered" ? "firing" : "resolved",
      severity: rule.severity,
      labels,
      value: e.value === null || !Number.isFinite(e.value) ? null : e.value,
      summary: rule.summary ?? null,
      triggeredAt: e.triggeredAt,
      resolvedAt: e.resolvedAt,
    };
  }

  private notification(
    rule: AlertRule,
    labels: Labels,
    e: Extract<Effect, { kind: "notify" }>,
  ): AlertNotification & Record<string, unknown> {
    return {
      kind: e.event === "triggered" ? "alert.triggered" : "alert.resolved",
      alertId: e.alertId,
      rule: rule.name,
      severity: rule.severity,
      state: e.event === "triggered" ? "firing" : "resolved",
      value: e.value,
      op: rule.op,
      threshold: rule.threshold,
      expr: rule.expression.text,
      labels,
      summary: rule.summary ?? null,
      clientId: this.options.clientId,
      hostname: this.options.hostname,
      triggeredAt: new Date(e.triggeredAt).toISOString(),
      resolvedAt: e.resolvedAt === null ? null : new Date(e.resolvedAt).toISOString(),
    };
  }
}

/**
 * One pass at a time: a call while a pass runs asks for one more pass after it, and waits for
 * that one too, so whatever the caller just stored is covered when its promise resolves.
 */
class SerialPasses {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(private readonly pass: () => Promise<void>) {}

  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  async idle(): Promise<void> {
    await this.running?.catch(() => {});
  }
}
