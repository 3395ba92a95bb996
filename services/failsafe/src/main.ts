import { runService } from "@docpipe/queue";
import { loadConfig } from "./config.js";
import { createFailsafe } from "./service.js";

runService({
  name: "failsafe",
  loadConfig,
  build: ({ config, sqs, s3, prisma, queueUrls, logger, liveness, metrics, taskProtection }) =>
    createFailsafe({
      liveness,
      metrics,
      taskProtection,
      sqs,
      s3,
      prisma,
      queueUrls,
      workBucket: config.WORK_BUCKET,
      dpi: config.DPI,
      maxPixels: config.MAX_PIXELS,
      maxPages: config.MAX_PAGES,
      renderTimeoutMs: config.RENDER_TIMEOUT_MS,
      renderThreads: config.RENDER_THREADS,
      concurrency: config.CONCURRENCY,
      maxAttempts: config.FAILSAFE_MAX_ATTEMPTS,
      maxReplays: config.FAILSAFE_MAX_REPLAYS,
      replayBaseSeconds: config.FAILSAFE_REPLAY_BASE_SECONDS,
      replayMaxSeconds: config.FAILSAFE_REPLAY_MAX_SECONDS,
      thresholds: { largeSizeBytes: config.LARGE_SIZE_BYTES, largePageCount: config.LARGE_PAGE_COUNT },
      ...(config.TMP_DIR && { tmpDir: config.TMP_DIR }),
      ...(config.VISIBILITY_TIMEOUT_SECONDS && { visibilityTimeoutSeconds: config.VISIBILITY_TIMEOUT_SECONDS }),
      logger,
    }),
}).catch(() => process.exit(1));
