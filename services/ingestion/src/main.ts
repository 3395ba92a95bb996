import { createPrisma } from "@docpipe/db";
import { createAwsClients, createLogger, createMetrics, resolveQueueUrls } from "@docpipe/queue";
import { once } from "node:events";
import { buildApp } from "./app.js";
import { loadConfig } from "./config.js";
import { watchStalledBatches } from "./stall.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ service: "ingestion", level: config.LOG_LEVEL });
  const { s3, sqs } = createAwsClients(config);
  const prisma = createPrisma({ databaseUrl: config.DATABASE_URL, poolMax: config.DATABASE_POOL_MAX });
  try {
    const queueUrls = await resolveQueueUrls(sqs, config.QUEUE_PREFIX);
    const app = buildApp({
      prisma,
      s3,
      sqs,
      queueUrls,
      logger,
      bodyLimit: config.BODY_LIMIT_BYTES,
      listPageSize: config.LIST_PAGE_SIZE,
      maxConcurrentListings: config.MAX_CONCURRENT_LISTINGS,
      sendParallelism: config.SEND_PARALLELISM,
      s3CheckTimeoutMs: config.S3_CHECK_TIMEOUT_MS,
      readyTimeoutMs: config.READY_TIMEOUT_MS,
      workBucket: config.WORK_BUCKET,
      stallAfterSeconds: config.STALL_AFTER_SECONDS,
      maxDocumentsPerBatch: config.MAX_DOCUMENTS_PER_BATCH,
      requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
      trustProxy: config.TRUST_PROXY,
      auth: {
        keyCacheSeconds: config.KEY_CACHE_SECONDS,
        failureBurst: config.AUTH_FAILURE_BURST,
        failuresPerSecond: config.AUTH_FAILURES_PER_MINUTE / 60,
      },
    });
    await app.listen({ port: config.PORT, host: config.HOST });
    const metrics = createMetrics({ service: "ingestion" });
    const stalls = watchStalledBatches({ prisma, metrics, stallAfterMs: config.STALL_AFTER_SECONDS * 1000, logger });
    const [signal] = (await Promise.race([once(process, "SIGTERM"), once(process, "SIGINT")])) as [string];
    logger.info({ signal }, "stopping: finishing in-flight listing pages");
    // Stops accepting requests, then the lister finishes its pages; batches resume on the next start.
    await app.close();
    stalls.stop();
    metrics.close();
    logger.info("stopped");
  } catch (e) {
    logger.fatal({ err: e }, "ingestion failed");
    throw e;
  } finally {
    await prisma.$disconnect();
    s3.destroy();
    sqs.destroy();
  }
}

main().catch(() => process.exit(1));
