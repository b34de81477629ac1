/**
 * Applies the committed migrations in drizzle/ over a single connection.
 * `npm run db:migrate` targets DATABASE_URL, else the embedded database of `npm start`.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../drizzle", import.meta.url));

export async function runMigrations(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await migrate(drizzle(client), { migrationsFolder: MIGRATIONS_FOLDER });
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const { localSettings } = await import("./settings.js");
  const settings = localSettings(process.env);
  let url = settings.databaseUrl;
  let stop: (() => Promise<void>) | undefined;
  if (!url) {
    // Not running under `npm start`: open the embedded database's folder directly.
    const { startEmbeddedPostgres } = await import("./postgres.js");
    const pgServer = await startEmbeddedPostgres({
      dataDir: settings.pgDataDir,
      port: settings.pgPort,
    }).catch((error: unknown) => {
      throw new Error(
        `could not open the embedded database (${String(error)}). If \`npm start\` is running, ` +
          `migrations were applied at start-up; otherwise set DATABASE_URL.`,
      );
    });
    url = pgServer.url;
    stop = pgServer.stop;
  }
  const started = Date.now();
  try {
    await runMigrations(url);
    console.log(
      `migrations from ${path.relative(process.cwd(), MIGRATIONS_FOLDER)} applied in ${Date.now() - started} ms`,
    );
  } finally {
    await stop?.();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((error: unknown) => {
    console.error(`db:migrate failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
