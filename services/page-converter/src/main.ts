import { runService } from "@docpipe/queue";
import { loadConfig } from "./config.js";
import { createPageConverter } from "./service.js";

runService({
  name: "page-converter",
  loadConfig,
  build: ({ config, sqs, s3, prisma, queueUrls, logger, liveness, metrics }) =>
    createPageConverter({
      liveness,
      metrics,
      sqs,
      s3,
      prisma,
      queueUrls,
      workBucket: config.WORK_BUCKET,
      dpi: config.DPI,
      maxPixels: config.MAX_PIXELS,
      pngLevel: config.PNG_LEVEL,
      renderTimeoutMs: config.RENDER_TIMEOUT_MS,
      renderTimeoutAttempts: config.RENDER_TIMEOUT_ATTEMPTS,
      ...(config.RENDER_THREADS > 0 && { renderThreads: config.RENDER_THREADS }),
      ...(config.TMP_DIR && { tmpDir: config.TMP_DIR }),
      ...(config.VISIBILITY_TIMEOUT_SECONDS && { visibilityTimeoutSeconds: config.VISIBILITY_TIMEOUT_SECONDS }),
      logger,
    }),
}).catch(() => process.exit(1));
