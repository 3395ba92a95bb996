import { createPrisma } from "@docpipe/db";
import { createAwsClients, createLogger, resolveQueueUrls } from "@docpipe/queue";
import { buildModelInvoker, loadConfig } from "./config.js";
import { createInferenceClient } from "./service.js";

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ service: "inference-client", level: config.LOG_LEVEL });
  const { sqs } = createAwsClients(config);
  const prisma = createPrisma({ databaseUrl: config.DATABASE_URL });
  try {
    const service = createInferenceClient({
      sqs,
      prisma,
      queueUrls: await resolveQueueUrls(sqs, config.QUEUE_PREFIX),
      model: buildModelInvoker(config),
      maxConcurrency: config.MODEL_MAX_CONCURRENCY,
      ratePerSecond: config.MODEL_RATE_PER_SECOND,
      burst: config.MODEL_BURST,
      maxAttempts: config.MODEL_MAX_ATTEMPTS,
      backoff: { baseMs: config.MODEL_RETRY_BASE_MS, capMs: config.MODEL_RETRY_CAP_MS },
      breakerFailureThreshold: config.BREAKER_FAILURE_THRESHOLD,
      breakerCooldownMs: config.BREAKER_COOLDOWN_MS,
      ...(config.WORKER_CONCURRENCY > 0 && { workerConcurrency: config.WORKER_CONCURRENCY }),
      ...(config.VISIBILITY_TIMEOUT_SECONDS > 0 && { visibilityTimeoutSeconds: config.VISIBILITY_TIMEOUT_SECONDS }),
      logger,
    });
    service.start();
    await new Promise<void>((resolve) => {
      process.once("SIGTERM", resolve);
      process.once("SIGINT", resolve);
    });
    logger.info("stopping");
    await service.stop();
  } finally {
    await prisma.$disconnect();
    sqs.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
