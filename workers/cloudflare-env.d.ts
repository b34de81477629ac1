// Types `env` from `cloudflare:test` (and `cloudflare:workers`) with the Worker's own bindings.
import type { Env as FleetdeckEnv } from "./env.js";

declare global {
  namespace Cloudflare {
    interface Env extends FleetdeckEnv {}
  }
}
