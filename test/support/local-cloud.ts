import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type LocalCloud, startLocalCloud } from "../../dev/local-cloud.js";
import { localSettings } from "../../dev/settings.js";
import { createTestDatabase, type TestDatabase } from "./postgres.js";

export interface TestCloud extends LocalCloud {
  database: TestDatabase;
  workerLog: string[];
}

/**
 * The local cloud on free ports, with its own database on the real Postgres, the machine's
 * Redis and Mosquitto, and `wrangler dev` in a throwaway state folder.
 */
export async function startTestCloud(
  vars: Record<string, string> = {},
  adminDatabaseUrl?: string,
): Promise<TestCloud> {
  const database = await createTestDatabase("fleetdeck_e2e", adminDatabaseUrl);
  const dataDir = mkdtempSync(path.join(tmpdir(), "fleetdeck-e2e-"));
  const settings = {
    ...localSettings({
      DATABASE_URL: database.url,
      MQTT_URL: process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883",
      REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
      FLEETDECK_DATA_DIR: dataDir,
    }),
    workerPort: 0,
    neonProxyPort: 0,
    redisRestPort: 0,
    qstashPort: 0,
  };
  const workerLog: string[] = [];
  try {
    const cloud = await startLocalCloud({ settings, vars, onWorkerOutput: (l) => workerLog.push(l) });
    return {
      ...cloud,
      database,
      workerLog,
      stop: async () => {
        await cloud.stop();
        await database.drop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}
