/**
 * `npm start`: Fleetdeck on this machine with no accounts. Starts the stand-ins, applies
 * migrations, runs the Worker in `wrangler dev`, fires its cron, and prints where things are.
 * Ctrl-C or SIGTERM stops every child; none is left behind.
 */
import { type LocalCloud, startLocalCloud } from "./local-cloud.js";
import { localSettings, SettingsError } from "./settings.js";

const verbose = process.argv.includes("--verbose") || process.env.FLEETDECK_VERBOSE === "1";

function printTable(cloud: LocalCloud): void {
  const rows = cloud.services;
  const w1 = Math.max(7, ...rows.map((r) => r.service.length));
  const w2 = Math.max(3, ...rows.map((r) => r.url.length));
  const line = (a: string, b: string, c: string) => `  ${a.padEnd(w1)}  ${b.padEnd(w2)}  ${c}`;
  console.log("\nFleetdeck is running.\n");
  console.log(line("service", "url", "note"));
  console.log(line("-".repeat(w1), "-".repeat(w2), "----"));
  for (const r of rows) console.log(line(r.service, r.url, r.note));
  console.log(
    `\n  admin token: ${cloud.adminToken}${cloud.adminTokenGenerated ? "  (generated; set ADMIN_TOKEN to choose one)" : "  (from ADMIN_TOKEN)"}`,
  );
  console.log("\n  Try:");
  console.log(`    curl ${cloud.workerUrl}/readyz`);
  console.log(`    curl -H "Authorization: Bearer ${cloud.adminToken}" ${cloud.workerUrl}/api/clients`);
  console.log("\n  Ctrl-C stops everything.\n");
}

async function main(): Promise<void> {
  let settings: ReturnType<typeof localSettings>;
  try {
    settings = localSettings(process.env);
  } catch (error) {
    if (error instanceof SettingsError) {
      console.error(`fleetdeck: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }

  let cloud: LocalCloud | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\nfleetdeck: ${signal} received, stopping every service...`);
    await cloud?.stop();
    console.log("fleetdeck: stopped.");
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));

  console.log("fleetdeck: starting the local cloud...");
  try {
    cloud = await startLocalCloud({
      settings,
      cron: true,
      log: (l) => console.log(`fleetdeck: ${l}`),
      onWorkerOutput: (l) => {
        // wrangler's banner and request lines are noise by default; errors always show,
        // except its failed fetch of the Request.cf object, which needs the internet and is harmless.
        if (verbose || (/error|✘|exception/i.test(l) && !l.includes("workers.cloudflare.com"))) {
          process.stderr.write(`[worker] ${l}\n`);
        }
      },
    });
  } catch (error) {
    console.error(`\nfleetdeck: could not start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
  if (stopping) return;
  printTable(cloud);
}

void main();
