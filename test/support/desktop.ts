/**
 * Real desktop parts for the print and screenshot executors: a private CUPS daemon (its own
 * config, socket and spool, FileDevice printer) and an Xvfb display. The tools come from
 * Debian's cups, cups-bsd, xvfb and imagemagick packages; .ci/run installs them.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export const HAVE_CUPS =
  existsSync("/usr/sbin/cupsd") && existsSync("/usr/bin/lp") && existsSync("/usr/sbin/lpadmin");
export const HAVE_XVFB = existsSync("/usr/bin/Xvfb") && existsSync("/usr/bin/import");

export interface PrivateCups {
  /** CUPS_SERVER for lp and lpstat. */
  server: string;
  printer: string;
  stop(): Promise<void>;
}

export async function startPrivateCups(): Promise<PrivateCups> {
  const dir = mkdtempSync(path.join(tmpdir(), "fleetdeck-cups-"));
  for (const d of ["spool", "cache", "state", "log", "tmp"]) mkdirSync(path.join(dir, d));
  writeFileSync(
    path.join(dir, "cups-files.conf"),
    [
      "SystemGroup root lpadmin",
      "FileDevice Yes",
      `ServerRoot ${dir}`,
      `RequestRoot ${dir}/spool`,
      `CacheDir ${dir}/cache`,
      `StateDir ${dir}/state`,
      `TempDir ${dir}/tmp`,
      `AccessLog ${dir}/log/access_log`,
      `ErrorLog ${dir}/log/error_log`,
      `PageLog ${dir}/log/page_log`,
      "ServerBin /usr/lib/cups",
      "DataDir /usr/share/cups",
    ].join("\n"),
  );
  const socket = path.join(dir, "cups.sock");
  writeFileSync(
    path.join(dir, "cupsd.conf"),
    `Listen ${socket}\nWebInterface No\nDefaultAuthType None\n<Location />\n  Order allow,deny\n  Allow all\n</Location>\n<Location /admin>\n  Order allow,deny\n  Allow all\n</Location>\n<Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n`,
  );
  const child: ChildProcess = spawn(
    "/usr/sbin/cupsd",
    ["-f", "-c", path.join(dir, "cupsd.conf"), "-s", path.join(dir, "cups-files.conf")],
    {
      stdio: "ignore",
    },
  );
  const env = { ...process.env, CUPS_SERVER: socket };
  const printer = "fleetdeck-test";
  for (let i = 0; ; i++) {
    try {
      execFileSync("/usr/sbin/lpadmin", ["-p", printer, "-E", "-v", `file://${dir}/printed.prn`], {
        env,
        stdio: "pipe",
      });
      break;
    } catch (error) {
      if (i > 50) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    server: socket,
    printer,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Xvfb {
  display: string;
  stop(): Promise<void>;
}

export async function startXvfb(): Promise<Xvfb> {
  const n = 90 + Math.floor(Math.random() * 400);
  const display = `:${n}`;
  const child = spawn("/usr/bin/Xvfb", [display, "-screen", "0", "320x200x24", "-nolisten", "tcp"], {
    stdio: "ignore",
  });
  for (let i = 0; !existsSync(`/tmp/.X11-unix/X${n}`); i++) {
    if (i > 100) throw new Error(`Xvfb did not start on ${display}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    display,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}
