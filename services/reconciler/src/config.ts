import { commonEnv, intEnv, loadEnv } from "@docpipe/queue";
import type { z } from "zod";

/** The reconciler's environment; the README says what each variable means. */
export const configSchema = commonEnv.extend({
  /** Seconds between passes; 0 runs one pass and exits (a scheduled task). */
  RECONCILE_INTERVAL_SECONDS: intEnv("RECONCILE_INTERVAL_SECONDS", { min: 0, default: 0 }),
  RECONCILE_IDLE_SECONDS: intEnv("RECONCILE_IDLE_SECONDS", { min: 0, default: 600 }),
  RECONCILE_SETTLE_SECONDS: intEnv("RECONCILE_SETTLE_SECONDS", { min: 0, default: 60 }),
});
export type ReconcilerConfig = z.infer<typeof configSchema>;

/** Reads the reconciler's configuration; throws ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): ReconcilerConfig {
  return loadEnv(configSchema, env);
}
