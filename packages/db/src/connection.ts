import type { PoolConfig } from "pg";
import { parseIntoClientConfig } from "pg-connection-string";

/**
 * A pg pool config with discrete fields (host, port, user, database, ssl) instead of a
 * `connectionString`. pg lets a connection string override every discrete field, so Prisma's
 * adapter could not point a copy of the config at another database (`{ ...config, database }`):
 * `migrate dev` would apply migrations to the real database instead of its shadow database.
 */
export function poolConfigFromUrl(databaseUrl: string): PoolConfig {
  let config: PoolConfig;
  try {
    config = parseIntoClientConfig(databaseUrl) as PoolConfig;
  } catch (e) {
    throw new InvalidDatabaseUrlError("DATABASE_URL is not a postgresql:// connection URL", { cause: e });
  }
  if (!config.database) {
    throw new InvalidDatabaseUrlError("DATABASE_URL names no database: add /<database> after host:port");
  }
  return config;
}

export class InvalidDatabaseUrlError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InvalidDatabaseUrlError";
  }
}
