/**
 * fleetdeck-agent [--config agent.yaml] [--print-config] [--version]
 * Settings come from the YAML file, then the environment (FLEETDECK_SERVER_URL, ...).
 */
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { Agent } from "./agent.js";
import { util } from "./builtins.js";
import { ConfigError, loadConfig, maskedConfig } from "./config.js";
import { AGENT_VERSION } from "./version.js";

// Two V8 settings for a small resident footprint (bench/agent-footprint), each overridden by the
// same flag on node's command line (NODE_OPTIONS does not take V8 flags like these):
// - no top tier (TurboFan): after a minute or so the agent's hot functions would pull about 6 MB of
//   the compiler's own code into resident memory, for an agent that spends well under 1% of a
//   core; Maglev, the tier below, still compiles them.
// - bytecode of a function unused since the last full GC is dropped (V8's default waits for 6):
//   start-up code (settings, YAML, validation) stops taking about 2 MB, and is compiled again
//   should it run again.
const given = process.execArgv.map((a) => a.replaceAll("_", "-"));
const footprintFlags: [flag: string, value: string][] = [
  ["--max-opt", "2"],
  ["--bytecode-old-age", "1"],
];
for (const [flag, value] of footprintFlags) {
  if (!given.some((a) => a.startsWith(flag))) v8.setFlagsFromString(`${flag}=${value}`);
}

/**
 * A full GC once a minute. An idle agent allocates little, so V8 runs no full GC for a long time
 * after start-up and short-lived garbage that reached the old space stays resident: RSS rose
 * about 0.2 MB a minute with no end in sight over 30 minutes (bench/agent-footprint). A concurrent
 * major GC of this heap (~8 MB) costs a few milliseconds of CPU. V8's gc() is reached through
 * --expose-gc, set here rather than on the command line.
 */
function collectGarbageEveryMinute(): void {
  v8.setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as (options: { type: "major"; execution: "async" }) => Promise<void>;
  setInterval(() => void gc({ type: "major", execution: "async" }), 60_000).unref();
}

const USAGE =
  "usage: fleetdeck-agent [--config agent.yaml] [--print-config] [--version]\nSettings: see README (Edge agent).";

/** The command line's options; an unknown or malformed one exits 2 with the usage, not a stack trace. */
function parseCommandLine() {
  try {
    return util.parseArgs({
      options: {
        config: { type: "string", short: "c" },
        "print-config": { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
      },
    }).values;
  } catch (error) {
    console.error(`fleetdeck-agent: ${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const values = parseCommandLine();
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.version) {
    console.log(AGENT_VERSION);
    return;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig({ ...(values.config ? { file: values.config } : {}) });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`fleetdeck-agent: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  if (values["print-config"]) {
    console.log(JSON.stringify(maskedConfig(config), null, 2));
    return;
  }
  const agent = new Agent(config);
  collectGarbageEveryMinute();
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    agent.log("info", `${signal} received; shutting down`);
    agent.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  await agent.start();
}

main().catch((error: unknown) => {
  console.error(`fleetdeck-agent: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
