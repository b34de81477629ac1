/**
 * The agent as shipped to hosts (npm run build:agent): the bundle starts under Node 22 and knows
 * its version without a package.json beside it, and its settings errors read as from a checkout.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildAgent } from "./build.js";

const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-build-"));
let main = "";

beforeAll(async () => {
  main = await buildAgent(path.join(dir, "agent"));
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const agent = (...args: string[]) =>
  run(process.execPath, ["--disable-warning=ExperimentalWarning", main, ...args], {
    env: { PATH: process.env.PATH ?? "" },
  });

describe("the built agent", () => {
  it("prints the version of package.json, which is not beside it", async () => {
    const { version } = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    const { stdout } = await agent("--version");
    expect(stdout.trim()).toBe(version);
    expect(version).not.toBe("0.0.0");
  });

  it("loads its settings and masks the client key in --print-config", async () => {
    const file = path.join(dir, "agent.yaml");
    const key = `sk_cl_01JB0000000000000000000000_${"k".repeat(43)}`;
    writeFileSync(file, `serverUrl: http://127.0.0.1:9\nclientKey: ${key}\ndataDir: ${dir}/data\n`);
    const { stdout } = await agent("--config", file, "--print-config");
    const printed = JSON.parse(stdout) as Record<string, unknown>;
    expect(printed.serverUrl).toBe("http://127.0.0.1:9");
    expect(stdout).not.toContain("k".repeat(43));
  });

  it("refuses an unknown option with exit code 2 and the usage", async () => {
    const failed = await agent("--bogus").then(
      () => null,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toMatch(/fleetdeck-agent: .*'--bogus'.*\nusage: fleetdeck-agent/s);
    expect(failed?.stderr).not.toMatch(/\n\s+at /);
  });

  it("stops with exit code 2 naming a bad setting", async () => {
    const file = path.join(dir, "bad.yaml");
    writeFileSync(file, "serverUrl: not a url\n");
    const failed = await agent("--config", file).then(
      () => null,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toMatch(
      /fleetdeck-agent: .*serverUrl \(or FLEETDECK_SERVER_URL\): expected a URL/s,
    );
    expect(failed?.stderr).toMatch(/clientKey \(or FLEETDECK_CLIENT_KEY\): required/);
  });
});
