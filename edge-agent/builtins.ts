/**
 * Node builtins that cost the agent resident memory when loaded the usual way (Node 22,
 * measured with `/proc/self/status` beside the builtins the agent always needs):
 *
 * - `import` of a builtin goes through its ESM facade, which reads every export once. For
 *   node:http that reads http.WebSocket and loads undici (about 12 MB with fetch); for node:util
 *   it loads worker_threads and more (about 1 MB). `require` reads only what is used.
 * - node:https (TLS, about 4 MB) and node:crypto (webcrypto, X.509, key generation: about
 *   1.4 MB) load on first use: an agent on plain HTTP that never signs a webhook or bridges an
 *   MQTT message never pays for them.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

export const http = require("node:http") as typeof import("node:http");
export const util = require("node:util") as typeof import("node:util");

let httpsModule: typeof import("node:https") | undefined;
export function https(): typeof import("node:https") {
  httpsModule ??= require("node:https") as typeof import("node:https");
  return httpsModule;
}

let cryptoModule: typeof import("node:crypto") | undefined;
export function nodeCrypto(): typeof import("node:crypto") {
  cryptoModule ??= require("node:crypto") as typeof import("node:crypto");
  return cryptoModule;
}
