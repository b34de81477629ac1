/** The real agent as a child process (`fleetdeck-agent --config ...`), for end-to-end tests. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import YAML from "yaml";
import { REPO_ROOT } from "../../dev/local-cloud.js";

export interface AgentProcess {
  dir: string;
  configFile: string;
  output: string[];
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Resolves when a JSON log line with this `msg` (and matching fields) has been printed. */
  waitForLog(
    msg: string,
    match?: Record<string, unknown>,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  signal(sig: NodeJS.Signals): void;
}

export function writeAgentConfig(
  config: Record<string, unknown>,
  dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-agent-")),
) {
  const configFile = path.join(dir, "agent.yaml");
  // metricsPort 0: agents started side by side must not all claim 9100; a test that wants
  // /metrics gives a port.
  writeFileSync(configFile, YAML.stringify({ dataDir: path.join(dir, "data"), metricsPort: 0, ...config }));
  return { dir, configFile };
}

export function startAgent(configFile: string, env: Record<string, string> = {}): AgentProcess {
  const child = spawn(
    process.execPath,
    [path.join(REPO_ROOT, "edge-agent/bin/fleetdeck-agent.js"), "--config", configFile],
    {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        PATH: `${path.join(REPO_ROOT, "node_modules/.bin")}:${process.env.PATH}`,
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const output: string[] = [];
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line.trim()) output.push(line);
    for (const l of listeners) l();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      for (const l of listeners) l();
      resolve(code);
    }),
  );
  return {
    dir: path.dirname(configFile),
    configFile,
    output,
    child,
    exited,
    signal: (sig) => child.kill(sig),
    waitForLog(msg, match = {}, timeoutMs = 15_000) {
      const find = () => {
        for (const line of output) {
          try {
            const parsed = JSON.parse(line) as Record<string, unknown>;
            if (parsed.msg === msg && Object.entries(match).every(([k, v]) => parsed[k] === v)) return parsed;
          } catch {}
        }
        return undefined;
      };
      return new Promise((resolve, reject) => {
        const found = find();
        if (found) return resolve(found);
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(
            new Error(
              `agent did not log "${msg}" within ${timeoutMs} ms. Output:\n${output.slice(-30).join("\n")}`,
            ),
          );
        }, timeoutMs);
        const check = () => {
          const hit = find();
          if (hit) {
            clearTimeout(timer);
            listeners.delete(check);
            resolve(hit);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            listeners.delete(check);
            reject(
              new Error(
                `agent exited (${child.exitCode ?? child.signalCode}) before logging "${msg}". Output:\n${output.slice(-30).join("\n")}`,
              ),
            );
          }
        };
        listeners.add(check);
      });
    },
  };
}
