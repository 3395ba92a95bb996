import { createPrisma } from "@docpipe/db";
import { createAwsClients, createLogger, resolveQueueUrls } from "@docpipe/queue";
import { loadConfig } from "./config.js";
import { createPageConverter } from "./service.js";

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ service: "page-converter", level: config.LOG_LEVEL });
  const { s3, sqs } = createAwsClients(config);
  const prisma = createPrisma({ databaseUrl: config.DATABASE_URL });
  try {
    const service = createPageConverter({
      sqs,
      s3,
      prisma,
      queueUrls: await resolveQueueUrls(sqs, config.QUEUE_PREFIX),
      workBucket: config.WORK_BUCKET,
      dpi: config.DPI,
      maxPixels: config.MAX_PIXELS,
      renderTimeoutMs: config.RENDER_TIMEOUT_MS,
      renderTimeoutAttempts: config.RENDER_TIMEOUT_ATTEMPTS,
      ...(config.RENDER_THREADS > 0 && { renderThreads: config.RENDER_THREADS }),
      ...(config.TMP_DIR && { tmpDir: config.TMP_DIR }),
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
    s3.destroy();
    sqs.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
