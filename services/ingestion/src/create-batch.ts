import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import type { BatchAccepted, BatchReplayed, CreateBatchBody } from "@docpipe/api-contract";
import { allowListProblem, meterBatch, meterQuotaRefusal, quotaStatus, type CallerKey } from "@docpipe/api-keys";
import type { PrismaClient } from "@docpipe/db";
import { coerceError, type Logger } from "@docpipe/queue";
import { BatchOptions } from "./batch-options.js";
import { AccessError, BucketError, ThrottledError } from "./errors.js";
import { earlierBatch, IdempotencyRace, rememberKey, type Idempotency } from "./idempotency.js";
import type { BatchLister } from "./lister.js";

export interface CreateBatchDeps {
  prisma: PrismaClient;
  s3: S3Client;
  lister: Pick<BatchLister, "start">;
  workerId: string;
  /** How long the bucket check waits for S3, in ms. */
  s3CheckTimeoutMs: number;
  /** Buckets the pipeline writes (the work bucket): never a source, whatever a key allows. */
  reservedBuckets: readonly string[];
}

/** The first ListObjectsV2 call, made before answering 202: can we list this bucket at all? */
async function checkBucket(s3: S3Client, bucket: string, prefix: string, timeoutMs: number): Promise<void> {
  try {
    await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1 }), {
      abortSignal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const err = coerceError(e);
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (err.name === "NoSuchBucket" || status === 404) {
      throw new BucketError(422, "bucket_not_found", `bucket ${bucket} does not exist`, bucket, { cause: err });
    }
    if (err.name === "AccessDenied" || err.name === "AllAccessDisabled" || status === 403) {
      throw new BucketError(403, "bucket_forbidden", `this service may not list bucket ${bucket}`, bucket, { cause: err });
    }
    if (err.name === "PermanentRedirect" || status === 301) {
      throw new BucketError(422, "bucket_wrong_region", `bucket ${bucket} is in another region than this service`, bucket, {
        cause: err,
      });
    }
    throw new BucketError(503, "bucket_unavailable", `S3 did not answer for bucket ${bucket}; try again`, bucket, { cause: err });
  }
}

/** The batch an Idempotency-Key already created, as it is now. */
async function replayed(prisma: PrismaClient, batchId: string): Promise<BatchReplayed> {
  const { state } = await prisma.batch.findUniqueOrThrow({ where: { id: batchId }, select: { state: true } });
  return { batchId, state, replayed: true };
}

/**
 * `POST /batches`: with an Idempotency-Key already used with the same body, the batch that
 * request created (nothing checked, metered or listed again; another body is a 422); else not a bucket the pipeline writes (403 for every key), within the key's allow-list (403, no S3 call) and quota (429), on a bucket
 * we can list (one ListObjectsV2 of one key), the batch, its metering and its first audit
 * record in one transaction; then its listing starts in the background.
 */
export async function createBatch(
  deps: CreateBatchDeps,
  caller: CallerKey,
  body: CreateBatchBody,
  log: Logger,
  idempotency?: Idempotency,
): Promise<BatchAccepted | BatchReplayed> {
  const { prisma } = deps;
  const earlier = idempotency && (await earlierBatch(prisma, caller.id, idempotency));
  if (earlier) return replayed(prisma, earlier);
  if (deps.reservedBuckets.includes(body.bucket)) {
    // Its keys are other batches' pages and PNGs: listing it would hand them to this caller.
    throw new AccessError(403, "bucket_reserved", `bucket ${body.bucket} is where the pipeline writes its own files; it is never a source`, {
      bucket: body.bucket,
    });
  }
  const denied = allowListProblem(caller, body.bucket, body.prefixes);
  if (denied) throw new AccessError(403, denied.code, denied.message, denied.details);
  const quota = await quotaStatus(prisma, caller);
  // With no page left every document would fail page_quota_exceeded: refuse the batch instead.
  const spent =
    quota.remaining === 0
      ? { what: "documents", code: "quota_exceeded" as const, limit: quota.limit, used: quota.used }
      : quota.pages.remaining === 0
        ? { what: "pages", code: "page_quota_exceeded" as const, limit: quota.pages.limit, used: quota.pages.used }
        : undefined;
  if (spent) {
    await meterQuotaRefusal(prisma, caller.id);
    throw new ThrottledError(
      spent.code,
      `API key ${caller.prefix} has used its quota of ${spent.limit} ${spent.what} per ${quota.period}; it resets at ${quota.resetsAt.toISOString()}`,
      Math.max(1, Math.ceil((quota.resetsAt.getTime() - Date.now()) / 1000)),
      { limit: spent.limit, used: spent.used, period: quota.period, resetsAt: quota.resetsAt.toISOString() },
      { "x-quota-reset": quota.resetsAt.toISOString() },
    );
  }
  await checkBucket(deps.s3, body.bucket, body.prefixes[0]!, deps.s3CheckTimeoutMs);
  const options = BatchOptions.parse({
    onTooLarge: body.onTooLarge,
    skipAlreadyProcessed: body.skipAlreadyProcessed,
    onDamagedPage: body.onDamagedPage,
  });
  const created = prisma.$transaction(async (tx) => {
    const b = await tx.batch.create({
      data: {
        bucket: body.bucket,
        prefixes: body.prefixes,
        options,
        apiKeyId: caller.id,
        owner: caller.owner,
        ...(body.label !== undefined && { label: body.label }),
      },
      select: { id: true },
    });
    await meterBatch(tx, caller.id);
    await tx.auditEvent.create({
      data: {
        batchId: b.id,
        stage: "ingestion",
        outcome: "started",
        workerId: deps.workerId,
        details: { event: "batch_created", bucket: body.bucket, prefixes: body.prefixes },
      },
    });
    if (idempotency) await rememberKey(tx, caller.id, idempotency, b.id);
    return b;
  });
  const batch = await created.catch(async (e: unknown) => {
    // The same request at the same moment, stored first: this batch is rolled back, the first one answers.
    if (!(e instanceof IdempotencyRace) || !idempotency) throw e;
    return undefined;
  });
  if (!batch) return replayed(prisma, (await earlierBatch(prisma, caller.id, idempotency!))!);
  log.info({ batchId: batch.id, bucket: body.bucket, prefixes: body.prefixes.length }, "batch accepted");
  deps.lister.start(batch.id);
  return { batchId: batch.id, state: "listing" };
}
