import { runService } from "@docpipe/queue";
import { buildModelInvoker, loadConfig } from "./config.js";
import { createInferenceClient } from "./service.js";

runService({
  name: "inference-client",
  loadConfig,
  build: async ({ config, sqs, prisma, queueUrls, logger, liveness, metrics }) =>
    createInferenceClient({
      liveness,
      metrics,
      sqs,
      prisma,
      queueUrls,
      model: await buildModelInvoker(config, logger),
      maxConcurrency: config.MODEL_MAX_CONCURRENCY,
      ratePerSecond: config.MODEL_RATE_PER_SECOND,
      burst: config.MODEL_BURST,
      maxAttempts: config.MODEL_MAX_ATTEMPTS,
      backoff: { baseMs: config.MODEL_RETRY_BASE_MS, capMs: config.MODEL_RETRY_CAP_MS },
      breakerFailureThreshold: config.BREAKER_FAILURE_THRESHOLD,
      breakerCooldownMs: config.BREAKER_COOLDOWN_MS,
      ...(config.WORKER_CONCURRENCY > 0 && { workerConcurrency: config.WORKER_CONCURRENCY }),
      ...(config.VISIBILITY_TIMEOUT_SECONDS && { visibilityTimeoutSeconds: config.VISIBILITY_TIMEOUT_SECONDS }),
      logger,
    }),
}).catch(() => process.exit(1));
