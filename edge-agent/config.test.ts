import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { ConfigError, loadConfig, maskedConfig } from "./config.js";

const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = {
  serverUrl: "https://edge.example.com",
  clientKey: `sk_cl_01JB0000000000000000000000_${"k".repeat(43)}`,
};

function load(settings: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
  const file = path.join(dir, `${Math.random()}.yaml`);
  writeFileSync(file, YAML.stringify({ ...base, ...settings }));
  return loadConfig({ file, env });
}

describe("agent settings", () => {
  it("refuses a file that is not YAML, naming the file and the line, and reads plain scalars as YAML 1.2 core", () => {
    const file = path.join(dir, "broken.yaml");
    writeFileSync(file, `serverUrl: ${base.serverUrl}\nclientKey: ${base.clientKey}\nmetricsPort: [9100\n`);
    expect(() => loadConfig({ file, env: {} })).toThrow(ConfigError);
    expect(() => loadConfig({ file, env: {} })).toThrow(
      /broken\.yaml is not valid YAML at line 4, column 1: unexpected end of the stream/,
    );
    // The message never quotes the file's lines (they may hold the client key).
    expect(() => loadConfig({ file, env: {} })).not.toThrow(/sk_cl_/);
    const twice = path.join(dir, "twice.yaml");
    writeFileSync(twice, `serverUrl: ${base.serverUrl}\nserverUrl: ${base.serverUrl}\n`);
    expect(() => loadConfig({ file: twice, env: {} })).toThrow(/duplicated mapping key/);
    // A date-like plain scalar stays a string (no YAML 1.1 timestamps); yes/no stay strings too.
    const plain = path.join(dir, "plain.yaml");
    writeFileSync(
      plain,
      `serverUrl: ${base.serverUrl}\nclientKey: ${base.clientKey}\nmetricsHost: 2026-11-29\n`,
    );
    expect(loadConfig({ file: plain, env: {} }).metricsHost).toBe("2026-11-29");
  });

  it("takes the environment over the file and names a bad setting with its variable", () => {
    expect(load({ metricsPort: 9100 }, { METRICS_PORT: "9200" }).metricsPort).toBe(9200);
    expect(() => load({}, { METRICS_PORT: "nine" })).toThrow(/METRICS_PORT: expected a number/);
    expect(() => load({ metricsPort: 70_000 })).toThrow(ConfigError);
    expect(() => load({ metricsPort: 70_000 })).toThrow(/metricsPort \(or METRICS_PORT\)/);
  });

  it("defaults collectors, self-limits and alerting, and rejects unknown keys inside them", () => {
    const c = load({});
    expect(c.collectors.cpu).toEqual({ enabled: true, intervalSecs: 5 });
    expect(c.collectors.processes.topN).toBe(5);
    expect(c.selfLimits).toEqual({ cpuPercent: 2, rssMb: 128, checkIntervalSecs: 10 });
    expect(c.alertRules).toEqual([]);
    expect(() => load({ collectors: { cpu: { every: 5 } } })).toThrow(/collectors\.cpu\.every: /);
  });

  it("checks alert rules, then checks them against the channels and each other", () => {
    const problems = (settings: Record<string, unknown>) => {
      try {
        load(settings);
      } catch (error) {
        return (error as Error).message;
      }
      return "";
    };
    const syntax = problems({
      alertRules: [
        { name: "a", expr: "max(y", op: ">", threshold: 1 },
        { name: "b", expr: "z", op: "~", threshold: 1 },
      ],
    });
    expect(syntax).toContain('alertRules.0.expr: unbalanced parentheses in "max(y"');
    expect(syntax).toContain("alertRules.1.op");
    const references = problems({
      alertChannels: { ops: { type: "webhook", url: "https://hooks.example.com/a" } },
      alertRules: [
        { name: "a", expr: "x", op: ">", threshold: 1, channels: ["ops", "pager"] },
        { name: "a", expr: "y", op: ">", threshold: 1 },
      ],
    });
    expect(references).toContain('alertRules.0.channels: no channel named "pager" in alertChannels');
    expect(references).toContain('alertRules.1.name: a second rule named "a"');
  });

  it("masks channel credentials in --print-config", () => {
    const c = load({
      alertChannels: {
        mail: { type: "email", host: "smtp.example.com", pass: "hunter2", from: "a@b.co", to: ["c@d.co"] },
        chat: { type: "slack", webhookUrl: "https://hooks.slack.com/services/T0/B0/SECRET" },
        hook: {
          type: "webhook",
          url: "https://x.example.com",
          headers: { authorization: "Bearer t" },
          secret: "0123456789abcdef",
        },
      },
    });
    const text = JSON.stringify(maskedConfig(c));
    for (const secret of ["hunter2", "SECRET", "Bearer t", "0123456789abcdef", "k".repeat(43)])
      expect(text).not.toContain(secret);
    expect(text).toContain("https://hooks.slack.com/(masked)");
  });
});
