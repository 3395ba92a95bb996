import { commonEnv, loadEnv } from "@docpipe/queue";
import { z } from "zod";

const int = (name: string, min: number, max: number, dflt: number) =>
  z.coerce
    .number({ error: `${name} must be a whole number` })
    .int(`${name} must be a whole number`)
    .min(min, `${name} must be at least ${min}`)
    .max(max, `${name} must be at most ${max}`)
    .default(dflt);

/** The ingestion service's environment: the shared variables plus its own. */
export const configSchema = commonEnv.extend({
  PORT: int("PORT", 0, 65_535, 8080),
  HOST: z.string().min(1).default("0.0.0.0"),
  DATABASE_POOL_MAX: int("DATABASE_POOL_MAX", 1, 100, 10),
  BODY_LIMIT_BYTES: int("BODY_LIMIT_BYTES", 1024, 10_485_760, 65_536),
  LIST_PAGE_SIZE: int("LIST_PAGE_SIZE", 1, 1000, 1000),
  MAX_CONCURRENT_LISTINGS: int("MAX_CONCURRENT_LISTINGS", 1, 64, 2),
  SEND_PARALLELISM: int("SEND_PARALLELISM", 1, 64, 8),
  S3_CHECK_TIMEOUT_MS: int("S3_CHECK_TIMEOUT_MS", 100, 60_000, 5_000),
  READY_TIMEOUT_MS: int("READY_TIMEOUT_MS", 100, 60_000, 2_000),
  /** A batch with no audit event for this long, while not finished, is reported as stalled. */
  STALL_AFTER_SECONDS: int("STALL_AFTER_SECONDS", 1, 604_800, 600),
  MAX_DOCUMENTS_PER_BATCH: int("MAX_DOCUMENTS_PER_BATCH", 1, 100_000_000, 1_000_000),
  REQUEST_TIMEOUT_MS: int("REQUEST_TIMEOUT_MS", 1_000, 600_000, 30_000),
  /** Proxies whose X-Forwarded-For is believed (1 behind the load balancer). */
  TRUST_PROXY: int("TRUST_PROXY", 0, 10, 0),
  KEY_CACHE_SECONDS: int("KEY_CACHE_SECONDS", 0, 300, 5),
  AUTH_FAILURE_BURST: int("AUTH_FAILURE_BURST", 1, 100_000, 20),
  AUTH_FAILURES_PER_MINUTE: int("AUTH_FAILURES_PER_MINUTE", 1, 1_000_000, 60),
});
export type IngestionConfig = z.infer<typeof configSchema>;

export function loadConfig(env: Record<string, string | undefined> = process.env): IngestionConfig {
  return loadEnv(configSchema, env);
}
