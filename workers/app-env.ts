import type { TimingVariables } from "hono/timing";
import type { Identity } from "./auth.js";
import type { Env } from "./env.js";

/** Hono's typing for the app: bindings, and what middleware puts on the context. */
export type AppEnv = {
  Bindings: Env;
  Variables: { identity: Identity; requestId: string } & TimingVariables;
};
