import { neonConfig, Pool } from "@neondatabase/serverless";
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/neon-serverless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_DATABASE_URL } from "../test/support/postgres.js";
import { type NeonProxy, startNeonProxy } from "./neon-proxy.js";

let proxy: NeonProxy;
const target = new URL(ADMIN_DATABASE_URL);
const targetAddress = `${target.hostname}:${target.port || 5432}`;

beforeAll(async () => {
  proxy = await startNeonProxy({ port: 0, allowedTargets: [targetAddress] });
  neonConfig.wsProxy = (host, port) => `${proxy.wsProxy}/v1?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
});

afterAll(async () => {
  await proxy.stop();
});

describe("Neon WebSocket proxy", () => {
  it("carries the Neon driver's Pool and drizzle to the real Postgres", async () => {
    const pool = new Pool({ connectionString: ADMIN_DATABASE_URL, max: 4 });
    try {
      const { rows } = await pool.query<{ v: string }>("select version() as v");
      expect(rows[0]!.v).toMatch(/PostgreSQL/);
      const db = drizzle({ client: pool });
      const result = await db.execute(sql`select 40 + 2 as answer`);
      expect(result.rows[0]).toEqual({ answer: 42 });
      // Concurrent queries over several pooled sockets.
      const many = await Promise.all(
        Array.from({ length: 8 }, (_, i) => pool.query("select $1::int as i", [i])),
      );
      expect(many.map((r) => r.rows[0].i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      // Transactions hold one connection.
      const client = await pool.connect();
      await client.query("begin");
      await client.query("create temp table t (x int)");
      await client.query("insert into t values (1), (2)");
      const { rows: sum } = await client.query("select sum(x)::int as s from t");
      await client.query("rollback");
      client.release();
      expect(sum[0].s).toBe(3);
    } finally {
      await pool.end();
    }
  });

  it("refuses to relay to a target it was not given", async () => {
    const ws = new WebSocket(`ws://${proxy.wsProxy}/v1?address=127.0.0.1:6379`);
    const code = await new Promise<number>((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
    expect(code).toBe(1008);
  });

  it("answers a plain HTTP request with 426 instead of hanging", async () => {
    const res = await fetch(`http://${proxy.wsProxy}/v1`);
    expect(res.status).toBe(426);
  });
});
