import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "./generated/client.js";
import { poolConfigFromUrl } from "./connection.js";
import { attachPool } from "./statement.js";

export * from "./generated/client.js";
export { migrate, MigrationError, type MigrateOptions } from "./migrate.js";
export { InvalidDatabaseUrlError, poolConfigFromUrl } from "./connection.js";
export { queryRows } from "./statement.js";

export interface CreatePrismaOptions {
  /** postgresql://user:password@host:port/database[?sslmode=...] */
  databaseUrl: string;
  /** Connections in the pool. @defaultValue 10 (pg's default) */
  poolMax?: number;
}

/**
 * How long a pooled connection may sit idle before it is closed. pg's default (10 s) closed
 * connections between a worker's bursts, and the reconciler's passes are 10 s apart: a service
 * reconnected again and again during a batch. A new backend costs Postgres about 17 ms of CPU
 * before it is as cheap as a warm one (fork, catalog caches, the trigger functions compiled and
 * each prepared statement planned again), against about 2 ms for all of a page's statements.
 */
const IDLE_TIMEOUT_MS = 60_000;

/**
 * A PrismaClient over the pg driver adapter (Prisma's JavaScript engine: no native binary). Its
 * pg pool is also {@link queryRows}'s, and `$disconnect` ends it.
 */
export function createPrisma(opts: CreatePrismaOptions): PrismaClient {
  // Idle connections do not keep a process alive that has otherwise finished (a client whose
  // Prisma side never connected is not ended by `$disconnect`).
  const pool = new pg.Pool({
    ...poolConfigFromUrl(opts.databaseUrl),
    ...(opts.poolMax ? { max: opts.poolMax } : {}),
    allowExitOnIdle: true,
    idleTimeoutMillis: IDLE_TIMEOUT_MS,
  });
  const client = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  attachPool(client, pool);
  return client;
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
