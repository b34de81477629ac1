/** Shared pieces of the benchmarks: percentiles, tables, peers' processes, tool checks. */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { localSettings } from "../dev/settings.js";

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarise(samples: number[]): { n: number; p50: number; p99: number; max: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? Number.NaN,
  };
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === "number" ? format(c) : c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  const line = (r: (string | number)[]) => `| ${r.map((c, i) => String(c).padEnd(widths[i]!)).join(" | ")} |`;
  return [
    line(cells[0]!),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...cells.slice(1).map(line),
  ].join("\n");
}

function format(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? "unknown cpu";
  return `${os.cpus().length} x ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}`;
}

/** A benchmark needs its peers; say exactly how to get one that is missing. */
export function requireTool(binary: string, debianPackage: string): string {
  const candidates = [binary, `/usr/sbin/${binary}`, `/usr/bin/${binary}`];
  for (const c of candidates) {
    if (c.includes("/") ? existsSync(c) : whichSync(c)) return c.includes("/") ? c : whichSync(c)!;
  }
  throw new Error(`${binary} is needed as a peer; install it with: apt-get install -y ${debianPackage}`);
}

function whichSync(binary: string): string | null {
  try {
    return execFileSync("which", [binary], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

export interface Nchan {
  url: string;
  stop(): void;
}

/** nginx with the nchan module: HTTP publish, EventSource subscribe, one channel per id. */
export async function startNchan(port: number): Promise<Nchan> {
  const nginx = requireTool("nginx", "nginx libnginx-mod-nchan");
  const module = "/usr/lib/nginx/modules/ngx_nchan_module.so";
  if (!existsSync(module))
    throw new Error("the nchan module is needed; install it with: apt-get install -y libnginx-mod-nchan");
  const dir = mkdtempSync(path.join(os.tmpdir(), "fleetdeck-nchan-"));
  const conf = path.join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `load_module ${module};
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir};
  proxy_temp_path ${dir};
  fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir};
  scgi_temp_path ${dir};
  server {
    listen 127.0.0.1:${port};
    location = /pub { nchan_publisher; nchan_channel_id $arg_id; nchan_message_buffer_length 100; }
    location = /sub { nchan_subscriber eventsource; nchan_channel_id $arg_id; nchan_subscriber_first_message newest; }
  }
}
`,
  );
  const child: ChildProcess = spawn(nginx, ["-c", conf, "-p", dir], { stdio: "ignore" });
  await waitForPort(port);
  return {
    url: `http://127.0.0.1:${port}`,
    stop() {
      child.kill("SIGQUIT");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const net = await import("node:net");
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `--name value` pairs from the command line. */
export function benchArgs(): Map<string, string> {
  const args = new Map<string, string>();
  for (let i = 2; i < process.argv.length; i += 2)
    args.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1] ?? "");
  return args;
}

/** A benchmark stops by itself: a run that hangs is an error, not a wait. Runs `main` and exits non-zero on failure. */
export function runBench(main: () => Promise<void>, limitMinutes = 20): void {
  setTimeout(() => {
    console.error(`benchmark did not finish within ${limitMinutes} minutes; giving up`);
    process.exit(1);
  }, limitMinutes * 60_000).unref();
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}

/** The local cloud for a benchmark: its own database and data directory, every port chosen free. */
export function benchCloudSettings(databaseUrl: string, name: string) {
  return {
    ...localSettings({
      DATABASE_URL: databaseUrl,
      MQTT_URL: process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883",
      FLEETDECK_DATA_DIR: `/tmp/fleetdeck-${name}-${process.pid}`,
    }),
    workerPort: 0,
    neonProxyPort: 0,
    redisRestPort: 0,
    qstashPort: 0,
  };
}

/**
 * Worker variables for benchmarks: rate limits out of the way, quiet logs, and outbox drains
 * every 5-10 s per hub (at N = 1,000 a drain per hub per second would need more connections
 * than this machine's Postgres allows, max_connections = 100).
 */
export const BENCH_WORKER_VARS = {
  RATE_LIMIT_PER_MINUTE: "100000000",
  RATE_LIMIT_IP_PER_MINUTE: "100000000",
  LOG_LEVEL: "warn",
  OUTBOX_FLUSH_MS: process.env.OUTBOX_FLUSH_MS ?? "5000",
};
