/**
 * A Postgres server of the test's own (initdb + pg_ctl from the machine's PostgreSQL), so a
 * fault test can stop and start a real Postgres without disturbing the shared one.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

function binDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort() : [];
  const latest = versions.at(-1);
  if (!latest) throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql");
  return path.join(root, latest, "bin");
}

/** Postgres refuses to run as root; run its tools as the postgres user when we are root. */
function run(tool: string, args: string[]): void {
  const bin = path.join(binDir(), tool);
  if (process.getuid?.() === 0)
    execFileSync("runuser", ["-u", "postgres", "--", bin, ...args], { stdio: "pipe" });
  else execFileSync(bin, args, { stdio: "pipe" });
}

export interface PrivatePostgres {
  url: string;
  port: number;
  start(): void;
  stop(): void;
  destroy(): void;
}

export function createPrivatePostgres(port: number): PrivatePostgres {
  const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-pg-"));
  chmodSync(dir, 0o777);
  const data = path.join(dir, "data");
  if (process.getuid?.() === 0) execFileSync("chown", ["postgres", dir]);
  run("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  let running = false;
  const pg: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start() {
      run("pg_ctl", ["-D", data, "-o", options, "-l", path.join(dir, "log"), "-w", "start"]);
      running = true;
    },
    stop() {
      run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]);
      running = false;
    },
    destroy() {
      if (running) {
        try {
          pg.stop();
        } catch {}
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return pg;
}
