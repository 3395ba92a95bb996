import { commonEnv, DEFAULT_MAX_PAGES, defaultThresholds, intEnv, loadEnv } from "@docpipe/queue";
import { z } from "zod";
import { defaults } from "./defaults.js";

/** The chunking orchestrator's environment: the shared endpoints plus its thresholds. */
export const configSchema = commonEnv.extend({
  /** Documents larger than this are large without being opened. */
  LARGE_SIZE_BYTES: intEnv("LARGE_SIZE_BYTES", { min: 1, default: defaultThresholds.largeSizeBytes }),
  /** Documents with more pages than this are large. */
  LARGE_PAGE_COUNT: intEnv("LARGE_PAGE_COUNT", { min: 1, default: defaultThresholds.largePageCount }),
  /** A document claiming more pages than this is rejected as hostile or broken. */
  MAX_PAGES: intEnv("MAX_PAGES", { min: 1, default: DEFAULT_MAX_PAGES }),
  /** Messages handled at once by one task. */
  CONCURRENCY: intEnv("CONCURRENCY", { min: 1, default: defaults.concurrency }),
  /** Where sources under the size limit are downloaded to be opened; defaults to the OS temp dir. */
  TMP_DIR: z.string().min(1).optional(),
});
export type OrchestratorConfig = z.infer<typeof configSchema>;

export function loadConfig(env: Record<string, string | undefined> = process.env): OrchestratorConfig {
  return loadEnv(configSchema, env);
}
