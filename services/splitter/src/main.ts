import { createPrisma } from "@docpipe/db";
import { createAwsClients, createLogger, resolveQueueUrls } from "@docpipe/queue";
import { loadConfig } from "./config.js";
import { createSplitter } from "./splitter.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const service = `splitter-${config.ROLE}`;
  const logger = createLogger({ service, level: config.LOG_LEVEL });
  const { s3, sqs } = createAwsClients(config);
  const prisma = createPrisma({ databaseUrl: config.DATABASE_URL });
  try {
    const queueUrls = await resolveQueueUrls(sqs, config.QUEUE_PREFIX);
    const splitter = createSplitter({
      role: config.ROLE,
      sqs, s3, prisma, queueUrls, logger,
      workBucket: config.WORK_BUCKET,
      chunkPages: config.CHUNK_PAGES,
      maxPages: config.MAX_PAGES,
      ...(config.CONCURRENCY ? { concurrency: config.CONCURRENCY } : {}),
      ...(config.HEARTBEAT_SECONDS ? { heartbeatSeconds: config.HEARTBEAT_SECONDS } : {}),
      ...(config.VISIBILITY_TIMEOUT_SECONDS ? { visibilityTimeoutSeconds: config.VISIBILITY_TIMEOUT_SECONDS } : {}),
      ...(config.TMP_DIR ? { tmpDir: config.TMP_DIR } : {}),
    });
    splitter.start();
    logger.info("splitter started");
    await new Promise<void>((resolve) => {
      process.once("SIGTERM", resolve);
      process.once("SIGINT", resolve);
    });
    logger.info("stopping");
    await splitter.stop();
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
