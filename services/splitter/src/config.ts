import { commonEnv, DEFAULT_MAX_PAGES, intEnv, loadEnv } from "@docpipe/queue";
import { MAX_MUPDF_FILE_BYTES } from "@docpipe/pdf";
import { z } from "zod";
import { defaults } from "./defaults.js";

/** The splitter's environment: one image, two deployments told apart by ROLE. */
export const configSchema = commonEnv.extend({
  ROLE: z.enum(["large", "small"], {
    error: "ROLE is required: large (large queue → ≤CHUNK_PAGES chunks) or small (small queue → single pages)",
  }),
  /** Pages per chunk written by the large role. */
  CHUNK_PAGES: intEnv("CHUNK_PAGES", { min: 1, default: defaults.chunkPages }),
  /** A document with more pages than this fails as too_many_pages. */
  MAX_PAGES: intEnv("MAX_PAGES", { min: 1, default: DEFAULT_MAX_PAGES }),
  /** Messages handled at once; defaults to 1 for the large role (disk and memory) and 2 for the small one. */
  CONCURRENCY: intEnv("CONCURRENCY", { min: 1 }),
  /** How often the worker extends a message's visibility while a split runs; defaults to the worker's. */
  HEARTBEAT_SECONDS: intEnv("HEARTBEAT_SECONDS", { min: 1 }),
  /**
   * Sources of at least this many bytes go through native mutool; every file of 2 GiB or more
   * does (mupdf's WASM build cannot read past 2 GiB), so it can only be lowered.
   */
  NATIVE_SPLIT_MIN_BYTES: intEnv("NATIVE_SPLIT_MIN_BYTES", { min: 1, max: MAX_MUPDF_FILE_BYTES + 1 }),
  /** Where sources and pieces are written while a message is worked on; defaults to the OS temp dir. */
  TMP_DIR: z.string().min(1).optional(),
});
export type SplitterConfig = z.infer<typeof configSchema>;

export function loadConfig(env: Record<string, string | undefined> = process.env): SplitterConfig {
  return loadEnv(configSchema, env);
}
