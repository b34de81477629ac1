/**
 * /metrics (Prometheus text format, rendered by prom-client) and /healthz on METRICS_PORT.
 * Collectors sample on their own schedule; a scrape only renders their latest values, so a
 * scrape costs the same whatever the collectors cost and never waits on /proc.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { http } from "../builtins.js";
import { type Family, family, one } from "./family.js";
import * as client from "./prom.js";

const LOOP_RESOLUTION_MS = 100;

interface LoopWindow {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export class MetricsRegistry {
  readonly registry = new client.Registry();
  private readonly metrics = new Map<string, client.Gauge | client.Counter>();
  readonly collectorDelay: client.Histogram<"collector">;
  readonly scrapeDuration: client.Histogram;

  /**
   * Event-loop delay, sampled every 100 ms (a finer timer costs the agent more CPU than all its
   * collectors), in windows of 10 s. A scrape reads the current window together with the last
   * complete one, so one that comes just after a new window starts still sees the last 10 s.
   */
  private readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  private loopWindowStart = performance.now();
  private previousLoopWindow: LoopWindow = { count: 0, p50: 0, p99: 0, max: 0 };

  constructor(private readonly source: () => Family[]) {
    // prom-client's default metrics are left out on purpose: a 10 ms event-loop timer and ~40
    // series cost more CPU than all collectors together; these few say what matters.
    this.loopDelay.enable();
    this.collectorDelay = new client.Histogram({
      name: "agent_collector_delay_seconds",
      help: "How late each sample started after its due time.",
      labelNames: ["collector"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    this.scrapeDuration = new client.Histogram({
      name: "agent_metrics_render_seconds",
      help: "Time to render /metrics.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [this.registry],
    });
  }

  /** The agent process itself, named as every Prometheus client library names it. */
  private processFamilies(): Family[] {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    const loop = this.loopWindow();
    const out = [
      family(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        "counter",
        [],
        [one((cpu.user + cpu.system) / 1e6)],
      ),
      family("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", [], [one(mem.rss)]),
      family(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
        [],
        [one(Math.round(Date.now() / 1000 - process.uptime()))],
      ),
      family("nodejs_heap_used_bytes", "V8 heap in use.", "gauge", [], [one(mem.heapUsed)]),
      family(
        "nodejs_eventloop_delay_p50_seconds",
        "Event-loop delay p50 over the last 10 to 20 s.",
        "gauge",
        [],
        [one(loop.p50)],
      ),
      family(
        "nodejs_eventloop_delay_p99_seconds",
        "Event-loop delay p99 over the last 10 to 20 s.",
        "gauge",
        [],
        [one(loop.p99)],
      ),
      family(
        "nodejs_eventloop_delay_max_seconds",
        "Event-loop delay max over the last 10 to 20 s.",
        "gauge",
        [],
        [one(loop.max)],
      ),
    ];
    return out;
  }

  /**
   * The current and the last complete window, in seconds of delay. p99 and max are those of the
   * worse window (an upper bound for the two together); p50 is that of the window with more samples.
   */
  private loopWindow(): LoopWindow {
    // The histogram holds each timer interval, resolution included: the delay is the excess.
    const excess = (v: number) => (Number.isFinite(v) ? Math.max(0, v - LOOP_RESOLUTION_MS * 1e6) / 1e9 : 0);
    const h = this.loopDelay;
    const current: LoopWindow =
      h.count === 0
        ? { count: 0, p50: 0, p99: 0, max: 0 }
        : {
            count: h.count,
            p50: excess(h.percentile(50)),
            p99: excess(h.percentile(99)),
            max: excess(h.max),
          };
    const previous = this.previousLoopWindow;
    if (performance.now() - this.loopWindowStart >= 10_000) {
      this.previousLoopWindow = current;
      h.reset();
      this.loopWindowStart = performance.now();
    }
    return {
      count: current.count + previous.count,
      p50: (current.count >= previous.count ? current : previous).p50,
      p99: Math.max(current.p99, previous.p99),
      max: Math.max(current.max, previous.max),
    };
  }

  /** Copies the latest families into prom-client; series that disappeared are dropped. */
  private sync(): void {
    for (const f of [...this.source(), ...this.processFamilies()]) {
      let metric = this.metrics.get(f.name);
      if (!metric) {
        const config = {
          name: f.name,
          help: f.help,
          labelNames: [...f.labelNames],
          registers: [this.registry],
        };
        metric = f.type === "counter" ? new client.Counter(config) : new client.Gauge(config);
        this.metrics.set(f.name, metric);
      }
      metric.reset();
      if (metric instanceof client.Counter) {
        for (const s of f.series) metric.inc(s.labels, Math.max(0, s.value));
      } else {
        for (const s of f.series) metric.set(s.labels, s.value);
      }
    }
  }

  async render(): Promise<string> {
    const end = this.scrapeDuration.startTimer();
    this.sync();
    const text = await this.registry.metrics();
    end();
    return text;
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

export interface MetricsServerOptions {
  host: string;
  port: number;
  registry: MetricsRegistry;
  health: () => { healthy: boolean; body: Record<string, unknown> };
  /** GET /alerts: the agent's active alerts and local history (holds included), as JSON. */
  alerts?: (limit: number) => unknown;
}

export class MetricsServer {
  private server: Server | null = null;

  constructor(private readonly options: MetricsServerOptions) {}

  async start(): Promise<AddressInfo> {
    const server = http.createServer((req, res) => {
      const url = (req.url ?? "/").split("?")[0];
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD" }).end();
        return;
      }
      if (url === "/metrics") {
        this.options.registry.render().then(
          (text) => {
            res.writeHead(200, { "content-type": this.options.registry.contentType });
            res.end(req.method === "HEAD" ? undefined : text);
          },
          (error: unknown) => {
            res.writeHead(500, { "content-type": "text/plain" }).end(`render failed: ${String(error)}\n`);
          },
        );
        return;
      }
      if (url === "/healthz") {
        const { healthy, body } = this.options.health();
        res.writeHead(healthy ? 200 : 503, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: healthy ? "ok" : "unhealthy", ...body }));
        return;
      }
      if (url === "/alerts" && this.options.alerts) {
        const limit = Math.min(
          1000,
          Math.max(1, Number(new URL(req.url ?? "/", "http://x").searchParams.get("limit")) || 100),
        );
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(this.options.alerts(limit)));
        return;
      }
      res
        .writeHead(404, { "content-type": "text/plain" })
        .end("not found: try /metrics, /healthz or /alerts\n");
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
