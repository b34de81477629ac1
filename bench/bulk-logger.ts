/**
 * bench/bulk-logger: log lines per second durably in Redis (XADD acknowledged), through the
 * Upstash REST bridge and through TCP Redis, at batch 100 and 500, against one awaited write
 * per line on the same path; redis-benchmark LPUSH on one connection (-c 1) at -P 1, -P 16 and
 * -P 100 as the reference ratio: what pipelining buys Redis's own C client on one connection.
 *
 * Each figure is the median of `--runs` runs (3), after one unrecorded run of each mode that
 * lets V8 compile the hot paths first (a 20,000-line run lasts a fraction of a second).
 *
 *   npm run bench:bulk-logger [-- --lines 20000 --single 2000 --runs 3]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { Redis as UpstashRedis } from "@upstash/redis";
import { Redis as IORedis } from "ioredis";
import { startUpstashBridge } from "../dev/upstash-bridge.js";
import { BulkLogger, type LogSink, TcpRedisLogSink, UpstashLogSink } from "../edge-agent/bulk-logger.js";
import { benchArgs, machine, requireTool, runBench, table } from "./lib.js";

const args = benchArgs();
const LINES = Number(args.get("lines") ?? 20_000);
const SINGLE = Number(args.get("single") ?? 2000);
const RUNS = Number(args.get("runs") ?? 3);
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const run = Math.random().toString(36).slice(2, 8);

function entry(i: number, stream: string) {
  return {
    stream,
    fields: { level: "info", message: `bench line ${i} ${"x".repeat(60)}`, at: String(Date.now()) },
  };
}

async function batched(makeSink: () => LogSink, batchSize: number, stream: string): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-bench-spool-"));
  const logger = new BulkLogger({
    sink: makeSink(),
    spoolDir: dir,
    batchSize,
    flushIntervalMs: 60_000,
    queueLimit: LINES + 1,
    maxLen: LINES * 2,
  });
  const started = performance.now();
  for (let i = 0; i < LINES; i++) logger.logSync(entry(i, stream));
  await logger.close();
  const seconds = (performance.now() - started) / 1000;
  const stats = logger.statistics();
  rmSync(dir, { recursive: true, force: true });
  if (stats.written !== LINES || stats.spooledEntries !== 0)
    throw new Error(`only ${stats.written}/${LINES} lines reached Redis`);
  return LINES / seconds;
}

async function onePerLine(sink: LogSink, stream: string): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < SINGLE; i++) await sink.write([entry(i, stream)], SINGLE * 2);
  return SINGLE / ((performance.now() - started) / 1000);
}

function redisBenchmark(pipeline: number): number {
  const bin = requireTool("redis-benchmark", "redis-tools");
  const { hostname, port } = new URL(REDIS_URL);
  const out = execFileSync(
    bin,
    [
      "-h",
      hostname,
      "-p",
      port || "6379",
      "-c",
      "1",
      "-t",
      "lpush",
      "-n",
      String(pipeline === 1 ? 20_000 : 200_000),
      "-P",
      String(pipeline),
      "-q",
    ],
    {
      encoding: "utf8",
    },
  );
  const m = /LPUSH: ([\d.]+) requests per second/.exec(out);
  if (!m) throw new Error(`unexpected redis-benchmark output: ${out}`);
  return Number(m[1]);
}

/** One unrecorded run, then the median of RUNS. */
async function medianOf(measure: () => Promise<number>): Promise<number> {
  await measure();
  const rates: number[] = [];
  for (let i = 0; i < RUNS; i++) rates.push(await measure());
  return rates.sort((a, b) => a - b)[Math.floor(rates.length / 2)]!;
}

async function main() {
  console.log(`bench/bulk-logger on ${machine()}`);
  console.log(`${LINES} lines per batched run, ${SINGLE} lines one awaited write at a time`);
  console.log(`median of ${RUNS} runs each, after one unrecorded warm-up run of each mode\n`);
  const bridge = await startUpstashBridge({ port: 0, token: "bench", redisUrl: REDIS_URL });
  const tcpClients: IORedis[] = [];
  const paths: [string, () => LogSink][] = [
    [
      "Upstash REST",
      () => new UpstashLogSink(new UpstashRedis({ url: bridge.url, token: "bench", enableTelemetry: false })),
    ],
    [
      "TCP Redis",
      () => {
        const r = new IORedis(REDIS_URL);
        tcpClients.push(r);
        return new TcpRedisLogSink(r);
      },
    ],
  ];
  const rows: (string | number)[][] = [];
  const cleanup = new IORedis(REDIS_URL);
  try {
    for (const [name, makeSink] of paths) {
      const stream = (mode: string) => `fd:bench:${run}:${name}:${mode}`;
      const single = await medianOf(() => onePerLine(makeSink(), stream("single")));
      const b100 = await medianOf(() => batched(makeSink, 100, stream("b100")));
      const b500 = await medianOf(() => batched(makeSink, 500, stream("b500")));
      rows.push([name, "one awaited write per line", single, 1]);
      rows.push([name, "BulkLogger, batch 100", b100, b100 / single]);
      rows.push([name, "BulkLogger, batch 500", b500, b500 / single]);
    }
    const p1 = redisBenchmark(1);
    const p16 = redisBenchmark(16);
    const p100 = redisBenchmark(100);
    rows.push(["redis-benchmark", "LPUSH -P 1 (one connection)", p1, 1]);
    rows.push(["redis-benchmark", "LPUSH -P 16", p16, p16 / p1]);
    rows.push(["redis-benchmark", "LPUSH -P 100", p100, p100 / p1]);
  } finally {
    const keys = await cleanup.keys(`fd:bench:${run}:*`);
    if (keys.length) await cleanup.del(...keys);
    cleanup.disconnect();
    for (const c of tcpClients) c.disconnect();
    await bridge.stop();
  }
  console.log(table(["path", "mode", "lines/s", "x one-per-line (same path)"], rows));
  console.log("\nGoal: BulkLogger at batch 100 at least 20x the one-write-per-line rate on the same path.");
}

runBench(main, 20);
