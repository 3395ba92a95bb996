import { runService } from "@docpipe/queue";
import { loadConfig } from "./config.js";
import { createOrchestrator } from "./orchestrator.js";

runService({
  name: "chunking-orchestrator",
  loadConfig,
  build: ({ config, sqs, s3, prisma, queueUrls, logger, liveness, metrics }) =>
    createOrchestrator({
      sqs, s3, prisma, queueUrls, logger, liveness, metrics,
      largeSizeBytes: config.LARGE_SIZE_BYTES,
      largePageCount: config.LARGE_PAGE_COUNT,
      maxPages: config.MAX_PAGES,
      concurrency: config.CONCURRENCY,
      ...(config.TMP_DIR ? { tmpDir: config.TMP_DIR } : {}),
      ...(config.VISIBILITY_TIMEOUT_SECONDS && { visibilityTimeoutSeconds: config.VISIBILITY_TIMEOUT_SECONDS }),
    }),
}).catch(() => process.exit(1));
