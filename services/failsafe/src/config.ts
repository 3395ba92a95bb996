import { commonEnv, intEnv, loadEnv } from "@docpipe/queue";
import { z } from "zod";

/** The failsafe's environment; the README says what each variable means. */
export const configSchema = commonEnv.extend({
  DPI: intEnv("DPI", { min: 1, default: 150 }),
  MAX_PIXELS: intEnv("MAX_PIXELS", { min: 1, default: 50_000_000 }),
  MAX_PAGES: intEnv("MAX_PAGES", { min: 1, default: 100_000 }),
  RENDER_TIMEOUT_MS: intEnv("RENDER_TIMEOUT_MS", { min: 100, default: 120_000 }),
  RENDER_THREADS: intEnv("RENDER_THREADS", { min: 1, default: 1 }),
  /** Dead letters broken down at once per DLQ. */
  CONCURRENCY: intEnv("CONCURRENCY", { min: 1, default: 1 }),
  FAILSAFE_MAX_ATTEMPTS: intEnv("FAILSAFE_MAX_ATTEMPTS", { min: 1, default: 20 }),
  FAILSAFE_MAX_REPLAYS: intEnv("FAILSAFE_MAX_REPLAYS", { min: 0, default: 5 }),
  FAILSAFE_REPLAY_BASE_SECONDS: intEnv("FAILSAFE_REPLAY_BASE_SECONDS", { min: 0, max: 900, default: 30 }),
  FAILSAFE_REPLAY_MAX_SECONDS: intEnv("FAILSAFE_REPLAY_MAX_SECONDS", { min: 0, max: 900, default: 900 }),
  /** The orchestrator's thresholds, for ingest dead letters that never got a class. */
  LARGE_SIZE_BYTES: intEnv("LARGE_SIZE_BYTES", { min: 1, default: 10 * 1024 * 1024 }),
  LARGE_PAGE_COUNT: intEnv("LARGE_PAGE_COUNT", { min: 1, default: 10 }),
  TMP_DIR: z.string().min(1).optional(),
});
export type FailsafeConfig = z.infer<typeof configSchema>;

/** Reads the failsafe's configuration; throws ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): FailsafeConfig {
  return loadEnv(configSchema, env);
}
