/**
 * The Worker in workerd through Miniflare directly, without wrangler dev's proxy in front.
 * `wrangler dev` tops out near 500 trivial requests per second on this machine (its dev proxy),
 * which would hide what the Worker itself costs; benchmarks report both.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { REPO_ROOT } from "../dev/local-cloud.js";

export interface DirectWorker {
  /** Through Miniflare's entry worker (it adds the `cf` object, error pages, and a hop). */
  url: string;
  /** A socket of workerd's own straight to the Worker, as a deployed Worker is reached. */
  directUrl: string;
  stop(): Promise<void>;
}

const WRANGLER_TOML = path.join(REPO_ROOT, "wrangler.toml");

/**
 * One Worker in workerd through Miniflare, reachable both through Miniflare's entry worker and
 * on a socket of workerd's own. `worker` is Miniflare's classic (v4) worker options; Miniflare 5
 * takes a new shape, converted here.
 */
async function serveInWorkerd(
  worker: { name: string } & Record<string, unknown>,
  shared: Record<string, unknown>,
  cleanUp: () => void = () => {},
): Promise<DirectWorker> {
  const compatibilityDate =
    /compatibility_date\s*=\s*"([^"]+)"/.exec(readFileSync(WRANGLER_TOML, "utf8"))?.[1] ?? "2026-11-01";
  const options = convertV4MiniflareOptions({
    workers: [
      { modules: true, compatibilityDate, ...worker, unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }] },
    ],
    host: "127.0.0.1",
    port: 0,
    ...shared,
  } as Parameters<typeof convertV4MiniflareOptions>[0]);
  const mf = new Miniflare(options);
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const directUrl = (await mf.unsafeGetDirectURL(worker.name)).toString().replace(/\/$/, "");
  return {
    url,
    directUrl,
    stop: async () => {
      await mf.dispose();
      cleanUp();
    },
  };
}

/** Fleetdeck's Worker as `wrangler deploy` bundles it, with wrangler.toml's vars and `vars` over them. */
export async function startWorkerdDirect(
  vars: Record<string, string>,
  extra: { inspectorPort?: number } = {},
): Promise<DirectWorker> {
  const outdir = mkdtempSync(path.join(os.tmpdir(), "fleetdeck-bundle-"));
  execFileSync(
    path.join(REPO_ROOT, "node_modules/.bin/wrangler"),
    ["deploy", "--dry-run", "--outdir", outdir],
    { cwd: REPO_ROOT, stdio: "ignore" },
  );
  const tomlVars = Object.fromEntries(
    [...readFileSync(WRANGLER_TOML, "utf8").matchAll(/^([A-Z_]+)\s*=\s*"([^"]*)"\s*$/gm)].map((m) => [
      m[1]!,
      m[2]!,
    ]),
  );
  return serveInWorkerd(
    {
      name: "fleetdeck",
      scriptPath: path.join(outdir, "index.js"),
      modulesRoot: outdir,
      compatibilityFlags: ["nodejs_compat"],
      durableObjects: {
        CLIENT_HUB: { className: "ClientHub", useSQLite: true },
        FLEET_FEED: { className: "FleetFeed", useSQLite: true },
      },
      bindings: { ...tomlVars, ...vars },
    },
    // workerd's V8 inspector (Chrome DevTools Protocol), for bench/dispatch-profile.
    extra.inspectorPort ? { inspectorPort: extra.inspectorPort } : {},
    () => rmSync(outdir, { recursive: true, force: true }),
  );
}

/**
 * bench/workerd-floor/worker.js in workerd (a Worker and one Durable Object per target, SQLite
 * storage): the floor under Fleetdeck's dispatch path.
 */
export function startWorkerdFloor(): Promise<DirectWorker> {
  return serveInWorkerd(
    {
      name: "floor",
      scriptPath: path.join(REPO_ROOT, "bench/workerd-floor/worker.js"),
      durableObjects: { TARGET: { className: "Target", useSQLite: true } },
    },
    {},
  );
}
