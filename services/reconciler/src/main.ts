import { runService } from "@docpipe/queue";
import { loadConfig } from "./config.js";
import { createReconciler } from "./reconciler.js";

runService({
  name: "reconciler",
  loadConfig,
  build: ({ config, sqs, prisma, queueUrls, logger, liveness, metrics }) => {
    const reconciler = createReconciler({
      prisma,
      sqs,
      queueUrls,
      workBucket: config.WORK_BUCKET,
      idleSeconds: config.RECONCILE_IDLE_SECONDS,
      settleSeconds: config.RECONCILE_SETTLE_SECONDS,
      intervalSeconds: config.RECONCILE_INTERVAL_SECONDS,
      logger,
      liveness,
      metrics,
    });
    // RECONCILE_INTERVAL_SECONDS=0: one pass, then exit (a scheduled task).
    if (config.RECONCILE_INTERVAL_SECONDS > 0) return reconciler;
    let finished!: Promise<void>;
    return {
      start: () => {
        finished = reconciler.runOnce().then((r) => logger.info(r, "pass done"));
      },
      stop: () => reconciler.stop(),
      get finished() {
        return finished;
      },
    };
  },
}).catch(() => process.exit(1));
