/**
 * Postgres from the Worker: `@neondatabase/serverless` Pool with drizzle's `neon-serverless`
 * driver, exactly as in production. Only when NEON_WS_PROXY is set (by `npm start` and the
 * tests) does the driver talk plain ws:// to the local proxy instead of TLS to Neon.
 */
import { neonConfig, Pool } from "@neondatabase/serverless";
import { drizzle, type NeonDatabase } from "drizzle-orm/neon-serverless";
import * as schema from "../src/db/schema.js";
import { FleetdeckError } from "../src/protocol/errors.js";

export type Database = NeonDatabase<typeof schema>;

function configureNeon(wsProxy: string): void {
  if (!wsProxy) return;
  neonConfig.wsProxy = (host, port) => `${wsProxy}/v1?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
}

export interface DatabaseHandle {
  db: Database;
  pool: Pool;
  /** Pools may not outlive the request that opened them in Workers: close with waitUntil. */
  close(): Promise<void>;
}

export function openDatabase(
  settings: { DATABASE_URL: string; NEON_WS_PROXY: string },
  maxConnections = 2,
): DatabaseHandle {
  configureNeon(settings.NEON_WS_PROXY);
  // Small on purpose: every request and every hub's outbox opens its own pool, and Postgres
  // (or Neon's pooler) caps connections across the whole fleet.
  const pool = new Pool({
    connectionString: settings.DATABASE_URL,
    max: maxConnections,
    connectionTimeoutMillis: 5000,
  });
  // An idle client's socket error must not become an unhandled rejection in the isolate.
  pool.on("error", () => {});
  return {
    db: drizzle({ client: pool, schema }),
    pool,
    close: () => pool.end().catch(() => {}),
  };
}

/**
 * One unit of Postgres work for a request: the pool is closed after the answer (waitUntil),
 * and a failure to reach Postgres becomes 503 DEPENDENCY_UNAVAILABLE with Retry-After.
 */
export async function withDatabase<T>(
  settings: { DATABASE_URL: string; NEON_WS_PROXY: string },
  waitUntil: (p: Promise<unknown>) => void,
  work: (db: Database) => Promise<T>,
): Promise<T> {
  const handle = openDatabase(settings);
  try {
    return await work(handle.db);
  } catch (error) {
    if (error instanceof FleetdeckError) throw error;
    throw new FleetdeckError("DEPENDENCY_UNAVAILABLE", "Postgres is unavailable", {
      retryAfterSec: 5,
      cause: error,
    });
  } finally {
    waitUntil(handle.close());
  }
}
