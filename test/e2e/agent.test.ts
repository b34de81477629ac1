import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis as IORedis } from "ioredis";
import mqtt from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../dev/local-cloud.js";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { HAVE_CUPS, HAVE_XVFB, startPrivateCups, startXvfb } from "../support/desktop.js";
import { call } from "../support/http.js";
import { startTestCloud, type TestCloud } from "../support/local-cloud.js";
import { createPrivateRedis, type PrivateRedis } from "../support/private-redis.js";
import { connectSse } from "../support/sse-client.js";
import { startTcpRelay } from "../support/tcp-relay.js";

// CI installs the desktop tools and sets this, so a missing tool fails there instead of skipping.
const REQUIRE_DESKTOP = process.env.FLEETDECK_REQUIRE_DESKTOP_TOOLS === "1";

const MQTT_URL = process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883";
let cloud: TestCloud;
let redis: PrivateRedis;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  cloud = await startTestCloud({ STALE_HOST_THRESHOLD_SECONDS: "3" });
  redis = createPrivateRedis(await freePort());
  await redis.start();
}, 120_000);

afterEach(async () => {
  for (const a of agents.splice(0)) {
    if (a.child.exitCode === null) {
      a.signal("SIGTERM");
      const exited = await Promise.race([a.exited, new Promise((r) => setTimeout(() => r("late"), 8000))]);
      if (exited === "late") {
        a.signal("SIGKILL");
        await a.exited;
      }
    }
    rmSync(a.dir, { recursive: true, force: true });
  }
});

afterAll(async () => {
  await redis?.stop();
  await cloud?.stop();
});

const api = (method: string, p: string, token?: string, body?: unknown) =>
  call(cloud.workerUrl, method, p, token, body);

async function newClient() {
  const res = await api("POST", "/api/clients", cloud.adminToken, { name: "agent-host" });
  return { id: res.body.id as string, key: res.body.clientKey as string };
}

async function launch(
  client: { key: string },
  extra: Record<string, unknown> = {},
  env: Record<string, string> = {},
) {
  const { configFile, dir } = writeAgentConfig({
    serverUrl: cloud.workerUrl,
    clientKey: client.key,
    redisUrl: redis.url,
    logBatchSize: 5,
    logFlushIntervalSecs: 0.2,
    heartbeatIntervalSecs: 1,
    shutdownGraceSecs: 5,
    maxOutputBytes: 4096,
    scripts: {
      hello: { argv: ["echo", "hello from the agent"] },
      big: { argv: ["head", "-c", "100000", "/dev/zero"] },
      failing: { argv: ["sh", "-c", "echo broken >&2; exit 3"] },
      slow: { argv: ["sleep", "3"] },
      marked: { argv: ["sh", "-c", `echo ran >> ${"$MARK"}; sleep 4`], shell: false },
    },
    processes: { worker: { command: ["sleep", "1000"] } },
    logFiles: { app: "/tmp/placeholder.log" },
    ...extra,
  });
  const agent = startAgent(configFile, env);
  agents.push(agent);
  await agent.waitForLog("connected to the edge");
  return { agent, dir };
}

async function command(
  clientId: string,
  action: string,
  payload: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
) {
  const res = await api("POST", "/api/commands", cloud.adminToken, { clientId, action, payload, ...extra });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

async function finished(id: string, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await api("GET", `/api/commands/${id}`, cloud.adminToken);
    if (["completed", "failed", "timed_out", "canceled"].includes(res.body.status)) return res.body;
    if (Date.now() > until) throw new Error(`command ${id} still ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("the agent against wrangler dev, real Redis and Mosquitto", () => {
  it("runs each executor and reports typed results", async () => {
    const client = await newClient();
    const logFile = path.join("/tmp", `fleetdeck-e2e-${client.id}.log`);
    writeFileSync(logFile, `${Array.from({ length: 50 }, (_, i) => `line ${i}`).join("\n")}\n`);
    const { agent } = await launch(client, { logFiles: { app: logFile }, mqttUrl: MQTT_URL });
    try {
      const hello = await finished(await command(client.id, "exec", { script: "hello" }));
      expect(hello).toMatchObject({
        status: "completed",
        result: { success: true, data: { exitCode: 0, stdout: "hello from the agent\n" } },
      });

      const failing = await finished(await command(client.id, "exec", { script: "failing" }));
      expect(failing.result.error.code).toBe("EXIT_NONZERO");
      expect(failing.result.data.stderr).toBe("broken\n");

      const notAllowed = await finished(await command(client.id, "exec", { script: "rm -rf /" }));
      expect(notAllowed.result.error.code).toBe("SCRIPT_NOT_ALLOWED");

      const health = await finished(await command(client.id, "health-check"));
      expect(health.result.data.cpuPercent).toBeGreaterThanOrEqual(0);
      expect(health.result.data.memoryPercent).toBeLessThanOrEqual(100);

      const restart = await finished(await command(client.id, "restart-process", { name: "worker" }));
      expect(restart.status).toBe("completed");
      expect(restart.result.data.oldPid).toBeGreaterThan(0);
      expect(restart.result.data.newPid).toBeGreaterThan(0);
      expect(restart.result.data.newPid).not.toBe(restart.result.data.oldPid);

      const logs = await finished(await command(client.id, "collect-logs", { file: "app", lines: 3 }));
      expect(logs.result.data.text).toBe("line 47\nline 48\nline 49");

      const capped = await finished(await command(client.id, "exec", { script: "big" }));
      expect(capped.result.data.truncated).toBe(true);
      expect(capped.result.data.stdout.length).toBeLessThanOrEqual(4096);

      const unknown = await finished(await command(client.id, "teleport"));
      expect(unknown.result.error.code).toBe("UNKNOWN_ACTION");
      const badPayload = await finished(await command(client.id, "restart-process", { nom: "x" }));
      expect(badPayload.result.error.code).toBe("INVALID_PAYLOAD");

      const missing = await finished(await command(client.id, "print", { file: "/nonexistent.pdf" }));
      expect(missing.result.error.code).toBe("FILE_NOT_FOUND");
      const noDisplay = await finished(await command(client.id, "screenshot", {}));
      expect(noDisplay.result.error.code).toBe("NO_DISPLAY");

      // device-command: a simulated device answers on the reply topic with the correlation id.
      const device = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5, clientId: `dev-${client.id}` });
      await device.subscribeAsync("devices/lamp-1/command", { qos: 1 });
      device.on("message", (_t, payload, packet) => {
        const req = JSON.parse(payload.toString());
        void device.publishAsync(
          packet.properties?.responseTopic ?? req.replyTo,
          JSON.stringify({ correlationId: req.correlationId, ok: true, echo: req.command }),
          {
            qos: 1,
            properties: { correlationData: packet.properties?.correlationData },
          },
        );
      });
      const reply = await finished(
        await command(client.id, "device-command", { deviceId: "lamp-1", command: { on: true } }),
      );
      await device.endAsync();
      expect(reply.result.data.reply).toMatchObject({ ok: true, echo: { on: true } });
      const silent = await finished(
        await command(client.id, "device-command", { deviceId: "ghost", command: {}, timeoutMs: 300 }),
      );
      expect(silent.result.error.code).toBe("DEVICE_TIMEOUT");
    } finally {
      rmSync(logFile, { force: true });
    }
    expect(agent.output.some((l) => l.includes("Error:") && l.includes("at "))).toBe(false);
  });

  describe.runIf(HAVE_CUPS || REQUIRE_DESKTOP)("print", () => {
    it("prints through CUPS's lp and reports the job id", async () => {
      const cups = await startPrivateCups();
      const file = path.join("/tmp", `fleetdeck-print-${Date.now()}.txt`);
      writeFileSync(file, "fleetdeck test page\n");
      try {
        const client = await newClient();
        await launch(client, { printer: cups.printer }, { CUPS_SERVER: cups.server });
        const done = await finished(
          await command(client.id, "print", { file, copies: 2, options: { "page-ranges": "1" } }),
        );
        expect(done.status).toBe("completed");
        expect(done.result.data).toMatchObject({ printer: cups.printer, copies: 2 });
        expect(done.result.data.jobId).toMatch(new RegExp(`^${cups.printer}-\\d+$`));
        const jobs = execFileSync("lpstat", ["-W", "all", "-o"], {
          env: { ...process.env, CUPS_SERVER: cups.server },
          encoding: "utf8",
        });
        expect(jobs).toContain(done.result.data.jobId);
      } finally {
        rmSync(file, { force: true });
        await cups.stop();
      }
    });
  });

  describe.runIf(HAVE_XVFB || REQUIRE_DESKTOP)("screenshot", () => {
    it("captures the X display as a PNG under the size cap, and refuses one over it", async () => {
      const x = await startXvfb();
      try {
        const client = await newClient();
        await launch(client, { display: x.display, screenshotMaxBytes: 200_000 });
        const shot = await finished(await command(client.id, "screenshot", {}));
        expect(shot.status).toBe("completed");
        expect(shot.result.data).toMatchObject({ format: "png", width: 320, height: 200 });
        const png = Buffer.from(shot.result.data.base64, "base64");
        expect(png.subarray(1, 4).toString()).toBe("PNG");
        expect(png.length).toBe(shot.result.data.bytes);
        // A cap smaller than the picture (a blank 320x200 screen is a few hundred bytes of PNG):
        // a typed refusal, not a truncated PNG.
        const small = await newClient();
        await launch(small, { display: x.display, screenshotMaxBytes: 64 });
        const refused = await finished(await command(small.id, "screenshot", {}));
        expect(refused.result.error.code).toBe("TOO_LARGE");
      } finally {
        await x.stop();
      }
    });
  });

  it("does not run a command twice after kill -9 mid-command, and delivers a result on restart", async () => {
    const client = await newClient();
    const mark = path.join("/tmp", `fleetdeck-mark-${client.id}`);
    const first = await launch(client, {
      scripts: { marked: { argv: ["sh", "-c", `echo ran >> ${mark}; sleep 4`] } },
    });
    const id = await command(client.id, "exec", { script: "marked" });
    await first.agent.waitForLog("command started", { command_id: id });
    await new Promise((r) => setTimeout(r, 300));
    first.agent.signal("SIGKILL");
    await first.agent.exited;
    // Same data dir: the journal knows what ran.
    const again = startAgent(first.agent.configFile);
    agents.push(again);
    // The supervised worker the killed agent left behind is replaced, not doubled.
    await again.waitForLog("command interrupted by an agent restart; reported, not rerun", {
      command_id: id,
    });
    const done = await finished(id);
    expect(done.status).toBe("failed");
    expect(done.result.error.code).toBe("AGENT_RESTARTED");
    expect(readFileSync(mark, "utf8")).toBe("ran\n");
    rmSync(mark, { force: true });
  });

  it("spools its logs while Redis is down and writes every line, in order, when Redis returns", async () => {
    const client = await newClient();
    const { agent } = await launch(client);
    const stream = `fd:logs:${client.id}`;
    await redis.stop();
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await command(client.id, "exec", { script: "hello" }));
    for (const id of ids) await finished(id);
    await agent.waitForLog("redis unreachable; log lines go to the spool");
    await redis.start();
    const check = new IORedis(redis.url);
    try {
      await expect
        .poll(
          async () =>
            (await check.xrange(stream, "-", "+")).filter(([, f]) => f.includes("command finished")).length,
          {
            timeout: 15_000,
          },
        )
        .toBe(4);
      const finishedLines = (await check.xrange(stream, "-", "+"))
        .map(([, f]) =>
          Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i], f[2 * i + 1]])),
        )
        .filter((f) => f.msg === "command finished")
        .map((f) => f.command_id);
      expect(finishedLines).toEqual(ids);
    } finally {
      check.disconnect();
    }
  });

  it("posts a result produced while the edge was unreachable once the link is back", async () => {
    const client = await newClient();
    const edge = new URL(cloud.workerUrl);
    const relay = await startTcpRelay({ host: edge.hostname, port: Number(edge.port) });
    try {
      const { agent } = await launch(client, { serverUrl: relay.url });
      const id = await command(client.id, "exec", { script: "slow" });
      await agent.waitForLog("command started", { command_id: id });
      await relay.cut();
      await agent.waitForLog("command finished", { command_id: id });
      await agent.waitForLog("result not delivered yet; will retry", { command_id: id });
      expect((await api("GET", `/api/commands/${id}`, cloud.adminToken)).body.status).toBe("running");
      await relay.restore();
      const done = await finished(id, 30_000);
      expect(done).toMatchObject({ status: "completed", result: { success: true } });
    } finally {
      await relay.close();
    }
  });

  it("raises and resolves an alert while the edge is unreachable, notifies the webhook at once, and forwards both changes afterwards with their own times, once", async () => {
    const client = await newClient();
    const edge = new URL(cloud.workerUrl);
    const relay = await startTcpRelay({ host: edge.hostname, port: Number(edge.port) });
    const hooks: Record<string, unknown>[] = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        hooks.push(JSON.parse(body));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    // A watched process with a name of its own, so the test can stop and start it.
    const name = `fdslp${randomBytes(3).toString("hex")}`;
    const binDir = mkdtempSync(path.join(tmpdir(), "fleetdeck-alert-"));
    copyFileSync("/bin/sleep", path.join(binDir, name));
    const startWatched = () => spawn(path.join(binDir, name), ["600"], { stdio: "ignore" });
    let watched = startWatched();
    try {
      const { agent } = await launch(client, {
        serverUrl: relay.url,
        monitoredProcessNames: [name],
        alertEvaluationIntervalSecs: 0.5,
        alertRules: [
          {
            name: "watched-down",
            expr: `fleetdeck_process_up{name="${name}"}`,
            op: "==",
            threshold: 0,
            severity: "critical",
            summary: `${name} is not running`,
          },
        ],
        alertChannels: {
          hook: {
            type: "webhook",
            url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/alerts`,
          },
        },
      });
      await relay.cut();
      watched.kill("SIGKILL");
      const fired = await agent.waitForLog("alert watched-down firing", {}, 20_000);
      // The channel does not need the edge.
      await expect.poll(() => hooks.length, { timeout: 10_000 }).toBe(1);
      expect(hooks[0]).toMatchObject({
        kind: "alert.triggered",
        rule: "watched-down",
        clientId: client.id,
        value: 0,
      });
      watched = startWatched();
      await agent.waitForLog("alert watched-down resolved", {}, 20_000);
      const history = () => api("GET", `/api/alerts/history?clientId=${client.id}`, cloud.adminToken);
      expect((await history()).body.alerts).toEqual([]);

      const restoredAt = Date.now();
      await relay.restore();
      await expect
        .poll(async () => (await history()).body.alerts.map((a: { state: string }) => a.state), {
          timeout: 30_000,
        })
        .toEqual(["resolved"]);
      const [alert] = (await history()).body.alerts;
      expect(alert).toMatchObject({ id: fired.alert_id, rule: "watched-down", severity: "critical" });
      expect(alert.triggeredAt).toBe(Date.parse(hooks[0]!.triggeredAt as string));
      expect(alert.triggeredAt).toBeLessThan(restoredAt);
      expect(alert.resolvedAt).toBeLessThan(restoredAt);
      await expect.poll(() => hooks.length, { timeout: 10_000 }).toBe(2);
      expect(hooks[1]).toMatchObject({ kind: "alert.resolved", alertId: fired.alert_id });

      // The same forward once more (as after a lost answer): taken as a duplicate, nothing new.
      const again = await api("POST", "/api/alerts", client.key, {
        alerts: [
          {
            alertId: alert.id,
            rule: alert.rule,
            state: "firing",
            severity: "critical",
            triggeredAt: alert.triggeredAt,
          },
        ],
      });
      expect(again.body).toEqual({ accepted: 0, duplicates: 1 });
      expect((await history()).body.alerts).toHaveLength(1);
    } finally {
      watched.kill("SIGKILL");
      await relay.close();
      receiver.close();
      rmSync(binDir, { recursive: true, force: true });
    }
  });

  it("holds the alerts a restart-process command would trip, visibly in the agent's /alerts history", async () => {
    const client = await newClient();
    const metricsPort = await freePort();
    await launch(client, {
      metricsPort,
      metricsHost: "127.0.0.1",
      alertRules: [
        {
          name: "worker-down",
          expr: 'fleetdeck_process_up{name="worker"}',
          op: "==",
          threshold: 0,
          target: "process:worker",
        },
      ],
    });
    const id = await command(client.id, "restart-process", { name: "worker" });
    expect(await finished(id)).toMatchObject({ status: "completed" });
    const local = await fetch(`http://127.0.0.1:${metricsPort}/alerts`);
    const body = (await local.json()) as { history: { state: string; note: string | null }[] };
    const states = body.history.map((h) => h.state).reverse();
    expect(states).toEqual(["held", "released"]);
    expect(body.history[1]?.note).toContain(id);
    expect(body.history[0]?.note).toMatch(/finished \(completed\)/);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^agent_commands_total\{outcome="completed"\} 1$/m);
    expect(metrics).toMatch(/^fleetdeck_process_up\{name="worker"\} [01]$/m);
    // The whole agent's output (collectors, its own state, alerts, process) passes promtool's lint.
    let promtool = true;
    try {
      execFileSync("sh", ["-c", "command -v promtool"], { stdio: "ignore" });
    } catch {
      promtool = false;
      if (process.env.FLEETDECK_REQUIRE_PROMETHEUS === "1") throw new Error("promtool is required here");
    }
    if (promtool) {
      const lint = execFileSync("promtool", ["check", "metrics"], { input: metrics, encoding: "utf8" });
      expect(lint).toBe("");
    }
  });

  it("is reported stale within the threshold when its agent is frozen (SIGSTOP), and online again after SIGCONT", async () => {
    const client = await newClient();
    const { agent } = await launch(client, { heartbeatIntervalSecs: 0.5 });
    const feed = await connectSse(`${cloud.workerUrl}/api/stream?topics=host.*`, cloud.adminToken);
    const seen = () => feed.received.map((e) => JSON.parse(e.data)).filter((e) => e.clientId === client.id);
    await expect.poll(() => seen().some((e) => e.topic === "host.online"), { timeout: 10_000 }).toBe(true);
    agent.signal("SIGSTOP");
    const stoppedAt = Date.now();
    try {
      await expect.poll(() => seen().some((e) => e.topic === "host.stale"), { timeout: 15_000 }).toBe(true);
      const stale = seen().find((e) => e.topic === "host.stale")!;
      // The threshold (3 s here) counts from the last heartbeat, sent at most 0.5 s before the stop.
      expect(stale.at - stoppedAt).toBeLessThan(3_000 + 1_000);
      expect(stale.data.lastHeartbeatAt).toBeLessThanOrEqual(stoppedAt + 100);
    } finally {
      agent.signal("SIGCONT");
    }
    await expect
      .poll(() => seen().filter((e) => e.topic === "host.online").length, { timeout: 10_000 })
      .toBe(2);
    feed.close();
  });

  it("on SIGTERM lets a running command finish within the grace period, then exits 0", async () => {
    const client = await newClient();
    const { agent } = await launch(client);
    const id = await command(client.id, "exec", { script: "slow" });
    await agent.waitForLog("command started", { command_id: id });
    agent.signal("SIGTERM");
    expect(await agent.exited).toBe(0);
    expect((await finished(id)).status).toBe("completed");
  });

  it("on SIGTERM fails a command that outlasts the grace period as interrupted", async () => {
    const client = await newClient();
    const { agent } = await launch(client, {
      shutdownGraceSecs: 0.5,
      scripts: { forever: { argv: ["sleep", "60"] } },
    });
    const id = await command(client.id, "exec", { script: "forever" });
    await agent.waitForLog("command started", { command_id: id });
    agent.signal("SIGTERM");
    expect(await agent.exited).toBe(0);
    const done = await finished(id);
    expect(done.result.error.code).toBe("INTERRUPTED");
  });
});
