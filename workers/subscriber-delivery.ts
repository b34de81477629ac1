/**
 * How a fleet event becomes a subscriber's HTTP request: signed the Standard Webhooks way for
 * `webhook` subscriptions, formatted for an incoming-webhook URL for `slack` ones.
 */
export interface StoredSubscription {
  id: string;
  url: string;
  kind: "webhook" | "slack";
  topics: string[];
  secret: string | null;
}

export interface DeliveredEvent {
  id: string;
  topic: string;
  clientId: string | null;
  at: number;
  data: Record<string, unknown>;
}

function base64(bytes: ArrayBuffer | Uint8Array): string {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
}

/** `whsec_` + base64 of 24 random bytes, as Standard Webhooks secrets look. */
export function newWebhookSecret(): string {
  const key = new Uint8Array(24);
  crypto.getRandomValues(key);
  return `whsec_${base64(key)}`;
}

/** Standard Webhooks v1: base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")). */
export async function signStandardWebhook(
  secret: string,
  id: string,
  timestampSec: number,
  body: string,
): Promise<string> {
  const raw = secret.startsWith("whsec_") ? secret.slice(6) : secret;
  const keyBytes = Uint8Array.from(atob(raw), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    new TextEncoder().encode(`${id}.${timestampSec}.${body}`),
  );
  return `v1,${base64(mac)}`;
}

export async function buildDelivery(
  sub: StoredSubscription,
  event: DeliveredEvent,
  deliveryId: string,
  now: number,
): Promise<{ body: string; headers: Record<string, string> }> {
  if (sub.kind === "slack") {
    const host = event.clientId ? ` on \`${event.clientId}\`` : "";
    const critical =
      event.topic === "host.stale" || event.topic === "session.crashed" || event.topic === "command.failed";
    const text = `${critical ? ":red_circle:" : ":large_blue_circle:"} *${event.topic}*${host}`;
    return {
      body: JSON.stringify({
        text,
        blocks: [
          { type: "section", text: { type: "mrkdwn", text } },
          {
            type: "context",
            elements: [{ type: "mrkdwn", text: `${new Date(event.at).toISOString()} · event ${event.id}` }],
          },
          {
            type: "section",
            text: {
              type: "mrkdwn",
              text: `\`\`\`${JSON.stringify(event.data, null, 2).slice(0, 2800)}\`\`\``,
            },
          },
        ],
      }),
      headers: { "Content-Type": "application/json" },
    };
  }
  const body = JSON.stringify({
    type: event.topic,
    timestamp: new Date(event.at).toISOString(),
    data: { ...event, deliveryId },
  });
  const ts = Math.floor(now / 1000);
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    "webhook-id": deliveryId,
    "webhook-timestamp": String(ts),
  };
  if (sub.secret) headers["webhook-signature"] = await signStandardWebhook(sub.secret, deliveryId, ts, body);
  return { body, headers };
}
