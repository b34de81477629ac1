/**
 * Versioned SQLite schemas for Durable Objects. Each object applies the migrations it has not
 * seen, inside blockConcurrencyWhile, before it serves anything; storage survives eviction.
 */
export type StorageMigration = readonly string[];

export function migrateStorage(sql: SqlStorage, migrations: readonly StorageMigration[]): number {
  sql.exec(
    "CREATE TABLE IF NOT EXISTS _schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
  );
  const row = sql.exec<{ version: number }>("SELECT version FROM _schema WHERE id = 1").toArray()[0];
  let version = row?.version ?? 0;
  for (let i = version; i < migrations.length; i++) {
    for (const statement of migrations[i]!) sql.exec(statement);
    version = i + 1;
    sql.exec(
      "INSERT INTO _schema (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version",
      version,
    );
  }
  return version;
}
