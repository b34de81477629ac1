#!/usr/bin/env node
// Runs the agent's TypeScript with tsx. node:sqlite's experimental notice is not news to operators.
import { register } from "tsx/esm/api";

const emit = process.emitWarning;
process.emitWarning = (warning, ...rest) => {
  if (String(warning).includes("SQLite is an experimental feature")) return;
  return emit.call(process, warning, ...rest);
};
register();
await import("../main.ts");
