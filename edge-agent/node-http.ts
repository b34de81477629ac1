/**
 * node:http, loaded with require rather than `import`: the ESM facade of a builtin reads every
 * export once, and reading http.WebSocket loads undici (fetch), about 12 MB of resident memory
 * the agent never uses (Node 22).
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
export const http = require("node:http") as typeof import("node:http");

let httpsModule: typeof import("node:https") | undefined;
/** node:https, loaded when first needed (TLS costs resident memory an agent on plain HTTP never uses). */
export function https(): typeof import("node:https") {
  httpsModule ??= require("node:https") as typeof import("node:https");
  return httpsModule;
}
