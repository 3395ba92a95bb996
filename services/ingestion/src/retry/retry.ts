import type { RetryFailedResponse } from "@docpipe/api-contract";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { coerceError, settleBatch, type Logger, type QueueUrls } from "@docpipe/queue";
import { claimRetries, unclaimRetries } from "./claim.js";
import { loadFailed, planRetry, type Plan } from "./plan.js";
import { retryProducers, sendRetries } from "./send.js";

/**
 * Failure codes that say the file itself is unusable (possibly behind a stage prefix, as in
 * `convert_corrupt_page`): a retry fails again unless someone has replaced the object.
 */
const CONTENT_FAILURES = [
  "not_pdf",
  "encrypted",
  "corrupt",
  "corrupt_page",
  "too_many_pages",
  "file_too_large",
  "page_too_large",
  "page_count_mismatch",
] as const;

export const isContentFailure = (code: string): boolean => CONTENT_FAILURES.some((c) => code === c || code.endsWith(`_${c}`));

export interface RetryDeps {
  prisma: PrismaClient;
  sqs: SQSClient;
  logger: Logger;
  workerId: string;
  queueUrls: { ingest: QueueUrls; singlePage?: QueueUrls; convertedImage?: QueueUrls };
  /** Bucket of split pages and PNGs. Without it (or without the page queues) failed pages are retried by re-running their whole document. */
  workBucket?: string;
  /** Failed documents handled per transaction and per round of messages. @defaultValue 200 */
  chunkSize?: number;
}

/** What a retry did: the answer of `POST /batches/:id/retry-failed` without its note. */
export type RetryResult = Omit<RetryFailedResponse, "note">;

export class RetryError extends Error {
  override readonly name = "RetryError";
  constructor(
    message: string,
    readonly partial: RetryResult,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
  }
}

/** Adds the sent retries to the result. */
function tally(result: RetryResult, sent: Plan[]): void {
  for (const p of sent) {
    const code = p.doc.failureCode ?? "unknown";
    result.byFailureCode[code] = (result.byFailureCode[code] ?? 0) + 1;
    if (isContentFailure(code)) result.expectedToFailAgain++;
    result.retried.documents++;
    if (p.mode === "pages") {
      result.retried.pages += p.convert.length + p.infer.length;
      result.resent.singlePage += p.convert.length;
      result.resent.convertedImage += p.infer.length;
    } else result.resent.ingest++;
  }
}

/**
 * Re-runs the failed documents of a batch, and nothing else, a chunk at a time: plan (the whole
 * document, or only its failed pages), claim (a conditional update per document, so two calls
 * never re-send the same one; see claimRetries), send (through the shared producers; what
 * could not be sent is given back its failure), tally.
 *
 * - A document that failed as a whole (source missing, not a PDF, a split that failed…) goes
 *   back to `queued` with its failure cleared and gets a fresh ingest message.
 * - A document that failed because of some of its pages, and whose every page exists, keeps
 *   its done pages: only the failed ones are re-sent, to the single-page queue (not rendered
 *   yet) or as a re-notification of their PNG to the converted-image queue (rendered, but
 *   inference gave up).
 *
 * A completed batch goes back to `processing`, and completes again through `settleBatch`
 * when its last document ends.
 */
export async function retryFailed(deps: RetryDeps, batchId: string): Promise<RetryResult> {
  const { prisma, logger } = deps;
  const chunkSize = deps.chunkSize ?? 200;
  const region = await deps.sqs.config.region();
  const producers = retryProducers(deps.sqs, deps.queueUrls, logger);
  const planContext = {
    batchId,
    workBucket: deps.workBucket,
    canSendPages: producers.singlePage !== undefined,
    canSendImages: producers.convertedImage !== undefined,
  };
  const result: RetryResult = {
    batchId,
    state: "",
    retried: { documents: 0, pages: 0 },
    resent: { ingest: 0, singlePage: 0, convertedImage: 0 },
    byFailureCode: {},
    expectedToFailAgain: 0,
  };

  let cursor = "00000000-0000-0000-0000-000000000000";
  let batchEvent = false;
  for (;;) {
    const chunk = await loadFailed(prisma, batchId, cursor, chunkSize);
    if (chunk.docs.length === 0) break;
    cursor = chunk.docs[chunk.docs.length - 1]!.id;
    const plans = chunk.docs.map((d) => planRetry(d, chunk.pagesOf.get(d.id) ?? [], planContext));
    const claimed = await claimRetries(prisma, batchId, plans, chunk.retriesOf, deps.workerId);
    if (claimed.length === 0) continue;
    batchEvent = true;
    try {
      await sendRetries(producers, claimed, { batchId, workBucket: deps.workBucket, region });
    } catch (e) {
      // Claimed but never sent, a document would wait forever: give it back its failure.
      logger.error({ err: coerceError(e), batchId, documents: claimed.length }, "retry messages not sent; documents stay failed");
      await unclaimRetries(prisma, batchId, claimed);
      throw new RetryError("the queue did not take the retry messages; the documents are still failed, try again", result, { cause: e });
    }
    tally(result, claimed);
  }

  if (batchEvent) {
    await prisma.auditEvent.create({
      data: {
        batchId,
        stage: "ingestion",
        outcome: "replayed",
        workerId: deps.workerId,
        details: { event: "retry_failed", ...result.retried, byFailureCode: result.byFailureCode },
      },
    });
  }
  // Nothing claimed, or everything given back: the batch may be settled already, or be now.
  await settleBatch(prisma, batchId);
  const batch = await prisma.batch.findUnique({ where: { id: batchId }, select: { state: true } });
  result.state = batch?.state ?? "unknown";
  logger.info({ batchId, ...result.retried, resent: result.resent }, "failed documents retried");
  return result;
}
