import { DEFAULT_DPI, DEFAULT_MAX_PIXELS, DEFAULT_PNG_LEVEL } from "@docpipe/pdf";
import { commonEnv, intEnv, loadEnv } from "@docpipe/queue";
import { z } from "zod";
import { defaults } from "./defaults.js";

const configSchema = commonEnv.extend({
  DPI: intEnv("DPI", { min: 1, default: DEFAULT_DPI }),
  MAX_PIXELS: intEnv("MAX_PIXELS", { min: 1, default: DEFAULT_MAX_PIXELS }),
  PNG_LEVEL: intEnv("PNG_LEVEL", { min: 0, max: 9, default: DEFAULT_PNG_LEVEL }),
  RENDER_TIMEOUT_MS: intEnv("RENDER_TIMEOUT_MS", { min: 100, default: defaults.renderTimeoutMs }),
  RENDER_TIMEOUT_ATTEMPTS: intEnv("RENDER_TIMEOUT_ATTEMPTS", { min: 1, default: defaults.renderTimeoutAttempts }),
  RENDER_THREADS: intEnv("RENDER_THREADS", { min: 0, default: 0 }),
  TMP_DIR: z.string().min(1).optional(),
});

export type PageConverterConfig = z.infer<typeof configSchema>;

/** Reads the page converter's configuration; throws ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): PageConverterConfig {
  return loadEnv(configSchema, env);
}
