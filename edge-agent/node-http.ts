/**
 * node:http, loaded with require rather than `import`: the ESM facade of a builtin reads every
 * export once, and reading http.WebSocket loads undici (fetch), about 12 MB of resident memory
 * the agent never uses (Node 22).
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
export const http = require("node:http") as typeof import("node:http");
