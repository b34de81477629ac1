/**
 * bench/dispatch-profile: where a command's time goes inside workerd. Not a benchmark with a
 * peer (bench/dispatch is); a diagnostic for making it faster.
 *
 * Starts the local cloud and the Worker in workerd directly (as bench/dispatch does), connects
 * `--clients` agents over SSE, sends `--samples` commands one at a time while workerd's V8 CPU
 * profiler runs (through its inspector), and prints the end-to-end latency, the Worker's own
 * Server-Timing stages, and the functions with the most self time. The raw profile is written
 * to `--out` (open it in Chrome DevTools' Performance panel).
 *
 * `index.js:N` is a line of the bundle `npx wrangler deploy --dry-run --outdir <dir>` writes.
 * Worker clocks advance only on I/O, so Server-Timing shows waits (hub RPC, Redis), not CPU;
 * the profile shows CPU. The profiler slows the Worker down: compare shares, not milliseconds.
 *
 *   npm run bench:dispatch-profile [-- --clients 10 --samples 500 --out /tmp/workerd.cpuprofile
 *                                     --via direct|entry --profile on|off]
 */
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { freePort, startLocalCloud } from "../dev/local-cloud.js";
import { createTestDatabase } from "../test/support/postgres.js";
import { connectSse } from "../test/support/sse-client.js";
import { BENCH_WORKER_VARS, benchArgs, benchCloudSettings, runBench, summarise } from "./lib.js";
import { startWorkerdDirect } from "./workerd-direct.js";

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** A minimal Chrome DevTools Protocol session over workerd's inspector WebSocket. */
async function inspect(port: number, worker: string) {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
    title: string;
    webSocketDebuggerUrl: string;
  }[];
  const target = targets.find((t) => t.title.endsWith(`:${worker}`));
  if (!target)
    throw new Error(`no inspector target for ${worker}: ${targets.map((t) => t.title).join(", ")}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("error", reject);
  });
  let nextId = 1;
  const pending = new Map<number, (result: unknown) => void>();
  ws.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) pending.get(message.id)?.(message.result);
  });
  const call = <T>(method: string, params: Record<string, unknown> = {}) =>
    new Promise<T>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve as (result: unknown) => void);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { call, close: () => ws.close() };
}

function selfTime(profile: CpuProfile, top: number): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)!.callFrame;
    const at = frame.url ? ` ${frame.url.split("/").pop()}:${frame.lineNumber + 1}` : "";
    const key = `${frame.functionName || "(anonymous)"}${at}`;
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    self.set(key, (self.get(key) ?? 0) + us);
  });
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${key}`);
}

runBench(async () => {
  const args = benchArgs();
  const clientCount = Number(args.get("clients") ?? 10);
  const samples = Number(args.get("samples") ?? 500);
  const out = args.get("out") ?? "/tmp/workerd.cpuprofile";
  const database = await createTestDatabase("fleetdeck_profile");
  const settings = benchCloudSettings(database.url, "profile");
  const vars = BENCH_WORKER_VARS;
  const cloud = await startLocalCloud({ settings, vars });
  const inspectorPort = await freePort();
  const direct = await startWorkerdDirect({ ...cloud.workerVars, ...vars }, { inspectorPort });
  // workerd's own socket to the Worker (as deployed), or `--via entry`: through Miniflare's entry worker.
  const base = args.get("via") === "entry" ? direct.url : direct.directUrl;
  try {
    const post = (path: string, body: unknown) =>
      fetch(`${base}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${cloud.adminToken}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const clients: { id: string; clientKey: string }[] = [];
    for (let i = 0; i < clientCount; i++) {
      const res = await post("/api/clients", { name: `profile-${i}` });
      if (res.status !== 201) throw new Error(`create client: ${res.status} ${await res.text()}`);
      clients.push((await res.json()) as { id: string; clientKey: string });
    }
    const waiting = new Map<number, (at: number) => void>();
    const streams = await Promise.all(
      clients.map((c, i) =>
        connectSse(`${base}/api/events/${c.id}`, c.clientKey, {
          onEvent: (e) => {
            if (e.event !== "command") return;
            JSON.parse(e.data);
            waiting.get(i)?.(performance.now());
          },
        }),
      ),
    );
    // `--profile off`: the same run without the profiler, for latencies it does not slow down.
    const profiling = args.get("profile") !== "off";
    const inspector = profiling ? await inspect(inspectorPort, "fleetdeck") : null;
    await inspector?.call("Profiler.enable");
    await inspector?.call("Profiler.setSamplingInterval", { interval: 100 });
    await inspector?.call("Profiler.start");
    const endToEnd: number[] = [];
    const stages = new Map<string, number[]>();
    for (let k = 0; k < samples; k++) {
      const i = Math.floor(Math.random() * clientCount);
      const arrived = new Promise<number>((resolve) => waiting.set(i, resolve));
      const started = performance.now();
      const res = await post("/api/commands", { clientId: clients[i]!.id, action: "exec", payload: {} });
      if (res.status !== 201) throw new Error(`create command: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
      endToEnd.push((await arrived) - started);
      for (const part of (res.headers.get("server-timing") ?? "").split(",")) {
        const m = /^\s*([\w-]+).*dur=([\d.]+)/.exec(part);
        if (m) stages.set(m[1]!, [...(stages.get(m[1]!) ?? []), Number(m[2])]);
      }
    }
    const profile = inspector
      ? (await inspector.call<{ profile: CpuProfile }>("Profiler.stop")).profile
      : null;
    inspector?.close();
    if (profile) writeFileSync(out, JSON.stringify(profile));
    for (const s of streams) s.close();

    const e = summarise(endToEnd);
    console.log(
      `\n${samples} commands to ${clientCount} agents, profiler ${profiling ? "on" : "off"}, via ${base === direct.url ? "Miniflare's entry worker" : "workerd's socket to the Worker"}`,
    );
    console.log(
      `POST /api/commands -> parsed by the agent: p50 ${e.p50.toFixed(2)} ms, p99 ${e.p99.toFixed(2)} ms`,
    );
    for (const [name, values] of stages) {
      const s = summarise(values);
      console.log(`  Server-Timing ${name}: p50 ${s.p50} ms, p99 ${s.p99} ms`);
    }
    if (profile) {
      console.log(`\nself time in workerd's isolate (profile in ${out}):`);
      for (const line of selfTime(profile, 25)) console.log(`  ${line}`);
    }
  } finally {
    await direct.stop();
    await cloud.stop();
    await database.drop();
  }
});
