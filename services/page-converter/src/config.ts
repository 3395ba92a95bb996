import { commonEnv, loadEnv } from "@docpipe/queue";
import { z } from "zod";

const int = (name: string, def: number, min: number) =>
  z.coerce
    .number({ error: `${name} must be a number` })
    .int(`${name} must be a whole number`)
    .min(min, `${name} must be at least ${min}`)
    .default(def);

const configSchema = commonEnv.extend({
  DPI: int("DPI", 150, 1),
  MAX_PIXELS: int("MAX_PIXELS", 50_000_000, 1),
  RENDER_TIMEOUT_MS: int("RENDER_TIMEOUT_MS", 60_000, 100),
  RENDER_TIMEOUT_ATTEMPTS: int("RENDER_TIMEOUT_ATTEMPTS", 2, 1),
  RENDER_THREADS: int("RENDER_THREADS", 0, 0),
  TMP_DIR: z.string().min(1).optional(),
  /** How long a received message stays hidden from other workers (extended while it runs); 0 = the queue's. */
  VISIBILITY_TIMEOUT_SECONDS: int("VISIBILITY_TIMEOUT_SECONDS", 0, 0),
});

export type PageConverterConfig = z.infer<typeof configSchema>;

/** Reads the page converter's configuration; throws ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): PageConverterConfig {
  return loadEnv(configSchema, env);
}
