import os from "node:os";
import path from "node:path";
import type { ParsedSseEvent } from "../src/protocol/sse.js";
import { Channels } from "./alerts/channels.js";
import { AlertManager } from "./alerts/manager.js";
import { commandTargets } from "./alerts/rules.js";
import { AlertStore } from "./alerts/store.js";
import type { AwsIotConnector } from "./aws-iot-connector.js";
import { BulkLogger, type LogSink, TcpRedisLogSink, UpstashLogSink } from "./bulk-logger.js";
import { type AgentConfig, clientIdOf } from "./config.js";
import { EdgeClient } from "./edge-client.js";
import { runCommand } from "./executors/registry.js";
import { sampleHealth } from "./health.js";
import { type Journal, type JournalResult, SqliteJournal } from "./journal.js";
import { EdgeLink } from "./link.js";
import {
  type Collector,
  CpuCollector,
  DiskCollector,
  MemoryCollector,
  NetworkCollector,
  ProcessCollector,
} from "./metrics/collectors.js";
import { MetricsRegistry, MetricsServer } from "./metrics/exporter.js";
import { type Family, family, one } from "./metrics/family.js";
import { CollectorRunner } from "./metrics/runner.js";
import { SelfLimits } from "./metrics/self-limits.js";
import { type DeviceMessage, MqttBridge, type MqttCommand, TOPICS } from "./mqtt-bridge.js";
import { ProcessSupervisor } from "./process-supervisor.js";
import { ProcessWatch } from "./process-watch.js";

interface CommandEventData {
  id: string;
  action: string;
  payload?: Record<string, unknown>;
  timeoutSec?: number;
  attempt?: number;
}

type Level = "debug" | "info" | "warn" | "error";

export interface AgentCounters {
  commandsByOutcome: Record<string, number>;
  duplicatesSkipped: number;
}

export class Agent {
  readonly clientId: string;
  readonly journal: Journal;
  readonly supervisor: ProcessSupervisor;
  readonly edge: EdgeClient;
  logger: BulkLogger | null = null;
  mqtt: MqttBridge | null = null;
  awsIot: AwsIotConnector | null = null;
  link: EdgeLink | null = null;
  readonly counters: AgentCounters = { commandsByOutcome: {}, duplicatesSkipped: 0 };
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly timers: NodeJS.Timeout[] = [];
  private accepting = true;
  private delivering: Promise<void> | null = null;
  private watch: ProcessWatch | null = null;
  private readonly devices = new Map<string, { status: string; at: number }>();
  readonly collectors: CollectorRunner;
  readonly metrics: MetricsRegistry;
  readonly selfLimits: SelfLimits;
  readonly alerts: AlertManager;
  private metricsServer: MetricsServer | null = null;
  /** Where /metrics listens once started (null when metricsPort is 0). */
  metricsAddress: { host: string; port: number } | null = null;

  constructor(
    readonly config: AgentConfig,
    options: { journal?: Journal } = {},
  ) {
    this.clientId = clientIdOf(config.clientKey);
    this.journal = options.journal ?? new SqliteJournal(path.join(config.dataDir, "journal.db"));
    this.supervisor = new ProcessSupervisor(config);
    this.edge = new EdgeClient({ serverUrl: config.serverUrl, clientKey: config.clientKey });
    this.collectors = new CollectorRunner(this.makeCollectors(), {
      failureThreshold: config.collectors.failureThreshold,
      log: (level, msg, fields) => this.log(level, msg, fields),
      onDelay: (name, seconds) => this.metrics.collectorDelay.observe({ collector: name }, seconds),
    });
    this.selfLimits = new SelfLimits({
      cpuPercent: config.selfLimits.cpuPercent,
      rssBytes: config.selfLimits.rssMb * 1024 * 1024,
      checkIntervalSecs: config.selfLimits.checkIntervalSecs,
      apply: (factor) => this.collectors.setIntervalFactor(factor),
      log: (level, msg, fields) => this.log(level, msg, fields),
    });
    this.alerts = new AlertManager({
      rules: config.alertRules,
      channels: new Channels(config.alertChannels),
      store: new AlertStore(path.join(config.dataDir, "alerts.db")),
      families: () => this.families(),
      clientId: this.clientId,
      hostname: os.hostname(),
      evaluateIntervalMs: config.alertEvaluationIntervalSecs * 1000,
      forward: (alerts) => this.edge.post("/api/alerts", { alerts }, 1),
      log: (level, msg, fields) => this.log(level, msg, fields),
    });
    this.metrics = new MetricsRegistry(() => this.families());
  }

  /** Every family the agent knows now: collectors, its own state, self-limits, alerts. */
  families(): Family[] {
    return [
      ...this.collectors.families(),
      // Read live: counters and queue depths cost nothing to read, and a scrape sees them current.
      ...this.ownFamilies(),
      ...this.selfLimits.families(),
      ...this.alerts.families(),
    ];
  }

  log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
    const line = { level, msg, at: new Date().toISOString(), client_id: this.clientId, ...fields };
    (level === "error" || level === "warn" ? process.stderr : process.stdout).write(
      `${JSON.stringify(line)}\n`,
    );
    this.logger?.logSync({
      stream: `fd:logs:${this.clientId}`,
      fields: Object.fromEntries(
        Object.entries(line).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
      ),
    });
  }

  async start(): Promise<void> {
    const sink = await this.makeLogSink();
    if (sink) {
      this.logger = new BulkLogger({
        sink,
        spoolDir: path.join(this.config.dataDir, "spool"),
        batchSize: this.config.logBatchSize,
        flushIntervalMs: this.config.logFlushIntervalSecs * 1000,
        queueLimit: this.config.logQueueLimit,
        maxLen: this.config.logStreamMaxLen,
        onError: (error) =>
          this.log("warn", "redis unreachable; log lines go to the spool", { error: String(error) }),
      });
    }
    this.recoverInterrupted();
    if (this.config.metricsPort > 0) {
      this.metricsServer = new MetricsServer({
        host: this.config.metricsHost,
        port: this.config.metricsPort,
        registry: this.metrics,
        health: () => this.metricsHealth(),
        alerts: (limit) => ({ active: this.alerts.active(), history: this.alerts.history(limit) }),
      });
      try {
        const address = await this.metricsServer.start();
        this.metricsAddress = { host: this.config.metricsHost, port: address.port };
      } catch (error) {
        throw new Error(
          `cannot serve /metrics on ${this.config.metricsHost}:${this.config.metricsPort} (metricsPort / METRICS_PORT): ${(error as Error).message}`,
        );
      }
    }
    this.collectors.start();
    this.selfLimits.start();
    this.alerts.start();
    this.supervisor.on("change", (e) => {
      this.log("info", `process ${e.name} ${e.state}`, { process: e.name, pid: e.pid });
      void this.mqtt?.publish(TOPICS.process(e.name), { ...e, at: Date.now() }).catch(() => {});
    });
    this.supervisor.startAll();
    this.watch = new ProcessWatch(this.config.monitoredProcessNames, 2000);
    this.watch.on("change", (p) => {
      this.log(
        p.running ? "info" : "warn",
        `watched process ${p.name} ${p.running ? "started" : "stopped"}`,
        { ...p },
      );
      void this.mqtt
        ?.publish(TOPICS.process(p.name), {
          name: p.name,
          state: p.running ? "started" : "stopped",
          pid: p.pid,
          at: Date.now(),
        })
        .catch(() => {});
    });
    this.watch.start();

    if (this.config.mqttUrl) await this.startMqtt(this.config.mqttUrl);
    if (this.config.awsIot) {
      // Loaded only when configured: the AWS CRT is a large native module.
      const { AwsIotConnector } = await import("./aws-iot-connector.js");
      const connector = new AwsIotConnector(this.config.awsIot);
      connector.on("device", (m) => this.onDeviceMessage(m));
      this.awsIot = connector;
      if (!(await connector.start()))
        this.log("warn", "AWS IoT endpoint unreachable; the SDK keeps trying", {
          endpoint: this.config.awsIot.endpoint,
        });
    }

    this.link = new EdgeLink({
      serverUrl: this.config.serverUrl,
      clientKey: this.config.clientKey,
      clientId: this.clientId,
      lastEventId: () => this.journal.lastEventId(),
      setLastEventId: (id) => this.journal.setLastEventId(id),
      onEvent: (event) => this.onEdgeEvent(event),
      log: (level, msg, fields) => this.log(level, msg, fields),
    });
    this.link.on("connected", () => {
      this.log("info", "connected to the edge", { server: this.config.serverUrl });
      void this.deliverResults();
      void this.sendHeartbeat();
    });
    this.link.start();

    this.every(this.config.heartbeatIntervalSecs * 1000, () => this.sendHeartbeat());
    this.every(5000, () => this.deliverResults());
    this.every(3600_000, () => {
      this.journal.compact(Date.now() - 7 * 24 * 3600_000);
    });
    if (this.mqtt) this.every(this.config.healthCheckIntervalSecs * 1000, () => this.publishHealth());
    this.log("info", "agent started", {
      data_dir: this.config.dataDir,
      log_sink: sink?.kind ?? "none",
      metrics: this.metricsAddress
        ? `http://${this.metricsAddress.host}:${this.metricsAddress.port}/metrics`
        : "off",
      alert_rules: this.config.alertRules.length,
    });
  }

  /**
   * Stop taking commands, give running ones `shutdownGraceSecs` to finish, fail the rest as
   * interrupted (journaled), flush logs, close connections.
   */
  async stop(): Promise<void> {
    this.accepting = false;
    for (const t of this.timers) clearInterval(t);
    await this.link?.stop();
    if (this.running.size > 0) {
      this.log(
        "info",
        `waiting up to ${this.config.shutdownGraceSecs}s for ${this.running.size} running command(s)`,
      );
      const all = Promise.all([...this.running.values()].map((r) => r.done));
      const grace = new Promise((r) => setTimeout(r, this.config.shutdownGraceSecs * 1000));
      await Promise.race([all, grace]);
      for (const r of this.running.values()) r.controller.abort(new Error("shutdown"));
      await all;
    }
    await this.deliverResults();
    this.collectors.stop();
    this.selfLimits.stop();
    await this.alerts.stop();
    await this.metricsServer?.stop();
    this.watch?.stop();
    await this.supervisor.stopAll();
    await this.mqtt?.stop();
    await this.awsIot?.stop();
    this.log("info", "agent stopped");
    await this.logger?.close();
    this.journal.close();
  }

  runningCount(): number {
    return this.running.size;
  }

  // ---------- commands ----------

  private async onEdgeEvent(event: ParsedSseEvent): Promise<void> {
    if (event.event === "cancel") {
      const { id } = JSON.parse(event.data) as { id: string };
      const r = this.running.get(id);
      if (r) {
        this.log("info", "command canceled by the edge", { command_id: id });
        r.controller.abort(new Error("canceled"));
      }
      return;
    }
    if (event.event !== "command") return;
    const data = JSON.parse(event.data) as CommandEventData;
    // The retried attempt of a command is a new run: journal it under its attempt.
    const journalId = data.attempt && data.attempt > 1 ? `${data.id}#${data.attempt}` : data.id;
    if (!this.accepting) return;
    if (!this.journal.receive(journalId, data.action, Date.now())) {
      this.counters.duplicatesSkipped++;
      this.log("info", "duplicate delivery ignored", { command_id: data.id });
      void this.deliverResults();
      return;
    }
    // Journaled first: the ack means the journal holds it.
    const ack = await this.edge.ack(data.id);
    if (ack.kind !== "ok")
      this.log("warn", "ack not accepted; running anyway", { command_id: data.id, answer: ack });
    this.execute(
      journalId,
      data.id,
      data.action,
      data.payload ?? {},
      (data.timeoutSec ?? 300) * 1000,
      (result) => this.deliverResults().then(() => void result),
    );
  }

  /** Runs a journaled command in the background; `after` is called once its result is journaled. */
  private execute(
    journalId: string,
    commandId: string,
    action: string,
    payload: Record<string, unknown>,
    timeoutMs: number,
    after: (result: JournalResult) => Promise<void>,
  ): void {
    const controller = new AbortController();
    this.journal.start(journalId, Date.now());
    // Alerts this command will predictably trip (restarting X trips "X down") wait for its result.
    this.alerts.hold(journalId, action, commandTargets(action, payload));
    this.log("info", "command started", { command_id: commandId, action });
    const done = runCommand(action, payload, {
      commandId,
      config: this.config,
      signal: controller.signal,
      timeoutMs,
      maxOutputBytes: this.config.maxOutputBytes,
      supervisor: this.supervisor,
      devices: this.mqtt ?? undefined,
      progress: (update) => void this.edge.progress(commandId, update),
    }).then(async (result) => {
      const final: JournalResult =
        controller.signal.aborted && !this.accepting && !result.success
          ? {
              ...result,
              error: {
                code: "INTERRUPTED",
                message: "the agent shut down while the command ran",
                retryable: true,
              },
            }
          : result;
      this.journal.finish(journalId, final, Date.now());
      this.running.delete(journalId);
      const outcome = final.success ? "completed" : (final.error?.code ?? "failed");
      this.alerts.release(journalId, outcome);
      this.counters.commandsByOutcome[outcome] = (this.counters.commandsByOutcome[outcome] ?? 0) + 1;
      this.log(final.success ? "info" : "warn", "command finished", {
        command_id: commandId,
        action,
        outcome,
        duration_ms: final.durationMs,
      });
      await after(final);
    });
    this.running.set(journalId, { controller, done });
  }

  /** Commands that were running when the agent died: never run again, reported as interrupted. */
  private recoverInterrupted(): void {
    for (const entry of this.journal.interrupted()) {
      this.journal.finish(
        entry.commandId,
        {
          success: false,
          error: {
            code: "AGENT_RESTARTED",
            message: "the agent stopped while this command ran; it was not run again",
            retryable: true,
          },
          durationMs: Date.now() - (entry.startedAt ?? entry.receivedAt),
        },
        Date.now(),
      );
      this.log("warn", "command interrupted by an agent restart; reported, not rerun", {
        command_id: entry.commandId,
      });
    }
  }

  /** Sends every journaled result the edge has not taken, oldest first. One pass at a time. */
  deliverResults(): Promise<void> {
    if (this.delivering) return this.delivering;
    // Cleared in a later microtask, so a pass that finds nothing to send cannot leave it set.
    this.delivering = this.deliverPass().finally(() => {
      this.delivering = null;
    });
    return this.delivering;
  }

  private async deliverPass(): Promise<void> {
    for (const entry of this.journal.undelivered()) {
      if (entry.commandId.startsWith("mqtt:")) {
        this.journal.markDelivered(entry.commandId);
        continue;
      }
      const commandId = entry.commandId.split("#")[0]!;
      const answer = await this.edge.result(commandId, entry.result);
      if (answer.kind === "ok") this.journal.markDelivered(entry.commandId);
      else if (answer.kind === "conflict" || answer.kind === "gone") {
        // The edge ended it otherwise (timed out, canceled) or forgot it: nothing more to send.
        this.journal.markDelivered(entry.commandId);
        this.log("warn", "the edge did not take this result", {
          command_id: commandId,
          answer: answer.kind,
          body: answer.body,
        });
      } else {
        // Unreachable or refused for now: keep it journaled and try again later.
        this.log("warn", "result not delivered yet; will retry", { command_id: commandId, answer });
        break;
      }
    }
  }

  private async sendHeartbeat(): Promise<void> {
    if (!this.link?.connected) return;
    const health = await sampleHealth(this.config, this.supervisor, this.watch?.current());
    const stats = this.logger?.statistics();
    await this.edge.heartbeat({
      agentVersion: health.agentVersion,
      hostname: health.hostname,
      uptimeSec: health.uptimeSec,
      load: health.load,
      cpuPercent: health.cpuPercent,
      memoryPercent: health.memoryPercent,
      diskPercent: health.diskPercent,
      processes: health.processes.slice(0, 64),
      queueDepth: stats?.queued ?? 0,
      spoolDepth: stats?.spooledEntries ?? 0,
      runningCommands: this.running.size,
      devices: [...this.devices]
        .slice(0, 256)
        .map(([id, d]) => ({ id, status: d.status.slice(0, 32), at: d.at })),
      undeliveredResults: this.journal.undelivered().length,
      sentAt: Date.now(),
    });
  }

  // ---------- MQTT ----------

  /**
   * MQTT 5 first; a broker that speaks only 3.1.1 (aedes) gets 3.1.1 with the same persistent
   * session. A broker that is down does not hold up the agent: the bridge keeps reconnecting.
   */
  private async startMqtt(url: string): Promise<void> {
    const make = (protocolVersion: 4 | 5) =>
      new MqttBridge({
        url,
        clientId: this.config.mqttClientId ?? `fleetdeck-agent-${this.clientId}`,
        replyTopic: `fleetdeck/agents/${this.clientId}/replies`,
        protocolVersion,
        log: (level, msg, fields) => this.log(level, msg, fields),
      });
    const v5 = make(5);
    if (!(await v5.start())) {
      const v4 = make(4);
      if (await v4.start()) {
        await v5.stop().catch(() => {});
        this.log("warn", "the MQTT broker did not accept MQTT 5; using MQTT 3.1.1", { url });
        this.mqtt = v4;
        this.wireMqtt(v4);
        return;
      }
      await v4.stop().catch(() => {});
      this.log("warn", "MQTT broker unreachable; will keep trying", { url });
    }
    this.mqtt = v5;
    this.wireMqtt(v5);
  }

  private wireMqtt(bridge: MqttBridge): void {
    bridge.on("command", (cmd) => this.onMqttCommand(cmd));
    bridge.on("badCommand", (problem) => {
      void bridge.publish(TOPICS.commandResult, {
        id: null,
        success: false,
        error: { code: "INVALID_COMMAND", message: problem },
        durationMs: 0,
      });
    });
    bridge.on("healthRequest", () => void this.publishHealth());
    bridge.on("device", (m) => this.onDeviceMessage(m));
  }

  /** A device message from either connector: into its per-device stream; status is presence. */
  private onDeviceMessage(m: DeviceMessage): void {
    this.logger?.logSync({
      stream: `fd:dev:${this.clientId}:${m.deviceId}:${m.kind}`,
      fields: { device: m.deviceId, kind: m.kind, payload: m.payload, at: String(Date.now()) },
    });
    if (m.kind === "status") {
      const status = parseStatus(m.payload);
      const before = this.devices.get(m.deviceId)?.status;
      this.devices.set(m.deviceId, { status, at: Date.now() });
      if (before !== status)
        this.log("info", `device ${m.deviceId} is ${status}`, { device: m.deviceId, status });
    }
  }

  private onMqttCommand(cmd: MqttCommand): void {
    const journalId = `mqtt:${cmd.id}`;
    if (!this.accepting) return;
    if (!this.journal.receive(journalId, cmd.action, Date.now())) {
      this.counters.duplicatesSkipped++;
      return;
    }
    this.execute(journalId, cmd.id, cmd.action, cmd.payload, cmd.timeoutSec * 1000, async (result) => {
      await this.mqtt?.publish(TOPICS.commandResult, { id: cmd.id, ...result }).catch(() => {});
    });
  }

  private async publishHealth(): Promise<void> {
    if (!this.mqtt?.connected) return;
    const health = await sampleHealth(this.config, this.supervisor, this.watch?.current());
    await this.mqtt
      .publish(TOPICS.healthReport, {
        clientId: this.clientId,
        ...health,
        devices: Object.fromEntries(this.devices),
      })
      .catch(() => {});
  }

  // ---------- metrics ----------

  private makeCollectors(): Collector[] {
    const c = this.config.collectors;
    const platform = c.platform;
    const list: Collector[] = [];
    if (c.cpu.enabled) list.push(new CpuCollector(c.cpu.intervalSecs, platform));
    if (c.memory.enabled) list.push(new MemoryCollector(c.memory.intervalSecs, platform));
    if (c.disk.enabled) list.push(new DiskCollector(c.disk.intervalSecs, platform));
    if (c.network.enabled) list.push(new NetworkCollector(c.network.intervalSecs, platform));
    if (c.processes.enabled)
      list.push(new ProcessCollector(c.processes.intervalSecs, c.processes.topN, platform));
    return list;
  }

  /** The agent's own state: queues, spool, drops, reconnects, commands, watched processes. */
  private ownFamilies(): Family[] {
    const stats = this.logger?.statistics();
    const processes = [
      ...(this.watch?.current() ?? []),
      ...Object.keys(this.config.processes).map((name) => ({
        name,
        running: this.supervisor.pid(name) !== null,
      })),
    ];
    return [
      family(
        "agent_log_queue_depth",
        "Log lines waiting to be sent.",
        "gauge",
        [],
        [one(stats?.queued ?? 0)],
      ),
      family(
        "agent_log_spool_entries",
        "Log lines spooled to disk while Redis is unreachable.",
        "gauge",
        [],
        [one(stats?.spooledEntries ?? 0)],
      ),
      family("agent_log_spool_bytes", "Bytes in the log spool.", "gauge", [], [one(stats?.spoolBytes ?? 0)]),
      family(
        "agent_log_lines_dropped_total",
        "Log lines dropped (queue or spool full).",
        "counter",
        [],
        [one(stats?.dropped ?? 0)],
      ),
      family(
        "agent_log_lines_written_total",
        "Log lines written to Redis.",
        "counter",
        [],
        [one(stats?.written ?? 0)],
      ),
      family(
        "agent_sse_reconnects_total",
        "Reconnects of the command stream from the edge.",
        "counter",
        [],
        [one(this.link?.reconnects ?? 0)],
      ),
      family(
        "agent_edge_connected",
        "1 while the command stream from the edge is open.",
        "gauge",
        [],
        [one(this.link?.connected ? 1 : 0)],
      ),
      family(
        "agent_commands_total",
        "Commands finished, by outcome (completed or the error code).",
        "counter",
        ["outcome"],
        Object.entries(this.counters.commandsByOutcome).map(([outcome, n]) => one(n, { outcome })),
      ),
      family("agent_commands_running", "Commands running now.", "gauge", [], [one(this.running.size)]),
      family(
        "agent_command_duplicates_skipped_total",
        "Repeated deliveries not run again.",
        "counter",
        [],
        [one(this.counters.duplicatesSkipped)],
      ),
      family(
        "agent_results_undelivered",
        "Results journaled but not yet taken by the edge.",
        "gauge",
        [],
        [one(this.journal.undelivered().length)],
      ),
      family(
        "agent_mqtt_connected",
        "1 while connected to the MQTT broker.",
        "gauge",
        [],
        [one(this.mqtt?.connected ? 1 : 0)],
      ),
      family(
        "agent_mqtt_reconnects_total",
        "Reconnects to the MQTT broker.",
        "counter",
        [],
        [one(this.mqtt?.reconnects ?? 0)],
      ),
      family(
        "fleetdeck_process_up",
        "1 while a watched or supervised process runs.",
        "gauge",
        ["name"],
        processes.map((p) => one(p.running ? 1 : 0, { name: p.name })),
      ),
    ];
  }

  private metricsHealth(): { healthy: boolean; body: Record<string, unknown> } {
    const states = this.collectors.states();
    return {
      // Unhealthy only when no collector works at all; one broken collector is degraded.
      healthy: states.length === 0 || states.some((s) => s.status === "healthy"),
      body: {
        edgeConnected: this.link?.connected ?? false,
        intervalFactor: this.collectors.intervalFactor(),
        collectors: Object.fromEntries(
          states.map((s) => [
            s.name,
            { status: s.status, lastSuccessAt: s.lastSuccessAt, lastError: s.lastError },
          ]),
        ),
        alertsFiring: this.alerts.active().filter((a) => a.state === "firing").length,
      },
    };
  }

  // ---------- helpers ----------

  /** The client library for the configured sink is loaded only when that sink is used. */
  private async makeLogSink(): Promise<LogSink | null> {
    if (this.config.upstashRedisRestUrl && this.config.upstashRedisRestToken) {
      const { Redis: UpstashRedis } = await import("@upstash/redis");
      return new UpstashLogSink(
        new UpstashRedis({
          url: this.config.upstashRedisRestUrl,
          token: this.config.upstashRedisRestToken,
          retry: { retries: 1, backoff: () => 100 },
          enableTelemetry: false,
        }),
      );
    }
    if (this.config.redisUrl) {
      const { Redis: IORedis } = await import("ioredis");
      const redis = new IORedis(this.config.redisUrl, {
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        retryStrategy: (times) => Math.min(200 * times, 5000),
      });
      redis.on("error", () => {});
      return new TcpRedisLogSink(redis);
    }
    return null;
  }

  private every(ms: number, task: () => Promise<void> | void): void {
    const t = setInterval(() => {
      Promise.resolve(task()).catch((error: unknown) =>
        this.log("warn", "periodic task failed", { error: String(error) }),
      );
    }, ms);
    t.unref();
    this.timers.push(t);
  }
}

function parseStatus(payload: string): string {
  try {
    const v = JSON.parse(payload) as { status?: unknown; online?: unknown } | string;
    if (typeof v === "string") return v;
    if (typeof v.status === "string") return v.status;
    if (typeof v.online === "boolean") return v.online ? "online" : "offline";
  } catch {}
  return payload.trim().slice(0, 32) || "unknown";
}
