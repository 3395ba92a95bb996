/**
 * How long POST /batches takes to fully enqueue N objects on the local stack: from the
 * request until every document row, audit record and ingest message exists.
 *
 *   cd tests && INGEST_BENCH_N=100000 node --conditions=@docpipe/source --import tsx ingestion/bench-enqueue.ts
 *
 * Objects are spread over prefixes of 1,000 keys (s3rver walks a prefix's directory on every
 * page, so one huge directory measures s3rver, not us). Uploading them takes longer than
 * listing them; only the listing is timed.
 */
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { start } from "@docpipe/local-stack";
import { createLogger } from "@docpipe/queue";
import { buildApp } from "@docpipe/ingestion";
import { authed, createTestKey, pdfKeys, putObjects } from "./helpers.js";

const n = Number(process.env.INGEST_BENCH_N ?? 10_000);
const perPrefix = 1_000;
const logger = createLogger({ service: "bench-enqueue", level: process.env.LOG_LEVEL ?? "info" });

async function main(): Promise<void> {
  const stack = await start({ buckets: ["bench-inbox"] });
  try {
    const prefixes = Array.from({ length: Math.ceil(n / perPrefix) }, (_, i) => `bench/${String(i).padStart(4, "0")}/`);
    const keys = prefixes.flatMap((p, i) => pdfKeys(p, Math.min(perPrefix, n - i * perPrefix)));
    let t = Date.now();
    await putObjects(stack.s3, "bench-inbox", keys, 64);
    logger.info({ objects: keys.length, ms: Date.now() - t }, "uploaded");

    const app = buildApp({ prisma: stack.prisma, s3: stack.s3, sqs: stack.sqs, queueUrls: stack.queueUrls, workBucket: stack.workBucket, logger });
    await app.ready();
    const { key } = await createTestKey(stack.prisma);
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 200);
    t = Date.now();
    const res = await authed(app, key).post("/batches").send({ bucket: "bench-inbox", prefixes }).expect(202);
    const acceptedMs = Date.now() - t;
    await app.lister.idle();
    const enqueuedMs = Date.now() - t;
    clearInterval(sampler);
    const batch = await stack.prisma.batch.findUniqueOrThrow({ where: { id: res.body.batchId } });
    const q = await stack.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: stack.queueUrls.ingest.url, AttributeNames: ["ApproximateNumberOfMessages"] }),
    );
    logger.info(
      {
        objects: n,
        acceptedMs,
        enqueuedMs,
        perSecond: Math.round((n / enqueuedMs) * 1000),
        documents: batch.documentCount,
        messages: Number(q.Attributes?.ApproximateNumberOfMessages),
        rssMB: Math.round(rssBefore / 2 ** 20),
        rssPeakMB: Math.round(rssPeak / 2 ** 20),
      },
      "enqueued",
    );
    await app.close();
  } finally {
    await stack.stop();
  }
}

main().catch((e: unknown) => {
  logger.fatal({ err: e }, "benchmark failed");
  process.exit(1);
});
