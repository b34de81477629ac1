/**
 * bench/agent-footprint: the agent's cost on a host, beside Debian's prometheus-node-exporter and
 * an empty Node 22 process, all measured in the same run.
 *
 * - The agent runs as built for hosts (`npm run build:agent`, node --max-semi-space-size=1) with
 *   its default collectors and two alert rules; it is connected to an idle edge (a small stand-in
 *   here that holds the SSE stream open with heartbeats and answers heartbeats with 200: the
 *   agent's side of the link is what is measured, and wrangler dev beside it would take a core of
 *   this two-core machine).
 * - /metrics of the agent and of node_exporter is scraped every 15 s for `--seconds` (120).
 * - CPU is each process's utime+stime over the window (/proc/<pid>/stat); RSS is VmRSS
 *   (/proc/<pid>/status) sampled every 5 s, in MiB (kB / 1024): the unit of the "60 MB"
 *   goal, whose "empty Node 22 process is about 43 MB" is 42.6 MiB here (44.7 million bytes).
 * - Then back-to-back scrapes of each, alternating, for `--burst` seconds (20) time /metrics
 *   render (request to last byte, loopback); the agent's event-loop delay p99 during the burst is
 *   read from its own nodejs_eventloop_delay_p99_seconds (a window of the last 10 to 20 s, so
 *   entirely inside a burst of 20 s).
 * - Lateness of every collector sample comes from the agent's agent_collector_delay_seconds.
 *
 *   npm run bench:agent-footprint [-- --seconds 120 --burst 20]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import YAML from "yaml";
import { freePort } from "../dev/local-cloud.js";
import { buildAgent } from "../edge-agent/build.js";
import { benchArgs, machine, requireTool, runBench, summarise, table, waitForPort } from "./lib.js";

const CLIENT_ID = "cl_01JB0000000000000000000000";
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function scrape(url: string): Promise<{ ms: number; text: string }> {
  const started = performance.now();
  const res = await fetch(url);
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return { ms: performance.now() - started, text };
}

function metric(text: string, name: string, labels = ""): number {
  const line = text
    .split("\n")
    .find((l) => l.startsWith(`${name}${labels} `) || l.startsWith(`${name}${labels}{`));
  return line ? Number(line.split(" ").at(-1)) : Number.NaN;
}

/** The edge as the agent sees it when nothing happens: an open SSE stream with heartbeats, 200s. */
async function startIdleEdge(): Promise<{ url: string; close(): void }> {
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url?.startsWith(`/api/events/${CLIENT_ID}`)) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
      res.write("retry: 2000\n\n");
      const beat = setInterval(() => res.write(`event: heartbeat\ndata: {"at":${Date.now()}}\n\n`), 15_000);
      req.on("close", () => clearInterval(beat));
      return;
    }
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" }).end('{"receivedAt":0}');
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

const args = benchArgs();
const seconds = Number(args.get("seconds") ?? 120);
const burstSecs = Number(args.get("burst") ?? 20);

runBench(
  async () => {
    const nodeExporter = requireTool("prometheus-node-exporter", "prometheus-node-exporter");
    const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-footprint-"));
    const children: ChildProcess[] = [];
    // Also when runBench gives up and exits: no agent or exporter is left running.
    process.on("exit", () => {
      for (const c of children) c.kill();
    });
    const edge = await startIdleEdge();
    try {
      console.log("building the agent (npm run build:agent) ...");
      const main = await buildAgent(path.join(dir, "agent"));
      const agentPort = await freePort();
      const exporterPort = await freePort();
      const configFile = path.join(dir, "agent.yaml");
      writeFileSync(
        configFile,
        YAML.stringify({
          serverUrl: edge.url,
          clientKey: `sk_${CLIENT_ID}_${"k".repeat(43)}`,
          dataDir: path.join(dir, "data"),
          metricsPort: agentPort,
          metricsHost: "127.0.0.1",
          alertRules: [
            {
              name: "cpu-busy",
              expr: 'fleetdeck_cpu_usage_percent{mode="busy"}',
              op: ">",
              threshold: 90,
              for: "2m",
            },
            {
              name: "disk-full",
              expr: "fleetdeck_filesystem_used_percent",
              op: ">",
              threshold: 90,
              for: "5m",
            },
          ],
        }),
      );
      const agent = spawn(
        process.execPath,
        ["--disable-warning=ExperimentalWarning", "--max-semi-space-size=1", main, "--config", configFile],
        { stdio: ["ignore", "ignore", "inherit"] },
      );
      const exporter = spawn(nodeExporter, [`--web.listen-address=127.0.0.1:${exporterPort}`], {
        stdio: "ignore",
      });
      const empty = spawn(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)"], { stdio: "ignore" });
      children.push(agent, exporter, empty);
      await waitForPort(agentPort, 20_000);
      await waitForPort(exporterPort, 20_000);
      const agentUrl = `http://127.0.0.1:${agentPort}/metrics`;
      const exporterUrl = `http://127.0.0.1:${exporterPort}/metrics`;
      console.log(`warming up 20 s, then measuring ${seconds} s with a scrape of each every 15 s ...`);
      await pause(20_000);

      const procs = { agent: agent.pid!, node_exporter: exporter.pid!, "empty node 22": empty.pid! };
      const cpuStart = Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, cpuSeconds(pid)]));
      const rss: Record<string, number[]> = Object.fromEntries(Object.keys(procs).map((k) => [k, []]));
      const windowStart = performance.now();
      let nextScrape = 0;
      let idleScrapes = 0;
      while (performance.now() - windowStart < seconds * 1000) {
        const elapsed = (performance.now() - windowStart) / 1000;
        if (elapsed >= nextScrape) {
          await scrape(agentUrl);
          await scrape(exporterUrl);
          idleScrapes++;
          nextScrape += 15;
        }
        for (const [k, pid] of Object.entries(procs)) rss[k]!.push(rssMb(pid));
        // Progress on long runs, and the shape of the agent's RSS over time (a slope shows here).
        if (rss.agent!.length % 12 === 0) {
          console.log(`  ${Math.round(elapsed / 60)} min: agent rss ${rss.agent!.at(-1)!.toFixed(1)} MiB`);
        }
        await pause(5000);
      }
      const windowSecs = (performance.now() - windowStart) / 1000;
      const cpu = Object.fromEntries(
        Object.entries(procs).map(([k, pid]) => [k, (100 * (cpuSeconds(pid) - cpuStart[k]!)) / windowSecs]),
      );
      const idle = await scrape(agentUrl);
      // Summed over collectors: every sample, and those that started within 1 s of their due time.
      const sum = (re: RegExp) => [...idle.text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
      const samples = sum(/^agent_collector_delay_seconds_count\{collector="[^"]+"\} (\d+)$/gm);
      const late =
        samples - sum(/^agent_collector_delay_seconds_bucket\{le="1",collector="[^"]+"\} (\d+)$/gm);
      const factor = metric(idle.text, "agent_collection_interval_factor");

      console.log(`render burst: back-to-back scrapes of each, alternating, for ${burstSecs} s ...`);
      const burst: Record<string, number[]> = { agent: [], node_exporter: [] };
      const burstEnd = performance.now() + burstSecs * 1000;
      while (performance.now() < burstEnd) {
        burst.agent!.push((await scrape(agentUrl)).ms);
        burst.node_exporter!.push((await scrape(exporterUrl)).ms);
      }
      const after = await scrape(agentUrl);
      const loopP99Ms = 1000 * metric(after.text, "nodejs_eventloop_delay_p99_seconds");
      const loopMaxMs = 1000 * metric(after.text, "nodejs_eventloop_delay_max_seconds");
      const seriesCount = (text: string) => text.split("\n").filter((l) => l && !l.startsWith("#")).length;

      const a = summarise(burst.agent!);
      const n = summarise(burst.node_exporter!);
      const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
      console.log(`\n${machine()}\nwindow ${windowSecs.toFixed(0)} s, ${idleScrapes} idle scrapes each\n`);
      console.log(
        table(
          [
            "process",
            "cpu % of a core",
            "rss MiB mean",
            "rss MiB max",
            "series",
            "render p50 ms",
            "render p99 ms",
          ],
          [
            [
              "agent",
              cpu.agent!,
              mean(rss.agent!),
              Math.max(...rss.agent!),
              seriesCount(after.text),
              a.p50,
              a.p99,
            ],
            [
              "node_exporter",
              cpu.node_exporter!,
              mean(rss.node_exporter!),
              Math.max(...rss.node_exporter!),
              seriesCount((await scrape(exporterUrl)).text),
              n.p50,
              n.p99,
            ],
            [
              "empty node 22",
              cpu["empty node 22"]!,
              mean(rss["empty node 22"]!),
              Math.max(...rss["empty node 22"]!),
              "-",
              "-",
              "-",
            ],
          ],
        ),
      );
      console.log(`\nrender p99 agent / node_exporter: ${(a.p99 / n.p99).toFixed(2)}x (goal <= 2x)`);
      console.log(`agent cpu: ${cpu.agent!.toFixed(2)}% of a core (goal <= 1%)`);
      console.log(
        `agent rss: ${mean(rss.agent!).toFixed(1)} MiB mean, ${Math.max(...rss.agent!).toFixed(1)} max (goal <= 60; empty node 22: ${mean(rss["empty node 22"]!).toFixed(1)} MiB)`,
      );
      console.log(
        `agent event-loop delay during the scrape burst: p99 ${loopP99Ms.toFixed(1)} ms, max ${loopMaxMs.toFixed(1)} ms (goal p99 < 20 ms)`,
      );
      console.log(
        `collector samples: ${samples}, started more than 1 s after due: ${late} (goal 0); interval factor at the end ${factor}`,
      );
    } finally {
      for (const c of children) c.kill("SIGTERM");
      edge.close();
      await pause(500);
      rmSync(dir, { recursive: true, force: true });
    }
    // The window, warm-up and burst, plus room for building the agent.
  },
  5 + (20 + seconds + burstSecs) / 60,
);
