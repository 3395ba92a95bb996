import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/client.js";
import { poolConfigFromUrl } from "./connection.js";

export * from "./generated/client.js";
export { migrate, MigrationError, type MigrateOptions } from "./migrate.js";
export { InvalidDatabaseUrlError, poolConfigFromUrl } from "./connection.js";

export interface CreatePrismaOptions {
  /** postgresql://user:password@host:port/database[?sslmode=...] */
  databaseUrl: string;
  /** Connections in the pool. @defaultValue 10 (pg's default) */
  poolMax?: number;
}

/** A PrismaClient over the pg driver adapter (Prisma's JavaScript engine: no native binary). */
export function createPrisma(opts: CreatePrismaOptions): PrismaClient {
  const pool = { ...poolConfigFromUrl(opts.databaseUrl), ...(opts.poolMax ? { max: opts.poolMax } : {}) };
  return new PrismaClient({ adapter: new PrismaPg(pool) });
}
export {
  countBatchRows,
  counterDrift,
  percentile,
  readBatchCounters,
  readStageStats,
  recountBatch,
  type StageStats,
} from "./counters.js";
export { workAttempts, type UnexplainedWork } from "./work.js";
