import { runService } from "@docpipe/queue";
import { loadConfig } from "./config.js";
import { createSplitter } from "./splitter.js";

runService({
  name: (config) => `splitter-${config.ROLE}`,
  loadConfig,
  build: ({ config, sqs, s3, prisma, queueUrls, logger, liveness, metrics, taskProtection }) =>
    createSplitter({
      role: config.ROLE,
      sqs, s3, prisma, queueUrls, logger, liveness, metrics,
      // A large split can run for an hour; a small one is over in seconds.
      ...(config.ROLE === "large" && { taskProtection }),
      workBucket: config.WORK_BUCKET,
      chunkPages: config.CHUNK_PAGES,
      maxPages: config.MAX_PAGES,
      ...(config.CONCURRENCY ? { concurrency: config.CONCURRENCY } : {}),
      ...(config.HEARTBEAT_SECONDS ? { heartbeatSeconds: config.HEARTBEAT_SECONDS } : {}),
      ...(config.VISIBILITY_TIMEOUT_SECONDS && { visibilityTimeoutSeconds: config.VISIBILITY_TIMEOUT_SECONDS }),
      ...(config.TMP_DIR ? { tmpDir: config.TMP_DIR } : {}),
      ...(config.NATIVE_SPLIT_MIN_BYTES !== undefined && { nativeMinBytes: config.NATIVE_SPLIT_MIN_BYTES }),
    }),
}).catch(() => process.exit(1));
