import { describe, expect, it } from "vitest";
import { ulid } from "../../src/domain/ids.js";
import { ADMIN, api, createClient, openFeed, runHubAlarm } from "./helpers.js";

function report(overrides: Record<string, unknown> = {}) {
  const triggeredAt = Date.now() - 60_000;
  return {
    alertId: `al_${ulid(triggeredAt)}`,
    rule: "disk-full",
    state: "firing",
    severity: "critical",
    labels: { mountpoint: "/" },
    value: 97.5,
    summary: "Root filesystem above 90%",
    triggeredAt,
    ...overrides,
  };
}

describe("alerts forwarded by agents", () => {
  it("takes each change once, publishes it at the agent's time, and lists it from Postgres", async () => {
    const client = await createClient("alerting-host");
    const feed = await openFeed(ADMIN, "alert.*");
    const fired = report();
    const first = await api("POST", "/api/alerts", { token: client.key, body: { alerts: [fired] } });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ accepted: 1, duplicates: 0 });
    // The same forward again (its answer was lost): a duplicate, nothing new.
    const again = await api("POST", "/api/alerts", { token: client.key, body: { alerts: [fired] } });
    expect(again.body).toEqual({ accepted: 0, duplicates: 1 });

    const event = await feed.next();
    expect(event.event).toBe("alert.triggered");
    const data = JSON.parse(event.data);
    expect(data).toMatchObject({ topic: "alert.triggered", clientId: client.id, at: fired.triggeredAt });
    expect(data.data).toMatchObject({ alertId: fired.alertId, rule: "disk-full", severity: "critical" });

    await runHubAlarm(client.id, ["outbox"]);
    const active = await api("GET", `/api/alerts?clientId=${client.id}`, { token: ADMIN });
    expect(active.status).toBe(200);
    expect(active.body.alerts).toEqual([
      {
        id: fired.alertId,
        clientId: client.id,
        rule: "disk-full",
        state: "firing",
        severity: "critical",
        labels: { mountpoint: "/" },
        value: 97.5,
        summary: "Root filesystem above 90%",
        triggeredAt: fired.triggeredAt,
        resolvedAt: null,
      },
    ]);

    const resolvedAt = Date.now() - 1000;
    const resolved = await api("POST", "/api/alerts", {
      token: client.key,
      body: { alerts: [{ ...fired, state: "resolved", value: 40, resolvedAt }] },
    });
    expect(resolved.body).toEqual({ accepted: 1, duplicates: 0 });
    // A late replay of the firing changes nothing: resolved stays resolved.
    const late = await api("POST", "/api/alerts", { token: client.key, body: { alerts: [fired] } });
    expect(late.body).toEqual({ accepted: 0, duplicates: 1 });
    const next = JSON.parse((await feed.next()).data);
    expect(next).toMatchObject({ topic: "alert.resolved", at: resolvedAt });
    await feed.close();

    await runHubAlarm(client.id, ["outbox"]);
    expect((await api("GET", `/api/alerts?clientId=${client.id}`, { token: ADMIN })).body.alerts).toEqual([]);
    const history = await api("GET", `/api/alerts/history?clientId=${client.id}`, { token: client.key });
    expect(history.status).toBe(200);
    expect(history.body.alerts).toMatchObject([
      { id: fired.alertId, state: "resolved", triggeredAt: fired.triggeredAt, resolvedAt, value: 40 },
    ]);

    const timeline = await api("GET", `/api/hosts/${client.id}/timeline`, { token: ADMIN });
    expect(timeline.body.entries.filter((e: { kind: string }) => e.kind === "alert")).toHaveLength(2);
  });

  it("pages the history and filters by state and severity", async () => {
    const client = await createClient("many-alerts");
    const base = Date.now() - 3_600_000;
    const alerts = Array.from({ length: 5 }, (_, i) =>
      report({
        alertId: `al_${ulid(base + i * 1000)}`,
        triggeredAt: base + i * 1000,
        severity: i % 2 === 0 ? "warning" : "info",
        rule: `r${i}`,
      }),
    );
    expect((await api("POST", "/api/alerts", { token: client.key, body: { alerts } })).body.accepted).toBe(5);
    await runHubAlarm(client.id, ["outbox"]);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { alerts: { rule: string }[]; nextCursor: string | null } } = await api(
        "GET",
        `/api/alerts/history?clientId=${client.id}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
        { token: ADMIN },
      );
      seen.push(...page.body.alerts.map((a) => a.rule));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(["r4", "r3", "r2", "r1", "r0"]);
    const warnings = await api("GET", `/api/alerts?clientId=${client.id}&severity=warning`, { token: ADMIN });
    expect(warnings.body.alerts.map((a: { rule: string }) => a.rule)).toEqual(["r4", "r2", "r0"]);
    const bad = await api("GET", "/api/alerts/history?cursor=%%%", { token: ADMIN });
    expect(bad.status).toBe(422);
  });

  it("refuses malformed reports with the field named, and reports from anyone but an agent", async () => {
    const client = await createClient("strict");
    const bad = await api("POST", "/api/alerts", {
      token: client.key,
      body: { alerts: [report({ severity: "catastrophic" })] },
    });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(bad.body.error.details)).toContain("severity");
    const unknownField = await api("POST", "/api/alerts", {
      token: client.key,
      body: { alerts: [report({ extra: 1 })] },
    });
    expect(unknownField.status).toBe(422);
    const asOperator = await api("POST", "/api/alerts", { token: ADMIN, body: { alerts: [report()] } });
    expect(asOperator.status).toBe(403);
  });
});

describe("Server-Timing", () => {
  it("says where a command's creation spent its time in the Worker", async () => {
    const client = await createClient("timed");
    const created = await api("POST", "/api/commands", {
      token: ADMIN,
      body: { clientId: client.id, action: "health-check" },
    });
    expect(created.status).toBe(201);
    const timing = created.headers.get("server-timing") ?? "";
    for (const stage of ["ratelimit", "hub", "total"])
      expect(timing).toMatch(new RegExp(`(^|,\\s*)${stage};dur=`));
    const asAgent = await api("GET", `/api/hosts/${client.id}`, { token: client.key });
    expect(asAgent.headers.get("server-timing")).toMatch(
      /(^|,\s*)auth;dur=[^,]*client key checked by its hub/,
    );
  });
});
