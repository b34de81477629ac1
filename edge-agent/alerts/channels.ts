/**
 * Where alert notifications go: email over SMTP (nodemailer, STARTTLS or implicit TLS, HTML and
 * text bodies), a Slack incoming webhook (Block Kit, @channel on chosen severities), and a custom
 * webhook (JSON, custom headers, HMAC-SHA256 signature). Each send either resolves or throws;
 * retries with backoff are the caller's (the notification outbox in the alert store).
 */
import type { Transporter } from "nodemailer";
import * as v from "valibot";
import { nodeCrypto } from "../builtins.js";
import { request } from "../http.js";
import { int, stringMap, text, url } from "../validate.js";

const EmailChannelSchema = v.strictObject({
  type: v.literal("email"),
  host: text(),
  port: v.optional(int(1, 65_535), 587),
  /** Implicit TLS from the first byte (port 465). Otherwise STARTTLS when the server offers it. */
  secure: v.optional(v.boolean(), false),
  /** Refuse to send unless the connection is upgraded to TLS (STARTTLS). */
  requireTls: v.optional(v.boolean(), true),
  /** Accept a certificate that does not verify (self-signed test servers only). */
  tlsInsecure: v.optional(v.boolean(), false),
  user: v.optional(v.string()),
  pass: v.optional(v.string()),
  from: text(Number.POSITIVE_INFINITY, 3),
  to: v.pipe(v.array(text(Number.POSITIVE_INFINITY, 3)), v.minLength(1, "expected at least one address")),
});

const SlackChannelSchema = v.strictObject({
  type: v.literal("slack"),
  webhookUrl: url(),
  /** Severities whose firing alerts start with @channel. */
  mentionChannelOn: v.optional(v.array(v.picklist(["info", "warning", "critical"])), ["critical"]),
});

const WebhookChannelSchema = v.strictObject({
  type: v.literal("webhook"),
  url: url(),
  headers: v.optional(stringMap(), {}),
  /** Signs each body: X-Fleetdeck-Signature: sha256=hex(HMAC(secret, `${timestamp}.${body}`)). */
  secret: v.optional(text(Number.POSITIVE_INFINITY, 16)),
});

export const ChannelSchema = v.variant("type", [
  EmailChannelSchema,
  SlackChannelSchema,
  WebhookChannelSchema,
]);
export type ChannelConfig = v.InferOutput<typeof ChannelSchema>;

/** What every channel is given: one alert that fired or resolved. */
export interface AlertNotification {
  kind: "alert.triggered" | "alert.resolved";
  alertId: string;
  rule: string;
  severity: "info" | "warning" | "critical";
  state: "firing" | "resolved";
  value: number | null;
  op: string;
  threshold: number;
  expr: string;
  labels: Record<string, string>;
  summary: string | null;
  clientId: string;
  hostname: string;
  triggeredAt: string;
  resolvedAt: string | null;
}

export class ChannelError extends Error {
  override readonly name = "ChannelError";
}

const TIMEOUT_MS = 10_000;

export function describe(n: AlertNotification): { title: string; line: string } {
  const what = n.state === "firing" ? "FIRING" : "RESOLVED";
  const title = `[${what}:${n.severity}] ${n.rule} on ${n.hostname}`;
  const line = `${n.summary ?? `${n.expr} ${n.op} ${n.threshold}`} (value ${n.value ?? "n/a"})`;
  return { title, line };
}

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${nodeCrypto().createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

export class Channels {
  private readonly mailers = new Map<string, Transporter>();

  constructor(private readonly configs: Record<string, ChannelConfig>) {}

  names(): string[] {
    return Object.keys(this.configs);
  }

  async send(name: string, n: AlertNotification, deliveryId: string): Promise<void> {
    const config = this.configs[name];
    if (!config) throw new ChannelError(`no channel named "${name}" is configured`);
    if (config.type === "email") return this.email(name, config, n);
    if (config.type === "slack") return postJson(config.webhookUrl, slackMessage(config, n), {});
    const body = JSON.stringify(n);
    const timestamp = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      ...config.headers,
      "x-fleetdeck-delivery": deliveryId,
      "x-fleetdeck-event": n.kind,
      "x-fleetdeck-timestamp": String(timestamp),
    };
    if (config.secret) headers["x-fleetdeck-signature"] = signWebhook(config.secret, timestamp, body);
    return postJson(config.url, body, headers);
  }

  private async email(
    name: string,
    config: v.InferOutput<typeof EmailChannelSchema>,
    n: AlertNotification,
  ): Promise<void> {
    let mailer = this.mailers.get(name);
    if (!mailer) {
      const { default: nodemailer } = await import("nodemailer");
      mailer = nodemailer.createTransport({
        host: config.host,
        port: config.port,
        secure: config.secure,
        requireTLS: !config.secure && config.requireTls,
        ...(config.user ? { auth: { user: config.user, pass: config.pass ?? "" } } : {}),
        tls: { rejectUnauthorized: !config.tlsInsecure },
        connectionTimeout: TIMEOUT_MS,
        greetingTimeout: TIMEOUT_MS,
        socketTimeout: TIMEOUT_MS,
      });
      this.mailers.set(name, mailer);
    }
    const { title, line } = describe(n);
    const rows: [string, string][] = [
      ["Rule", n.rule],
      ["Severity", n.severity],
      ["Host", `${n.hostname} (${n.clientId})`],
      ["Value", String(n.value ?? "n/a")],
      ["Condition", `${n.expr} ${n.op} ${n.threshold}`],
      ["Triggered", n.triggeredAt],
      ...(n.resolvedAt ? ([["Resolved", n.resolvedAt]] as [string, string][]) : []),
      ...Object.entries(n.labels).map(([k, v]) => [`label ${k}`, v] as [string, string]),
    ];
    await mailer.sendMail({
      from: config.from,
      to: config.to,
      subject: title,
      text: `${line}\n\n${rows.map(([k, v]) => `${k}: ${v}`).join("\n")}\n`,
      html: `<h2 style="color:${n.state === "firing" ? "#b00020" : "#1b7f3b"}">${escapeHtml(title)}</h2><p>${escapeHtml(line)}</p><table>${rows
        .map(([k, v]) => `<tr><th align="left">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`)
        .join("")}</table>`,
      headers: { "X-Fleetdeck-Alert-Id": n.alertId },
    });
  }

  close(): void {
    for (const m of this.mailers.values()) m.close();
    this.mailers.clear();
  }
}

export function slackMessage(config: v.InferOutput<typeof SlackChannelSchema>, n: AlertNotification): string {
  const { title, line } = describe(n);
  const mention = n.state === "firing" && config.mentionChannelOn.includes(n.severity) ? "<!channel> " : "";
  const emoji =
    n.state === "resolved"
      ? ":white_check_mark:"
      : n.severity === "critical"
        ? ":rotating_light:"
        : ":warning:";
  return JSON.stringify({
    text: `${mention}${emoji} ${title}: ${line}`,
    blocks: [
      {
        type: "header",
        text: { type: "plain_text", text: `${n.state === "firing" ? "Firing" : "Resolved"}: ${n.rule}` },
      },
      { type: "section", text: { type: "mrkdwn", text: `${mention}${emoji} *${n.hostname}*: ${line}` } },
      {
        type: "section",
        fields: [
          { type: "mrkdwn", text: `*Severity*\n${n.severity}` },
          { type: "mrkdwn", text: `*Value*\n${n.value ?? "n/a"}` },
          { type: "mrkdwn", text: `*Condition*\n\`${n.expr} ${n.op} ${n.threshold}\`` },
          { type: "mrkdwn", text: `*Since*\n${n.triggeredAt}` },
        ],
      },
      {
        type: "context",
        elements: [{ type: "mrkdwn", text: `alert ${n.alertId} · client ${n.clientId}` }],
      },
    ],
  });
}

async function postJson(url: string, body: string, headers: Record<string, string>): Promise<void> {
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
      timeoutMs: TIMEOUT_MS,
    });
  } catch (error) {
    throw new ChannelError(`POST ${new URL(url).host} failed: ${(error as Error).message}`);
  }
  if (res.status < 200 || res.status >= 300)
    throw new ChannelError(`POST ${new URL(url).host} answered ${res.status}: ${res.text.slice(0, 200)}`);
}
