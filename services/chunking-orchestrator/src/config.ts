import { commonEnv, loadEnv } from "@docpipe/queue";
import { z } from "zod";

const positiveInt = (name: string, fallback: number) =>
  z.coerce
    .number({ error: `${name} must be a positive integer` })
    .int(`${name} must be a positive integer`)
    .positive(`${name} must be a positive integer`)
    .default(fallback);

/** The chunking orchestrator's environment: the shared endpoints plus its thresholds. */
export const configSchema = commonEnv.extend({
  /** Documents larger than this are large without being opened. */
  LARGE_SIZE_BYTES: positiveInt("LARGE_SIZE_BYTES", 10 * 1024 * 1024),
  /** Documents with more pages than this are large. */
  LARGE_PAGE_COUNT: positiveInt("LARGE_PAGE_COUNT", 10),
  /** A document claiming more pages than this is rejected as hostile or broken. */
  MAX_PAGES: positiveInt("MAX_PAGES", 100_000),
  /** Messages handled at once by one task. */
  CONCURRENCY: positiveInt("CONCURRENCY", 4),
  /** Where sources under the size limit are downloaded to be opened; defaults to the OS temp dir. */
  TMP_DIR: z.string().min(1).optional(),
  /** How long a received message stays hidden from other workers (extended while it runs); defaults to the queue's. */
  VISIBILITY_TIMEOUT_SECONDS: z.coerce
    .number({ error: "VISIBILITY_TIMEOUT_SECONDS must be a positive integer" })
    .int("VISIBILITY_TIMEOUT_SECONDS must be a positive integer")
    .positive("VISIBILITY_TIMEOUT_SECONDS must be a positive integer")
    .optional(),
});
export type OrchestratorConfig = z.infer<typeof configSchema>;

export function loadConfig(env: Record<string, string | undefined> = process.env): OrchestratorConfig {
  return loadEnv(configSchema, env);
}
