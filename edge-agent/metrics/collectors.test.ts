import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../dev/local-cloud.js";
import {
  type Collector,
  CpuCollector,
  DiskCollector,
  MemoryCollector,
  NetworkCollector,
  type Platform,
  ProcessCollector,
} from "./collectors.js";
import { MetricsRegistry, MetricsServer } from "./exporter.js";
import { type Family, RateTracker } from "./family.js";
import { parseDiskstats, parsePidStat, parseProcStat } from "./procfs.js";
import { CollectorRunner } from "./runner.js";
import { SelfLimits } from "./self-limits.js";

const execFileAsync = promisify(execFile);
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

function byName(families: Family[]): Map<string, Family> {
  return new Map(families.map((f) => [f.name, f]));
}

function values(f: Family | undefined): number[] {
  return (f?.series ?? []).map((s) => s.value);
}

/** Two samples a little apart, so rates and percentages have something to compare with. */
async function twoSamples(c: Collector): Promise<Map<string, Family>> {
  await c.collect();
  // Some work between the samples, so CPU and process deltas are not all zero.
  const until = Date.now() + 300;
  while (Date.now() < until) Math.sqrt(Math.random());
  return byName(await c.collect());
}

const platforms: Platform[] = process.platform === "linux" ? ["linux", "portable"] : ["portable"];

describe.each(platforms)("collectors on the live machine (%s)", (platform) => {
  it("cpu: percentages in 0..100, per-core series, load averages", async () => {
    const f = await twoSamples(new CpuCollector(5, platform));
    const usage = f.get("fleetdeck_cpu_usage_percent");
    expect(usage?.series.map((s) => s.labels.mode)).toEqual(
      expect.arrayContaining(["user", "system", "idle", "busy"]),
    );
    for (const v of [...values(usage), ...values(f.get("fleetdeck_cpu_core_busy_percent"))]) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(100);
    }
    const cores = new Set(f.get("node_cpu_seconds_total")?.series.map((s) => s.labels.cpu));
    expect(cores.size).toBeGreaterThanOrEqual(1);
    expect(f.get("fleetdeck_cpu_core_busy_percent")?.series).toHaveLength(cores.size);
    for (const v of values(f.get("node_cpu_seconds_total"))) expect(v).toBeGreaterThanOrEqual(0);
    for (const name of ["node_load1", "node_load5", "node_load15"]) {
      expect(values(f.get(name))[0]).toBeGreaterThanOrEqual(0);
    }
  });

  it("memory: totals, used within total, percentages in 0..100", async () => {
    const f = byName(await new MemoryCollector(5, platform).collect());
    const total = values(f.get("fleetdeck_memory_total_bytes"))[0]!;
    expect(total).toBeGreaterThan(64 * 1024 * 1024);
    const used = values(f.get("fleetdeck_memory_used_bytes"))[0]!;
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThanOrEqual(total);
    expect(values(f.get("fleetdeck_memory_available_bytes"))[0]).toBeLessThanOrEqual(total);
    for (const name of ["fleetdeck_memory_used_percent", "fleetdeck_swap_used_percent"]) {
      const v = values(f.get(name))[0]!;
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(100);
    }
  });

  it("disk: the root filesystem's usage, non-negative I/O rates", async () => {
    const f = await twoSamples(new DiskCollector(15, platform));
    const sizes = f.get("node_filesystem_size_bytes")?.series ?? [];
    expect(sizes.length).toBeGreaterThan(0);
    for (const s of sizes) expect(s.value).toBeGreaterThan(0);
    for (const v of values(f.get("fleetdeck_filesystem_used_percent"))) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(100);
    }
    for (const name of [
      "fleetdeck_disk_read_bytes_per_second",
      "fleetdeck_disk_write_bytes_per_second",
      "fleetdeck_disk_read_iops",
      "fleetdeck_disk_write_iops",
    ]) {
      for (const v of values(f.get(name))) expect(v).toBeGreaterThanOrEqual(0);
    }
  });

  it("network: per-interface counters and rates, TCP states counted", async () => {
    const f = await twoSamples(new NetworkCollector(5, platform));
    const devices = f.get("node_network_receive_bytes_total")?.series.map((s) => s.labels.device) ?? [];
    expect(devices.length).toBeGreaterThan(0);
    for (const name of [
      "fleetdeck_network_receive_bytes_per_second",
      "fleetdeck_network_transmit_bytes_per_second",
    ]) {
      for (const v of values(f.get(name))) expect(v).toBeGreaterThanOrEqual(0);
    }
    const states = f.get("node_tcp_connection_states");
    expect(states?.series.map((s) => s.labels.state)).toEqual(
      expect.arrayContaining(["established", "listen"]),
    );
    if (platform === "linux") {
      // This machine runs Postgres and Redis: something is listening.
      expect(states?.series.find((s) => s.labels.state === "listen")?.value).toBeGreaterThan(0);
    }
  });

  it("processes: at most 2N series, this process among them, bounded values", async () => {
    const topN = 3;
    const f = await twoSamples(new ProcessCollector(15, topN, platform));
    const cpu = f.get("fleetdeck_top_process_cpu_percent")?.series ?? [];
    const rss = f.get("fleetdeck_top_process_resident_memory_bytes")?.series ?? [];
    expect(cpu.length).toBeGreaterThan(0);
    expect(cpu.length).toBeLessThanOrEqual(2 * topN);
    expect(rss).toHaveLength(cpu.length);
    for (const s of cpu) {
      expect(s.value).toBeGreaterThanOrEqual(0);
      expect(s.labels.name).not.toBe("");
      expect(Number(s.labels.pid)).toBeGreaterThan(0);
    }
    expect(values(f.get("fleetdeck_processes"))[0]).toBeGreaterThan(1);
    if (platform === "linux") {
      // The test just spun the CPU for 300 ms: this process leads by CPU.
      expect(cpu.some((s) => s.labels.pid === String(process.pid))).toBe(true);
      expect(cpu.every((s) => s.labels.user !== "")).toBe(true);
    }
  });
});

describe("counters and parsers", () => {
  it("a counter that goes backwards is a reset: the rate stays non-negative", () => {
    const r = new RateTracker();
    expect(r.rate("eth0", 1000, 0)).toBeNull();
    expect(r.rate("eth0", 3000, 1000)).toBe(2000);
    // Interface re-created: the counter restarted from 0 and is at 500 now.
    expect(r.rate("eth0", 500, 2000)).toBe(500);
    expect(r.rate("eth0", 1500, 3000)).toBe(1000);
  });

  it("diskstats rates survive a device whose counters reset", async () => {
    const line = (reads: number, sectors: number) =>
      `   8       0 sda ${reads} 0 ${sectors} 0 ${reads} 0 ${sectors} 0 0 0 0 0 0 0 0\n   8       1 sda1 1 0 1 0 1 0 1 0 0 0 0`;
    expect(parseDiskstats(line(10, 100)).map((d) => d.device)).toEqual(["sda"]);
    const r = new RateTracker();
    const [a] = parseDiskstats(line(1_000_000, 5_000_000));
    const [b] = parseDiskstats(line(20, 40));
    r.rate("sda", a!.readBytes, 0);
    expect(r.rate("sda", b!.readBytes, 1000)).toBe(40 * 512);
  });

  it("parses /proc/stat and a process name with spaces and parentheses", () => {
    const stat = parseProcStat("cpu  100 0 50 800 10 0 0 0 0 0\ncpu0 100 0 50 800 10 0 0 0 0 0\nintr 1\n");
    expect(stat.get("all")?.idle).toBeGreaterThan(0);
    expect(stat.has("0")).toBe(true);
    const p = parsePidStat(
      42,
      "42 (my (odd) name) S 1 42 42 0 -1 4194560 0 0 0 0 250 50 0 0 20 0 1 0 12345 1000 300 0 0",
    );
    expect(p?.name).toBe("my (odd) name");
    expect(p?.cpuSeconds).toBeGreaterThan(0);
    expect(p?.rssBytes).toBeGreaterThan(0);
  });
});

describe("runner", () => {
  it("a collector that keeps failing turns unhealthy without stopping the others, then recovers", async () => {
    let failing = true;
    const flaky: Collector = {
      name: "flaky",
      intervalSecs: 0.05,
      collect: async () => {
        if (failing) throw new Error("EACCES: permission denied");
        return [];
      },
    };
    let steadySamples = 0;
    const steady: Collector = {
      name: "steady",
      intervalSecs: 0.05,
      collect: async () => {
        steadySamples++;
        return [];
      },
    };
    const logs: string[] = [];
    const runner = new CollectorRunner([flaky, steady], {
      failureThreshold: 3,
      log: (_l, msg) => logs.push(msg),
    });
    runner.start();
    await pause(400);
    let flakyState = runner.states().find((s) => s.name === "flaky")!;
    expect(flakyState.status).toBe("unhealthy");
    expect(flakyState.errorsTotal).toBeGreaterThanOrEqual(3);
    expect(steadySamples).toBeGreaterThan(3);
    expect(logs).toContain("collector flaky is unhealthy");
    failing = false;
    await pause(200);
    flakyState = runner.states().find((s) => s.name === "flaky")!;
    expect(flakyState.status).toBe("healthy");
    expect(logs).toContain("collector flaky recovered");
    const status = runner.families().find((f) => f.name === "agent_collector_status");
    expect(status?.series.every((s) => s.value === 1)).toBe(true);
    runner.stop();
  });

  it("a collection that hangs past the timeout counts as a failure", async () => {
    const hang: Collector = { name: "hang", intervalSecs: 60, collect: () => new Promise(() => {}) };
    const runner = new CollectorRunner([hang], { timeoutMs: 50 });
    await runner.collectAll();
    expect(runner.states()[0]?.lastError).toMatch(/longer than 50 ms/);
  });

  it("self-limits stretch the intervals over budget and restore them when calm", () => {
    let cpuMicros = 0;
    let at = 0;
    let rss = 50e6;
    const factors: number[] = [];
    const limits = new SelfLimits({
      cpuPercent: 1,
      rssBytes: 100e6,
      checkIntervalSecs: 10,
      graceSecs: 0,
      apply: (f) => factors.push(f),
      log: () => {},
      usage: () => ({ cpuMicros, rssBytes: rss, at }),
    });
    const tick = (cpuPercent: number) => {
      at += 10_000;
      cpuMicros += cpuPercent * 10_000 * 10;
      limits.check();
    };
    limits.check();
    tick(5); // over the CPU budget
    tick(5);
    expect(factors).toEqual([2, 4]);
    rss = 200e6; // and over the RSS budget
    tick(0.1);
    expect(limits.intervalFactor()).toBe(8);
    rss = 50e6;
    for (let i = 0; i < 3; i++) tick(0.1);
    expect(limits.intervalFactor()).toBe(4);
    const over = limits.families().find((f) => f.name === "agent_over_budget");
    expect(over?.series.every((s) => s.value === 0)).toBe(true);
  });
});

describe("/metrics", () => {
  const runner = new CollectorRunner([
    new CpuCollector(1),
    new MemoryCollector(1),
    new DiskCollector(1),
    new NetworkCollector(1),
    new ProcessCollector(1, 5),
  ]);
  const registry = new MetricsRegistry(() => runner.families());
  let server: MetricsServer;
  let url: string;
  const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-metrics-"));
  let prometheus: ReturnType<typeof spawn> | null = null;

  afterAll(async () => {
    prometheus?.kill("SIGKILL");
    runner.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves the Prometheus text format with the agent's own collector metrics, and /healthz", async () => {
    await runner.collectAll();
    await pause(200);
    await runner.collectAll(); // second sample: rates and percentages
    server = new MetricsServer({
      host: "127.0.0.1",
      port: 0,
      registry,
      health: () => ({ healthy: true, body: { collectors: runner.states().length } }),
    });
    const address = await server.start();
    url = `http://127.0.0.1:${address.port}`;
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const name of [
      "agent_collector_last_success_timestamp",
      "agent_collector_errors_total",
      "agent_collector_duration_seconds",
      "agent_collector_status",
      "node_cpu_seconds_total",
      "node_load1",
      "node_filesystem_avail_bytes",
      "node_network_receive_bytes_total",
      "process_resident_memory_bytes",
    ]) {
      expect(text).toMatch(new RegExp(`^${name}(\\{| )`, "m"));
    }
    expect(text).toMatch(/^agent_collector_status\{collector="cpu"\} 1$/m);
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok", collectors: 5 });
    expect((await fetch(`${url}/nope`)).status).toBe(404);
  });

  it("passes `promtool check metrics`", async (ctx) => {
    if (!(await hasTool("promtool"))) {
      if (process.env.FLEETDECK_REQUIRE_PROMETHEUS === "1") throw new Error("promtool is required here");
      ctx.skip();
    }
    const text = await (await fetch(`${url}/metrics`)).text();
    const file = path.join(dir, "metrics.txt");
    writeFileSync(file, text);
    const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn("sh", ["-c", `promtool check metrics < ${file}`]);
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      child.on("close", (code) => resolve({ code, out }));
    });
    expect(result.out).toBe("");
    expect(result.code).toBe(0);
  });

  it("is scraped by a real Prometheus", { timeout: 60_000 }, async (ctx) => {
    if (!(await hasTool("prometheus"))) {
      if (process.env.FLEETDECK_REQUIRE_PROMETHEUS === "1") throw new Error("prometheus is required here");
      ctx.skip();
    }
    const port = await freePort();
    const target = new URL(url).host;
    writeFileSync(
      path.join(dir, "prometheus.yml"),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: agent\n    static_configs:\n      - targets: ["${target}"]\n`,
    );
    prometheus = spawn(
      "prometheus",
      [
        `--config.file=${path.join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${path.join(dir, "tsdb")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: "ignore" },
    );
    const query = async (q: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
      return ((await res.json()) as { data: { result: { value: [number, string] }[] } }).data.result;
    };
    let up: string | undefined;
    let status: { value: [number, string] }[] = [];
    for (let i = 0; i < 80 && !(up === "1" && status.length > 0); i++) {
      await pause(500);
      try {
        up = (await query('up{job="agent"}'))[0]?.value[1];
        status = await query('agent_collector_status{collector="memory"}');
      } catch {
        // Prometheus still starting.
      }
    }
    expect(up).toBe("1");
    expect(status[0]?.value[1]).toBe("1");
  });
});

async function hasTool(name: string): Promise<boolean> {
  try {
    await execFileAsync("sh", ["-c", `command -v ${name}`]);
    return true;
  } catch {
    return false;
  }
}
