import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Pool as NeonPool, neonConfig } from "@neondatabase/serverless";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMigrations } from "./migrate.js";
import { startNeonProxy } from "./neon-proxy.js";
import { PortBusyError } from "./ports.js";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "./postgres.js";

const dataDir = mkdtempSync(path.join(tmpdir(), "fleetdeck-pglite-"));
let server: EmbeddedPostgres;
const port = 20_000 + Math.floor(Math.random() * 20_000);

beforeAll(async () => {
  server = await startEmbeddedPostgres({ dataDir, port, maxConnections: 16 });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("embedded Postgres (PGlite over the wire protocol)", () => {
  it("takes the committed migrations and many concurrent pooled connections", async () => {
    await runMigrations(server.url);
    const pool = new pg.Pool({ connectionString: server.url, max: 12 });
    try {
      const results = await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          pool.query("select $1::int as i, count(*)::int as n from clients", [i]),
        ),
      );
      expect(results.map((r) => r.rows[0].i)).toEqual(Array.from({ length: 24 }, (_, i) => i));
      await pool.query("insert into clients (id, name, key_hash) values ('cl_1', 'gw', 'h')");
      const { rows } = await pool.query("select name from clients where id = 'cl_1'");
      expect(rows).toEqual([{ name: "gw" }]);
    } finally {
      await pool.end();
    }
  });

  it("serves the Neon driver through the WebSocket proxy", async () => {
    const proxy = await startNeonProxy({ port: 0, allowedTargets: [`127.0.0.1:${port}`] });
    neonConfig.wsProxy = (host, p) => `${proxy.wsProxy}/v1?address=${host}:${p}`;
    neonConfig.useSecureWebSocket = false;
    neonConfig.pipelineTLS = false;
    neonConfig.pipelineConnect = false;
    const pool = new NeonPool({ connectionString: server.url, max: 4 });
    try {
      const { rows } = await pool.query("select count(*)::int as n from clients");
      expect(rows[0].n).toBe(1);
    } finally {
      await pool.end();
      await proxy.stop();
    }
  });

  it("stops with a message naming the setting when its port is taken", async () => {
    const other = mkdtempSync(path.join(tmpdir(), "fleetdeck-pglite-"));
    try {
      await expect(startEmbeddedPostgres({ dataDir: other, port })).rejects.toBeInstanceOf(PortBusyError);
      await expect(startEmbeddedPostgres({ dataDir: other, port })).rejects.toThrow(/FLEETDECK_PG_PORT/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});
