import { CreateBucketCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { createOrchestrator } from "@docpipe/chunking-orchestrator";
import type { PrismaClient } from "@docpipe/db";
import { createInferenceClient } from "@docpipe/inference-client";
import type { LocalStack } from "@docpipe/local-stack";
import { createPageConverter } from "@docpipe/page-converter";
import { createLogger, type Logger } from "@docpipe/queue";
import { startReferenceModel } from "@docpipe/reference-model";
import { createSplitter } from "@docpipe/splitter";
import { readFile } from "node:fs/promises";
import { ApiClient } from "@docpipe/cli";
import { createIngestionService } from "@docpipe/ingestion";
import { createApiKey } from "@docpipe/api-keys";

/** Quiet unless TEST_LOG names a level. */
export function testLogger(): Logger {
  return createLogger({ service: "operator-tests", level: process.env.TEST_LOG ?? "error" });
}

/** Long polls this short let every worker stop within a second or two. */
const WAIT_SECONDS = 1;

export interface Running {
  stop(): Promise<void>;
}

/** The ingestion API on a free port, on this test's database, and a client with a fresh API key. */
export async function startApi(
  stack: LocalStack,
  prisma: PrismaClient,
  opts: { stallAfterSeconds?: number } = {},
): Promise<Running & { api: ApiClient; url: string; key: string }> {
  const service = createIngestionService({
    prisma,
    s3: stack.s3,
    sqs: stack.sqs,
    queueUrls: stack.queueUrls,
    workBucket: stack.workBucket,
    logger: testLogger().child({ service: "ingestion" }),
    port: 0,
    ...(opts.stallAfterSeconds !== undefined && { stallAfterSeconds: opts.stallAfterSeconds }),
  });
  const url = await service.start();
  const { key } = await createApiKey(prisma, { name: "operator tests", owner: "operator-tests", plan: "local", buckets: ["*"] });
  return { api: new ApiClient(url, key), url, key, stop: () => service.stop() };
}

export type WorkerName = "orchestrator" | "splitters" | "converter" | "inference";

/** The pipeline's workers (all, or the ones named) and the reference model, on this test's database. */
export async function startWorkers(
  stack: LocalStack,
  prisma: PrismaClient,
  only: WorkerName[] = ["orchestrator", "splitters", "converter", "inference"],
  opts: { /** The orchestrator's size limit: files over it go to the large splitter unopened. */ largeSizeBytes?: number } = {},
): Promise<Running> {
  const logger = testLogger();
  const { s3, sqs, queueUrls, workBucket } = stack;
  const common = { sqs, s3, prisma, queueUrls, waitTimeSeconds: WAIT_SECONDS };
  const started: Running[] = [];
  // Idempotent: a test may stop workers early and the cleanup stops them again.
  const stop = async () => {
    for (let s = started.pop(); s; s = started.pop()) await s.stop();
  };
  try {
    const workers: { start(): void; stop(): Promise<void> }[] = [];
    if (only.includes("orchestrator")) {
      workers.push(
        createOrchestrator({
          ...common,
          ...(opts.largeSizeBytes !== undefined && { largeSizeBytes: opts.largeSizeBytes }),
          logger: logger.child({ service: "orchestrator" }),
        }),
      );
    }
    if (only.includes("splitters")) {
      workers.push(createSplitter({ ...common, role: "large", workBucket, logger: logger.child({ service: "splitter-large" }) }));
      workers.push(createSplitter({ ...common, role: "small", workBucket, logger: logger.child({ service: "splitter-small" }) }));
    }
    if (only.includes("converter")) {
      workers.push(createPageConverter({ ...common, workBucket, dpi: 30, logger: logger.child({ service: "page-converter" }) }));
    }
    if (only.includes("inference")) {
      const model = await startReferenceModel({ s3, logger: logger.child({ service: "reference-model" }) });
      started.push(model);
      workers.push(
        createInferenceClient({ ...common, model: { url: `${model.url}/invocations` }, logger: logger.child({ service: "inference-client" }) }),
      );
    }
    for (const w of workers) {
      w.start();
      started.push(w);
    }
    return { stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export async function ensureBucket(s3: S3Client, bucket: string): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch((e: Error) => {
    if (e.name !== "BucketAlreadyOwnedByYou" && e.name !== "BucketAlreadyExists") throw e;
  });
}

export async function putFile(s3: S3Client, bucket: string, key: string, path: string): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: await readFile(path), ContentType: "application/pdf" }));
}

/**
 * Runs `body` with a list to register running services on, and stops them all (last started
 * first) before returning: the stack fixture fails a test whose workers still poll after it.
 */
export async function withServices<T>(body: (own: <R extends Running>(r: R) => R) => Promise<T>): Promise<T> {
  const running: Running[] = [];
  try {
    return await body((r) => {
      running.push(r);
      return r;
    });
  } finally {
    for (const r of running.reverse()) await r.stop();
  }
}
