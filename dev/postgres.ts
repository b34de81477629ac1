/**
 * Embedded Postgres for `npm start` when DATABASE_URL is not set: PGlite (Postgres compiled
 * to WASM) served over the Postgres wire protocol, so every client, from psql to the Neon
 * driver behind the WebSocket proxy, talks to it as to a real server.
 */
import { mkdirSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { PortBusyError } from "./ports.js";

export interface EmbeddedPostgres {
  url: string;
  port: number;
  db: PGlite;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** Data folder; undefined keeps the database in memory (tests). */
  dataDir?: string;
  port: number;
  /** Pooled clients (the Neon Pool, migrations, psql) need more than PGlite's default of one. */
  maxConnections?: number;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const db = options.dataDir ? await PGlite.create(options.dataDir) : await PGlite.create();
  const server = new PGLiteSocketServer({
    db,
    port: options.port,
    host: "127.0.0.1",
    maxConnections: options.maxConnections ?? 32,
  });
  try {
    await server.start();
  } catch (error) {
    await db.close();
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
      throw new PortBusyError(options.port, "embedded Postgres", "FLEETDECK_PG_PORT");
    }
    throw error;
  }
  const port = options.port;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    db,
    stop: async function stopEmbeddedPostgres() {
      await server.stop();
      await db.close();
    },
  };
}
