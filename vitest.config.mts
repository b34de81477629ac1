import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Runs in plain Node (not through the workerd project's resolver): real Postgres, Redis,
    // and the dev stand-ins the Worker's bindings point at.
    globalSetup: ["./test/workers/global-setup.ts"],
    projects: [
      {
        test: {
          name: "node",
          environment: "node",
          include: [
            "src/**/*.test.ts",
            "dev/**/*.test.ts",
            "edge-agent/**/*.test.ts",
            "test/node/**/*.test.ts",
          ],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        // End to end: each file starts the local cloud with `wrangler dev` on free ports.
        test: {
          name: "e2e",
          environment: "node",
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                DATABASE_URL: inject("databaseUrl"),
                NEON_WS_PROXY: inject("neonWsProxy"),
                UPSTASH_REDIS_REST_URL: inject("redisRestUrl"),
                UPSTASH_REDIS_REST_TOKEN: inject("redisRestToken"),
                ADMIN_TOKEN: "test-admin-token-0123456789abcdef",
                SSE_HEARTBEAT_MS: "200",
                PUBLIC_URL: "http://fleetdeck.test",
                QSTASH_CURRENT_SIGNING_KEY: "sig_test_current_key",
                QSTASH_NEXT_SIGNING_KEY: "sig_test_next_key",
              },
            },
          })),
        ],
        test: {
          name: "workers",
          include: ["workers/**/*.test.ts", "test/workers/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
    ],
  },
});
