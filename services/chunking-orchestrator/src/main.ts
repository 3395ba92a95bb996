import { createPrisma } from "@docpipe/db";
import { createAwsClients, createLogger, resolveQueueUrls } from "@docpipe/queue";
import { loadConfig } from "./config.js";
import { createOrchestrator } from "./orchestrator.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ service: "chunking-orchestrator", level: config.LOG_LEVEL });
  const { s3, sqs } = createAwsClients(config);
  const prisma = createPrisma({ databaseUrl: config.DATABASE_URL });
  try {
    const queueUrls = await resolveQueueUrls(sqs, config.QUEUE_PREFIX);
    const orchestrator = createOrchestrator({
      sqs, s3, prisma, queueUrls, logger,
      largeSizeBytes: config.LARGE_SIZE_BYTES,
      largePageCount: config.LARGE_PAGE_COUNT,
      maxPages: config.MAX_PAGES,
      concurrency: config.CONCURRENCY,
      ...(config.TMP_DIR ? { tmpDir: config.TMP_DIR } : {}),
      ...(config.VISIBILITY_TIMEOUT_SECONDS ? { visibilityTimeoutSeconds: config.VISIBILITY_TIMEOUT_SECONDS } : {}),
    });
    orchestrator.start();
    logger.info("chunking orchestrator started");
    await new Promise<void>((resolve) => {
      process.once("SIGTERM", resolve);
      process.once("SIGINT", resolve);
    });
    logger.info("stopping");
    await orchestrator.stop();
  } finally {
    await prisma.$disconnect();
    s3.destroy();
    sqs.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
