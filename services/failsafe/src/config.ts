import { DEFAULT_DPI, DEFAULT_MAX_PIXELS } from "@docpipe/pdf";
import { commonEnv, DEFAULT_MAX_PAGES, defaultThresholds, intEnv, loadEnv } from "@docpipe/queue";
import { z } from "zod";
import { defaults, SQS_MAX_DELAY_SECONDS } from "./defaults.js";

/** The failsafe's environment; the README says what each variable means. */
export const configSchema = commonEnv.extend({
  DPI: intEnv("DPI", { min: 1, default: DEFAULT_DPI }),
  MAX_PIXELS: intEnv("MAX_PIXELS", { min: 1, default: DEFAULT_MAX_PIXELS }),
  MAX_PAGES: intEnv("MAX_PAGES", { min: 1, default: DEFAULT_MAX_PAGES }),
  RENDER_TIMEOUT_MS: intEnv("RENDER_TIMEOUT_MS", { min: 100, default: defaults.renderTimeoutMs }),
  RENDER_THREADS: intEnv("RENDER_THREADS", { min: 1, default: defaults.renderThreads }),
  /** Dead letters broken down at once per DLQ. */
  CONCURRENCY: intEnv("CONCURRENCY", { min: 1, default: defaults.concurrency }),
  FAILSAFE_MAX_ATTEMPTS: intEnv("FAILSAFE_MAX_ATTEMPTS", { min: 1, default: defaults.maxAttempts }),
  FAILSAFE_MAX_REPLAYS: intEnv("FAILSAFE_MAX_REPLAYS", { min: 0, default: defaults.maxReplays }),
  FAILSAFE_REPLAY_BASE_SECONDS: intEnv("FAILSAFE_REPLAY_BASE_SECONDS", { min: 0, max: SQS_MAX_DELAY_SECONDS, default: defaults.replayBaseSeconds }),
  FAILSAFE_REPLAY_MAX_SECONDS: intEnv("FAILSAFE_REPLAY_MAX_SECONDS", { min: 0, max: SQS_MAX_DELAY_SECONDS, default: defaults.replayMaxSeconds }),
  /** The orchestrator's thresholds, for ingest dead letters that never got a class. */
  LARGE_SIZE_BYTES: intEnv("LARGE_SIZE_BYTES", { min: 1, default: defaultThresholds.largeSizeBytes }),
  LARGE_PAGE_COUNT: intEnv("LARGE_PAGE_COUNT", { min: 1, default: defaultThresholds.largePageCount }),
  TMP_DIR: z.string().min(1).optional(),
});
export type FailsafeConfig = z.infer<typeof configSchema>;

/** Reads the failsafe's configuration; throws ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): FailsafeConfig {
  return loadEnv(configSchema, env);
}
