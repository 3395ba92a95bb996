import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { ServiceSpec } from "./supervisor.js";

const REPO_ROOT = resolve(import.meta.dirname, "../../..");

/** Whether services/failsafe has been written yet (its main.ts is a placeholder until then). */
export function failsafeExists(): boolean {
  try {
    return /createWorker|createFailsafe|loadConfig/.test(readFileSync(join(REPO_ROOT, "services/failsafe/src/main.ts"), "utf8"));
  } catch {
    return false;
  }
}

export interface ProcessSetOptions {
  /** Port of the ingestion API. */
  apiPort: number;
  /** The model's invocation URL. */
  modelUrl: string;
  /** Page converter and inference client processes each. @defaultValue 2 */
  replicas?: number;
  /** @defaultValue 50 */
  dpi?: number;
}

/**
 * The whole pipeline as separate processes, as on ECS: one ingestion API, one orchestrator,
 * one splitter per role, `replicas` page converters and inference clients, and the failsafe
 * once it exists. Settings are the services' own environment variables.
 */
export function pipelineProcesses(opts: ProcessSetOptions): ServiceSpec[] {
  const replicas = opts.replicas ?? 2;
  const specs: ServiceSpec[] = [
    {
      name: "ingestion",
      service: "ingestion",
      env: { PORT: String(opts.apiPort), HOST: "127.0.0.1", DATABASE_POOL_MAX: "4" },
      ready: {
        probe: async () => (await fetch(`http://127.0.0.1:${opts.apiPort}/healthz`, { signal: AbortSignal.timeout(1_000) })).ok,
      },
    },
    { name: "chunking-orchestrator", service: "chunking-orchestrator" },
    { name: "splitter-large", service: "splitter", env: { ROLE: "large" } },
    { name: "splitter-small", service: "splitter", env: { ROLE: "small" } },
    // One render thread each: two processes on two cores.
    { name: "page-converter", service: "page-converter", replicas, env: { DPI: String(opts.dpi ?? 50), RENDER_THREADS: "1" } },
    {
      name: "inference-client",
      service: "inference-client",
      replicas,
      env: {
        MODEL_URL: opts.modelUrl,
        // A short outage should cost seconds, not the production 30 s cool-down.
        BREAKER_COOLDOWN_MS: "1500",
        MODEL_RETRY_CAP_MS: "1000",
      },
    },
  ];
  if (failsafeExists()) {
    specs.push({
      name: "failsafe",
      service: "failsafe",
      // Same pixels as the page converters; replays seconds apart instead of the production 30 s and up.
      env: { DPI: String(opts.dpi ?? 50), FAILSAFE_REPLAY_BASE_SECONDS: "2", FAILSAFE_REPLAY_MAX_SECONDS: "10" },
    });
  }
  return specs;
}
