import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, api, createClient, createCommand } from "./helpers.js";

type Outcome = "allow" | 401 | 403 | 404;
const IDENTITIES = [
  "admin",
  "operator",
  "viewer",
  "clientA",
  "clientB",
  "revokedToken",
  "rotatedKey",
  "none",
] as const;
type Who = (typeof IDENTITIES)[number];

interface RouteCase {
  name: string;
  /** Performs the request as `token`, creating any throwaway target it needs. */
  call(token: string | undefined): Promise<number>;
  expect: Partial<Record<Who, Outcome>>;
}

const tokens: Partial<Record<Who, string>> = {};
let clientA: { id: string; key: string };
let commandA: string;
let sessionA: string;
let subscriptionId: string;

async function streamStatus(path: string, t: string | undefined): Promise<number> {
  const worker = (exports as unknown as { default: Fetcher }).default;
  const res = await worker.fetch(`http://fleetdeck.test${path}`, {
    headers: t ? { authorization: `Bearer ${t}` } : {},
  });
  await res.body?.cancel();
  return res.status;
}

async function status(
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<number> {
  return (await api(method, path, { ...(token ? { token } : {}), ...(body === undefined ? {} : { body }) }))
    .status;
}

const operatorsOnly = (admin: Outcome, operator: Outcome, viewer: Outcome, a: Outcome, b: Outcome) => ({
  admin,
  operator,
  viewer,
  clientA: a,
  clientB: b,
});

const ROUTES: RouteCase[] = [
  {
    name: "POST /api/tokens",
    call: (t) => status("POST", "/api/tokens", t, { name: "x", role: "viewer" }),
    expect: operatorsOnly("allow", 403, 403, 403, 403),
  },
  {
    name: "GET /api/tokens",
    call: (t) => status("GET", "/api/tokens", t),
    expect: operatorsOnly("allow", 403, 403, 403, 403),
  },
  {
    name: "DELETE /api/tokens/:id",
    call: async (t) => {
      const target = await api("POST", "/api/tokens", {
        token: ADMIN,
        body: { name: "victim", role: "viewer" },
      });
      return status("DELETE", `/api/tokens/${target.body.id}`, t);
    },
    expect: operatorsOnly("allow", 403, 403, 403, 403),
  },
  {
    name: "POST /api/clients",
    call: (t) => status("POST", "/api/clients", t, { name: "new" }),
    expect: operatorsOnly("allow", 403, 403, 403, 403),
  },
  {
    name: "GET /api/clients",
    call: (t) => status("GET", "/api/clients", t),
    expect: operatorsOnly("allow", "allow", "allow", 403, 403),
  },
  {
    name: "GET /api/clients/:id",
    call: (t) => status("GET", `/api/clients/${clientA.id}`, t),
    expect: operatorsOnly("allow", "allow", "allow", "allow", 404),
  },
  {
    name: "DELETE /api/clients/:id",
    call: async (t) => status("DELETE", `/api/clients/${(await createClient("victim")).id}`, t),
    expect: operatorsOnly("allow", 403, 403, 403, 403),
  },
  {
    name: "POST /api/clients/:id/rotate-key",
    call: async (t) => status("POST", `/api/clients/${(await createClient("victim")).id}/rotate-key`, t),
    expect: operatorsOnly("allow", 403, 403, 403, 403),
  },
  {
    name: "POST /api/commands",
    call: (t) => status("POST", "/api/commands", t, { clientId: clientA.id, action: "health-check" }),
    expect: operatorsOnly("allow", "allow", 403, 403, 403),
  },
  {
    name: "POST /api/commands/batch",
    call: (t) =>
      status("POST", "/api/commands/batch", t, {
        commands: [{ clientId: clientA.id, action: "health-check" }],
      }),
    expect: operatorsOnly("allow", "allow", 403, 403, 403),
  },
  {
    name: "GET /api/commands?clientId=A",
    call: (t) => status("GET", `/api/commands?clientId=${clientA.id}`, t),
    expect: operatorsOnly("allow", "allow", "allow", "allow", 404),
  },
  {
    name: "GET /api/commands/:id",
    call: (t) => status("GET", `/api/commands/${commandA}`, t),
    expect: operatorsOnly("allow", "allow", "allow", "allow", 404),
  },
  {
    name: "GET /api/commands/:id/logs",
    call: (t) => status("GET", `/api/commands/${commandA}/logs`, t),
    expect: operatorsOnly("allow", "allow", "allow", "allow", 404),
  },
  {
    name: "POST /api/commands/:id/cancel",
    call: (t) => status("POST", `/api/commands/${commandA}/cancel`, t),
    expect: operatorsOnly("allow", "allow", 403, 403, 404),
  },
  {
    name: "POST /api/commands/:id/retry",
    call: (t) => status("POST", `/api/commands/${commandA}/retry`, t),
    expect: operatorsOnly("allow", "allow", 403, 403, 404),
  },
  {
    name: "POST /api/commands/:id/ack",
    call: (t) => status("POST", `/api/commands/${commandA}/ack`, t),
    expect: operatorsOnly(403, 403, 403, "allow", 404),
  },
  {
    name: "POST /api/commands/:id/progress",
    call: (t) => status("POST", `/api/commands/${commandA}/progress`, t, { percent: 10 }),
    expect: operatorsOnly(403, 403, 403, "allow", 404),
  },
  {
    name: "POST /api/commands/:id/result",
    call: (t) => status("POST", `/api/commands/${commandA}/result`, t, { success: true, durationMs: 1 }),
    expect: operatorsOnly(403, 403, 403, "allow", 404),
  },
  {
    name: "POST /api/heartbeat",
    call: (t) => status("POST", "/api/heartbeat", t, { agentVersion: "t" }),
    expect: operatorsOnly(403, 403, 403, "allow", "allow"),
  },
  {
    name: "POST /api/alerts",
    call: (t) =>
      status("POST", "/api/alerts", t, {
        alerts: [
          {
            alertId: `al_${"0".repeat(26)}`,
            rule: "r",
            state: "firing",
            severity: "info",
            triggeredAt: Date.now(),
          },
        ],
      }),
    expect: operatorsOnly(403, 403, 403, "allow", "allow"),
  },
  {
    name: "GET /api/alerts?clientId=A",
    call: (t) => status("GET", `/api/alerts?clientId=${clientA.id}`, t),
    expect: operatorsOnly("allow", "allow", "allow", "allow", 404),
  },
  {
    name: "GET /api/alerts/history",
    call: (t) => status("GET", "/api/alerts/history", t),
    expect: operatorsOnly("allow", "allow", "allow", "allow", "allow"),
  },
  {
    name: "GET /api/hosts",
    call: (t) => status("GET", "/api/hosts", t),
    expect: operatorsOnly("allow", "allow", "allow", 403, 403),
  },
  {
    name: "GET /api/hosts/:id",
    call: (t) => status("GET", `/api/hosts/${clientA.id}`, t),
    expect: operatorsOnly("allow", "allow", "allow", "allow", 404),
  },
  {
    name: "GET /api/hosts/:id/timeline",
    call: (t) => status("GET", `/api/hosts/${clientA.id}/timeline`, t),
    expect: operatorsOnly("allow", "allow", "allow", "allow", 404),
  },
  {
    name: "PUT /api/hosts/:id/settings",
    call: (t) => status("PUT", `/api/hosts/${clientA.id}/settings`, t, { staleThresholdSec: 30 }),
    expect: operatorsOnly("allow", "allow", 403, 403, 403),
  },
  {
    name: "GET /api/stream",
    call: (t) => streamStatus("/api/stream?topics=host.*", t),
    expect: operatorsOnly("allow", "allow", "allow", 403, 403),
  },
  {
    name: "POST /api/sessions",
    call: (t) => status("POST", "/api/sessions", t, { clientId: clientA.id, name: "s", spec: {} }),
    expect: operatorsOnly("allow", "allow", 403, "allow", 404),
  },
  {
    name: "POST /api/sessions/:id/transition",
    call: (t) => status("POST", `/api/sessions/${sessionA}/transition`, t, { to: "crashed" }),
    expect: operatorsOnly("allow", "allow", 403, "allow", 404),
  },
  {
    name: "GET /api/sessions/:id",
    call: (t) => status("GET", `/api/sessions/${sessionA}`, t),
    expect: operatorsOnly("allow", "allow", "allow", "allow", 404),
  },
  {
    name: "GET /api/sessions?clientId=A",
    call: (t) => status("GET", `/api/sessions?clientId=${clientA.id}`, t),
    expect: operatorsOnly("allow", "allow", "allow", "allow", 404),
  },
  {
    name: "POST /api/subscriptions",
    call: (t) =>
      status("POST", "/api/subscriptions", t, { url: "http://127.0.0.1:9/hook", topics: ["host.*"] }),
    expect: operatorsOnly("allow", 403, 403, 403, 403),
  },
  {
    name: "GET /api/subscriptions",
    call: (t) => status("GET", "/api/subscriptions", t),
    expect: operatorsOnly("allow", "allow", "allow", 403, 403),
  },
  {
    name: "DELETE /api/subscriptions/:id",
    call: async (t) => {
      const target = await api("POST", "/api/subscriptions", {
        token: ADMIN,
        body: { url: "http://127.0.0.1:9/x", topics: ["*"] },
      });
      return status("DELETE", `/api/subscriptions/${target.body.id}`, t);
    },
    expect: operatorsOnly("allow", 403, 403, 403, 403),
  },
  {
    name: "GET /api/subscriptions/:id/deliveries",
    call: async (t) => status("GET", `/api/subscriptions/${subscriptionId}/deliveries`, t),
    expect: operatorsOnly("allow", "allow", "allow", 403, 403),
  },
  {
    name: "GET /api/events/:clientId",
    call: async (t) => {
      const worker = (exports as unknown as { default: Fetcher }).default;
      const res = await worker.fetch(`http://fleetdeck.test/api/events/${clientA.id}`, {
        headers: t ? { authorization: `Bearer ${t}` } : {},
      });
      await res.body?.cancel();
      return res.status;
    },
    expect: operatorsOnly("allow", "allow", "allow", "allow", 404),
  },
];

beforeAll(async () => {
  tokens.admin = ADMIN;
  for (const role of ["operator", "viewer"] as const) {
    const res = await api("POST", "/api/tokens", { token: ADMIN, body: { name: role, role } });
    tokens[role] = res.body.token;
  }
  const revoked = await api("POST", "/api/tokens", { token: ADMIN, body: { name: "gone", role: "admin" } });
  await api("DELETE", `/api/tokens/${revoked.body.id}`, { token: ADMIN });
  tokens.revokedToken = revoked.body.token;
  clientA = await createClient("a");
  const clientB = await createClient("b");
  tokens.clientA = clientA.key;
  tokens.clientB = clientB.key;
  const rotated = await createClient("rotated");
  await api("POST", `/api/clients/${rotated.id}/rotate-key`, { token: ADMIN });
  tokens.rotatedKey = rotated.key;
  commandA = (await createCommand(clientA.id)).body.id;
  subscriptionId = (
    await api("POST", "/api/subscriptions", {
      token: ADMIN,
      body: { url: "http://127.0.0.1:9/m", topics: ["session.*"] },
    })
  ).body.id;
  sessionA = (
    await api("POST", "/api/sessions", {
      token: ADMIN,
      body: { clientId: clientA.id, name: "matrix", spec: {} },
    })
  ).body.id;
});

describe("authorization matrix: every route against every identity", () => {
  for (const route of ROUTES) {
    for (const who of IDENTITIES) {
      const expected: Outcome = route.expect[who] ?? 401;
      it(`${route.name} as ${who} -> ${expected}`, async () => {
        const got = await route.call(tokens[who]);
        if (expected === "allow") {
          expect([401, 403, 404]).not.toContain(got);
          expect(got).toBeLessThan(500);
        } else {
          expect(got).toBe(expected);
        }
      });
    }
  }
});

describe("401 answers are uniform", () => {
  it("says the same thing for a missing, wrong, revoked or rotated credential", async () => {
    const bodies = await Promise.all(
      [undefined, "nope", tokens.revokedToken, tokens.rotatedKey, `sk_${clientA.id}_${"x".repeat(43)}`].map(
        async (t) => (await api("GET", "/api/clients", t ? { token: t } : {})).body,
      ),
    );
    for (const body of bodies) {
      expect(body).toEqual({
        error: { code: "UNAUTHORIZED", message: "missing, invalid or revoked credentials", retryable: false },
      });
    }
  });
});
