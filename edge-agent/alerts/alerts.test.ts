import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { SMTPServer } from "smtp-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfSignedCert } from "../../test/support/certs.js";
import type { EdgeAnswer } from "../edge-client.js";
import type { Family } from "../metrics/family.js";
import { parseOrThrow } from "../validate.js";
import { type ChannelConfig, Channels } from "./channels.js";
import { AlertManager } from "./manager.js";
import { AlertRuleSchema } from "./rules.js";
import { AlertStore } from "./store.js";

const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-alerts-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A gauge the test sets, as a collector would report it. */
function gauge(name: string) {
  let value = 0;
  return {
    set: (v: number) => {
      value = v;
    },
    family: (): Family => ({
      name,
      help: "",
      type: "gauge",
      labelNames: [],
      series: [{ labels: {}, value }],
    }),
  };
}

function manager(options: {
  file: string;
  rules: unknown[];
  channels?: Record<string, ChannelConfig>;
  families: () => Family[];
  clock: { now: number };
  forward?: (alerts: Record<string, unknown>[]) => Promise<EdgeAnswer>;
}) {
  const store = new AlertStore(options.file);
  const m = new AlertManager({
    rules: options.rules.map((r) => parseOrThrow(AlertRuleSchema, r)),
    channels: new Channels(options.channels ?? {}),
    store,
    families: options.families,
    clientId: "cl_01JB0000000000000000000000",
    hostname: "test-host",
    evaluateIntervalMs: 60_000,
    forward: options.forward ?? (async () => ({ kind: "unreachable", error: "no edge in this test" })),
    log: () => {},
    now: () => options.clock.now,
    retryBaseMs: 20,
  });
  return { m, store };
}

describe("alert state and history", () => {
  it("a pending alert survives an agent restart and fires on time; history keeps every change", async () => {
    const file = path.join(dir, "restart.db");
    const g = gauge("load");
    const clock = { now: 1_000_000 };
    const rules = [
      { name: "high-load", expr: "load", op: ">", threshold: 5, for: "10s", severity: "critical" },
    ];
    let { m, store } = manager({ file, rules, families: () => [g.family()], clock });
    g.set(9);
    m.evaluate();
    expect(m.active()).toMatchObject([{ rule: "high-load", state: "pending" }]);
    await m.stop();

    // Restarted 11 s later: the pending timer counts from the first observation, not from the restart.
    clock.now += 11_000;
    ({ m, store } = manager({ file, rules, families: () => [g.family()], clock }));
    m.evaluate();
    expect(m.active()).toMatchObject([{ rule: "high-load", state: "firing", severity: "critical" }]);
    g.set(1);
    clock.now += 1000;
    m.evaluate();
    expect(m.active()).toEqual([]);
    const history = store.history().reverse();
    expect(history.map((h) => h.state)).toEqual(["pending", "firing", "resolved"]);
    const firing = history[1]!;
    expect(firing.triggeredAt).toBe(1_011_000);
    expect(firing.resolvedAt).toBe(1_012_000);
    expect(history[2]!.alertId).toBe(firing.alertId);
    // Both changes wait for the edge, in order.
    expect(store.pendingForwards().map((f) => f.payload.state)).toEqual(["firing", "resolved"]);
    await m.stop();
  });

  it("forwards reach the edge once it answers, oldest first, with their original times", async () => {
    const g = gauge("errors");
    const clock = { now: 2_000_000 };
    const received: Record<string, unknown>[] = [];
    let up = false;
    const { m, store } = manager({
      file: path.join(dir, "forward.db"),
      rules: [{ name: "errors", expr: "errors", op: ">=", threshold: 1 }],
      families: () => [g.family()],
      clock,
      forward: async (alerts) => {
        if (!up) return { kind: "unreachable", error: "edge down" };
        received.push(...alerts);
        return { kind: "ok", status: 200, body: {} };
      },
    });
    g.set(3);
    m.evaluate();
    clock.now += 5000;
    g.set(0);
    m.evaluate();
    await m.forward();
    expect(received).toEqual([]);
    expect(store.forwardsWaiting()).toBe(2);
    up = true;
    clock.now += 60_000;
    await m.forward();
    expect(received.map((a) => [a.state, a.triggeredAt, a.resolvedAt])).toEqual([
      ["firing", 2_000_000, null],
      ["resolved", 2_000_000, 2_005_000],
    ]);
    await m.forward();
    expect(received).toHaveLength(2);
    await m.stop();
  });

  it("holds a rule's alerts while a command acts on its target, visibly, then fires if still true", async () => {
    const up = gauge("fleetdeck_process_up");
    const clock = { now: 3_000_000 };
    const notified: unknown[] = [];
    const receiver = await startReceiver(async (_req, body) => {
      notified.push(JSON.parse(body));
      return 200;
    });
    const { m, store } = manager({
      file: path.join(dir, "hold.db"),
      rules: [
        { name: "web-down", expr: "fleetdeck_process_up", op: "==", threshold: 0, target: "process:web" },
      ],
      channels: { hook: { type: "webhook", url: receiver.url, headers: {} } },
      families: () => [up.family()],
      clock,
    });
    up.set(1);
    m.evaluate();
    m.hold("cmd_1", "restart-process", ["process:web"]);
    up.set(0); // the restart takes the process down for a moment
    m.evaluate();
    clock.now += 1000;
    m.evaluate();
    await m.sendNotifications();
    expect(notified).toEqual([]);
    up.set(1); // back up before the result: nothing fires
    clock.now += 1000;
    m.evaluate();
    m.release("cmd_1", "completed");
    await m.sendNotifications();
    expect(notified).toEqual([]);
    // A restart that leaves it down: held, then fires on release.
    m.hold("cmd_2", "restart-process", ["process:web"]);
    up.set(0);
    clock.now += 1000;
    m.evaluate();
    m.release("cmd_2", "PROCESS_FAILED");
    await m.sendNotifications();
    expect(notified).toMatchObject([{ kind: "alert.triggered", rule: "web-down" }]);
    const states = store
      .history()
      .reverse()
      .map((h) => h.state);
    expect(states).toEqual([
      "held",
      "pending",
      "held",
      "released",
      "held",
      "pending",
      "held",
      "released",
      "firing",
    ]);
    expect(store.history().find((h) => h.state === "released")?.note).toMatch(/cmd_2.*PROCESS_FAILED/);
    await receiver.close();
    await m.stop();
  });
});

describe("channels end to end", () => {
  let smtp: SMTPServer;
  let smtpPort: number;
  const mails: { secure: boolean; raw: string; to: string[] }[] = [];
  const certDir = mkdtempSync(path.join(tmpdir(), "fleetdeck-smtp-"));

  beforeAll(async () => {
    const tls = selfSignedCert(certDir);
    smtp = new SMTPServer({
      key: readFileSync(tls.key),
      cert: readFileSync(tls.cert),
      authOptional: false,
      onAuth(auth, _session, cb) {
        if (auth.username === "alerts" && auth.password === "s3cret") cb(null, { user: "alerts" });
        else cb(new Error("bad credentials"));
      },
      onData(stream, session, cb) {
        let raw = "";
        stream.on("data", (d: Buffer) => (raw += d.toString()));
        stream.on("end", () => {
          mails.push({ secure: session.secure, raw, to: session.envelope.rcptTo.map((r) => r.address) });
          cb();
        });
      },
      logger: false,
    });
    await new Promise<void>((r) => smtp.listen(0, "127.0.0.1", () => r()));
    smtpPort = (smtp.server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((r) => smtp.close(() => r()));
    rmSync(certDir, { recursive: true, force: true });
  });

  it("email (STARTTLS, auth, HTML and text), Slack and a signed webhook, with retries and backoff", async () => {
    const hookSecret = "whook-secret-0123456789";
    let hookAttempts = 0;
    const hooks: { headers: IncomingMessage["headers"]; body: string }[] = [];
    const hook = await startReceiver(async (req, body) => {
      hookAttempts++;
      if (hookAttempts <= 2) return 503; // the receiver is briefly down: retried with backoff
      hooks.push({ headers: req.headers, body });
      return 204;
    });
    const slackBodies: string[] = [];
    const slack = await startReceiver(async (_req, body) => {
      slackBodies.push(body);
      return 200;
    });
    const g = gauge("fleetdeck_filesystem_used_percent");
    const clock = { now: Date.now() };
    const { m, store } = manager({
      file: path.join(dir, "channels.db"),
      rules: [
        {
          name: "disk-full",
          expr: "fleetdeck_filesystem_used_percent",
          op: ">",
          threshold: 90,
          severity: "critical",
          summary: "Root filesystem above 90%",
          labels: { team: "ops" },
        },
      ],
      channels: {
        mail: {
          type: "email",
          host: "127.0.0.1",
          port: smtpPort,
          secure: false,
          requireTls: true,
          tlsInsecure: true,
          user: "alerts",
          pass: "s3cret",
          from: "fleetdeck@example.test",
          to: ["oncall@example.test"],
        },
        chat: { type: "slack", webhookUrl: slack.url, mentionChannelOn: ["critical"] },
        hook: { type: "webhook", url: hook.url, headers: { "x-team": "ops" }, secret: hookSecret },
      },
      families: () => [g.family()],
      clock,
    });
    g.set(97.5);
    m.evaluate();
    for (let i = 0; i < 100 && (hooks.length === 0 || mails.length === 0 || slackBodies.length === 0); i++) {
      clock.now = Date.now();
      await m.sendNotifications();
      await pause(20);
    }

    expect(mails).toHaveLength(1);
    expect(mails[0]!.secure).toBe(true);
    expect(mails[0]!.to).toEqual(["oncall@example.test"]);
    const mail = unfold(mails[0]!.raw);
    expect(mail).toMatch(/^Subject: \[FIRING:critical\] disk-full on test-host$/m);
    expect(mail).toMatch(/^Content-Type: text\/plain/m);
    expect(mail).toMatch(/^Content-Type: text\/html/m);
    expect(mail).toContain("Root filesystem above 90% (value 97.5)");
    expect(mail).toContain("<h2");

    expect(slackBodies).toHaveLength(1);
    const slackMessage = JSON.parse(slackBodies[0]!);
    expect(slackMessage.text).toMatch(/^<!channel> :rotating_light: \[FIRING:critical\] disk-full/);
    expect(slackMessage.blocks[0]).toMatchObject({ type: "header" });

    expect(hookAttempts).toBe(3);
    expect(hooks).toHaveLength(1);
    const { headers, body } = hooks[0]!;
    expect(headers["x-team"]).toBe("ops");
    expect(headers["x-fleetdeck-event"]).toBe("alert.triggered");
    const expected = `sha256=${createHmac("sha256", hookSecret).update(`${headers["x-fleetdeck-timestamp"]}.${body}`).digest("hex")}`;
    expect(headers["x-fleetdeck-signature"]).toBe(expected);
    expect(JSON.parse(body)).toMatchObject({
      kind: "alert.triggered",
      rule: "disk-full",
      severity: "critical",
      value: 97.5,
      labels: { team: "ops" },
      hostname: "test-host",
    });
    expect(store.notificationCounts()).toEqual({ sent: 3 });

    // Resolved: each channel hears about it once more.
    g.set(50);
    clock.now = Date.now();
    m.evaluate();
    for (let i = 0; i < 100 && (hooks.length < 2 || mails.length < 2 || slackBodies.length < 2); i++) {
      await m.sendNotifications();
      await pause(20);
    }
    expect(JSON.parse(hooks[1]!.body)).toMatchObject({ kind: "alert.resolved", state: "resolved" });
    expect(unfold(mails[1]!.raw)).toMatch(/^Subject: \[RESOLVED:critical\] disk-full on test-host$/m);
    expect(JSON.parse(slackBodies[1]!).text).not.toContain("<!channel>");
    await hook.close();
    await slack.close();
    await m.stop();
  });

  it("gives a notification up after the last attempt, counted as dead and logged", async () => {
    const g = gauge("x");
    const clock = { now: Date.now() };
    const store = new AlertStore(path.join(dir, "dead.db"));
    const logs: string[] = [];
    const m = new AlertManager({
      rules: [parseOrThrow(AlertRuleSchema, { name: "x", expr: "x", op: ">", threshold: 0 })],
      channels: new Channels({
        hook: { type: "webhook", url: "http://127.0.0.1:9/nothing-here", headers: {} },
      }),
      store,
      families: () => [g.family()],
      clientId: "cl_01JB0000000000000000000000",
      hostname: "h",
      evaluateIntervalMs: 60_000,
      forward: async () => ({ kind: "unreachable", error: "-" }),
      log: (_level, msg) => logs.push(msg),
      now: () => clock.now,
      retryBaseMs: 1,
      maxNotificationAttempts: 3,
    });
    g.set(1);
    m.evaluate();
    for (let i = 0; i < 3; i++) {
      clock.now += 10_000;
      await m.sendNotifications();
    }
    expect(store.notificationCounts()).toEqual({ dead: 1 });
    expect(logs.filter((l) => l === "alert notification failed; will retry")).toHaveLength(2);
    expect(logs).toContain("alert notification given up");
    await m.stop();
  });
});

/** A raw message with quoted-printable soft line breaks and escapes undone (all ASCII here). */
function unfold(raw: string): string {
  return raw
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
    .replace(/\r\n/g, "\n");
}

async function startReceiver(
  handle: (req: IncomingMessage, body: string) => Promise<number>,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      handle(req, body).then((status) => res.writeHead(status).end());
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
