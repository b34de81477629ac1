import { readFileSync } from "node:fs";

// Set by the build (edge-agent/build.ts); from a checkout, read from package.json.
declare const __FLEETDECK_AGENT_VERSION__: string | undefined;

export const AGENT_VERSION: string =
  typeof __FLEETDECK_AGENT_VERSION__ === "string"
    ? __FLEETDECK_AGENT_VERSION__
    : (() => {
        try {
          return (
            JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
              version: string;
            }
          ).version;
        } catch {
          return "0.0.0";
        }
      })();
