/**
 * `npm start`: Fleetdeck on this machine with no accounts. Starts the stand-ins, applies
 * migrations, runs the Worker in `wrangler dev`, fires its cron, and prints where things are.
 * Ctrl-C or SIGTERM stops every child; none is left behind.
 */
import { type Demo, startDemo } from "./demo.js";
import { type LocalCloud, startLocalCloud } from "./local-cloud.js";
import { localSettings, SettingsError } from "./settings.js";

const verbose = process.argv.includes("--verbose") || process.env.FLEETDECK_VERBOSE === "1";

function printTable(cloud: LocalCloud, demo: Demo | undefined): void {
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
  if (demo) {
    const post = (body: string) =>
      `    curl -X POST ${cloud.workerUrl}/api/commands -H "Authorization: Bearer ${cloud.adminToken}" -H 'content-type: application/json' -d '${body}'`;
    console.log(`\n  Demo agent ${demo.clientId} is running with a simulated device, ${demo.deviceId}:`);
    if (demo.metricsUrl)
      console.log(`    curl ${demo.metricsUrl}   # its Prometheus metrics; /alerts for its alerts`);
    console.log(post(`{"clientId":"${demo.clientId}","action":"health-check"}`));
    console.log(post(`{"clientId":"${demo.clientId}","action":"exec","payload":{"script":"uptime"}}`));
    console.log(
      post(
        `{"clientId":"${demo.clientId}","action":"device-command","payload":{"deviceId":"${demo.deviceId}","command":{"setpoint":23}}}`,
      ),
    );
    console.log(`    redis-cli XREVRANGE fd:dev:${demo.clientId}:${demo.deviceId}:telemetry + - COUNT 3`);
    console.log(
      `    (then GET ${cloud.workerUrl}/api/commands/<id> with the same header to read the result)`,
    );
  }
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
  let demo: Demo | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\nfleetdeck: ${signal} received, stopping every service...`);
    await demo?.stop();
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
  if (process.env.FLEETDECK_DEMO !== "0") {
    try {
      demo = await startDemo({
        workerUrl: cloud.workerUrl,
        adminToken: cloud.adminToken,
        dataDir: settings.dataDir,
        mqttUrl: cloud.mqttUrl,
        redisRestUrl: cloud.redisRestUrl,
        redisRestToken: cloud.redisRestToken,
        onAgentOutput: (l) => {
          if (verbose || /"level":"(warn|error)"/.test(l)) process.stderr.write(`[demo-agent] ${l}\n`);
        },
      });
    } catch (error) {
      console.error(
        `fleetdeck: the demo agent did not start (${error instanceof Error ? error.message : String(error)}); the rest runs.`,
      );
    }
  }
  if (stopping) return;
  printTable(cloud, demo);
}

void main();
