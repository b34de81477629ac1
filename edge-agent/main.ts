/**
 * fleetdeck-agent [--config agent.yaml] [--print-config]
 * Settings come from the YAML file, then the environment (FLEETDECK_SERVER_URL, ...).
 */
import { parseArgs } from "node:util";
import { Agent } from "./agent.js";
import { ConfigError, loadConfig, maskedConfig } from "./config.js";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: "string", short: "c" },
      "print-config": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(
      "usage: fleetdeck-agent [--config agent.yaml] [--print-config]\nSettings: see README (Edge agent).",
    );
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
