import type { SQSClient } from "@aws-sdk/client-sqs";
import type { RetryFailedResponse } from "@docpipe/api-contract";
import type { Prisma, PrismaClient } from "@docpipe/db";
import { coerceError, isWorkKey, objectCreatedEvent, QueueProducer, QueueSender, settleBatch, type Logger, type QueueUrls } from "@docpipe/queue";

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

interface FailedDoc {
  id: string;
  bucket: string;
  key: string;
  class: string | null;
  pageCount: number | null;
  pages: bigint;
  failureCode: string | null;
  failureReason: string | null;
}

interface FailedPage {
  documentId: string;
  pageNumber: number;
  pdfKey: string | null;
  imageKey: string | null;
  failureCode: string | null;
  failureReason: string | null;
}

/** How one failed document is re-run. */
type Plan =
  | { doc: FailedDoc; mode: "document" }
  | { doc: FailedDoc; mode: "pages"; convert: (FailedPage & { pdfBucket: string; pdfKey: string })[]; infer: (FailedPage & { imageKey: string })[] };

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

/**
 * Re-runs the failed documents of a batch, and nothing else.
 *
 * - A document that failed as a whole (source missing, not a PDF, a split that failed…) goes
 *   back to `queued` with its failure cleared and gets a fresh ingest message.
 * - A document that failed because of some of its pages, and whose every page exists, keeps
 *   its done pages: only the failed ones are re-sent, to the single-page queue (not rendered
 *   yet) or as a re-notification of their PNG to the converted-image queue (rendered, but
 *   inference gave up).
 *
 * Each document is claimed with a conditional update (`state = 'failed'`), so two calls at
 * once, or one after another, never re-send the same document twice: the second finds
 * nothing left to retry. A completed batch goes back to `processing` in the same transaction,
 * and completes again through `settleBatch` when its last document ends. Each retried
 * document gets an audit record (`replayed`, details `{ event: "retry_failed", retry: n }`).
 */
export async function retryFailed(deps: RetryDeps, batchId: string): Promise<RetryResult> {
  const { prisma, logger } = deps;
  const chunkSize = deps.chunkSize ?? 200;
  const region = await deps.sqs.config.region();
  const ingest = new QueueProducer({ sqs: deps.sqs, queueUrl: deps.queueUrls.ingest.url, queue: "ingest", logger });
  const singlePageUrl = deps.queueUrls.singlePage?.url;
  const singlePage = singlePageUrl ? new QueueProducer({ sqs: deps.sqs, queueUrl: singlePageUrl, queue: "singlePage", logger }) : undefined;
  const result: RetryResult = {
    batchId,
    state: "",
    retried: { documents: 0, pages: 0 },
    resent: { ingest: 0, singlePage: 0, convertedImage: 0 },
    byFailureCode: {},
    expectedToFailAgain: 0,
  };

  function plan(doc: FailedDoc, failedPages: FailedPage[]): Plan {
    const whole = { doc, mode: "document" as const };
    // A document failed early may lack pages that were never split (a splitter skips the
    // chunks of a failed document): re-sending its failed pages alone would leave it waiting forever.
    if (failedPages.length === 0 || doc.pageCount === null || Number(doc.pages) !== doc.pageCount || !deps.workBucket) return whole;
    const convert: Extract<Plan, { mode: "pages" }>["convert"] = [];
    const infer: Extract<Plan, { mode: "pages" }>["infer"] = [];
    for (const p of failedPages) {
      if (p.imageKey) infer.push({ ...p, imageKey: p.imageKey });
      else if (p.pdfKey) {
        // A single-page document's page is the source object itself; split pages are in the work bucket.
        const pdfBucket = isWorkKey({ batchId, documentId: doc.id }, p.pdfKey) ? deps.workBucket : doc.bucket;
        convert.push({ ...p, pdfKey: p.pdfKey, pdfBucket });
      } else return whole;
    }
    if ((convert.length > 0 && !singlePage) || (infer.length > 0 && !deps.queueUrls.convertedImage)) return whole;
    return { doc, mode: "pages", convert, infer };
  }

  async function sendImageEvents(pages: { imageKey: string }[]): Promise<void> {
    const sender = new QueueSender({ sqs: deps.sqs, queueUrl: deps.queueUrls.convertedImage!.url, queueName: "converted-image", logger });
    await sender.sendBodies(pages.map((p) => objectCreatedEvent(deps.workBucket!, p.imageKey, region, "docpipe-retry-failed")));
  }

  /** Puts claimed documents back the way they were, so a later call can retry them again. */
  async function unclaim(plans: Plan[]): Promise<void> {
    for (const p of plans) {
      await prisma.document.updateMany({
        where: { id: p.doc.id, state: { in: ["queued", "converting", "inferring"] } },
        data: { state: "failed", failureCode: p.doc.failureCode, failureReason: p.doc.failureReason, completedAt: new Date() },
      });
      if (p.mode === "pages") {
        for (const page of [...p.convert, ...p.infer]) {
          await prisma.page.updateMany({
            where: { documentId: p.doc.id, pageNumber: page.pageNumber, state: { in: ["pending", "rendered"] }, result: { is: null } },
            data: { state: "failed", failureCode: page.failureCode, failureReason: page.failureReason },
          });
        }
      }
    }
    await settleBatch(prisma, batchId);
  }

  let cursor = "00000000-0000-0000-0000-000000000000";
  let batchEvent = false;
  for (;;) {
    const docs = await prisma.$queryRaw<FailedDoc[]>`
      SELECT d.id, d.bucket, d.key, d.class::text AS class, d."pageCount", d."failureCode", d."failureReason",
             (SELECT count(*) FROM "Page" p WHERE p."documentId" = d.id) AS pages
      FROM "Document" d
      WHERE d."batchId" = ${batchId}::uuid AND d.state = 'failed' AND d.id > ${cursor}::uuid
      ORDER BY d.id LIMIT ${chunkSize}`;
    if (docs.length === 0) break;
    cursor = docs[docs.length - 1]!.id;
    const ids = docs.map((d) => d.id);
    const [failedPages, previous] = await Promise.all([
      prisma.page.findMany({
        where: { documentId: { in: ids }, state: "failed" },
        select: { documentId: true, pageNumber: true, pdfKey: true, imageKey: true, failureCode: true, failureReason: true },
        orderBy: [{ documentId: "asc" }, { pageNumber: "asc" }],
      }),
      prisma.$queryRaw<{ documentId: string; retries: bigint }[]>`
        SELECT e."documentId", count(*) AS retries FROM "AuditEvent" e
        WHERE e."documentId" = ANY(${ids}::uuid[]) AND e.outcome = 'replayed' AND e."pageNumber" IS NULL
          AND e.details->>'event' = 'retry_failed'
        GROUP BY e."documentId"`,
    ]);
    const pagesOf = new Map<string, FailedPage[]>();
    for (const p of failedPages) pagesOf.set(p.documentId, [...(pagesOf.get(p.documentId) ?? []), p]);
    const retriesOf = new Map(previous.map((r) => [r.documentId, Number(r.retries)]));
    const plans = docs.map((d) => plan(d, pagesOf.get(d.id) ?? []));

    const claimed = await prisma.$transaction(async (tx) => {
      const claim = async (docIds: string[], state: "queued" | "converting" | "inferring") =>
        docIds.length === 0
          ? []
          : (
              await tx.$queryRaw<{ id: string }[]>`
                UPDATE "Document" SET state = ${state}::"DocumentState", "failureCode" = NULL, "failureReason" = NULL,
                       "completedAt" = NULL, "updatedAt" = now()
                WHERE id = ANY(${docIds}::uuid[]) AND state = 'failed'
                RETURNING id`
            ).map((r) => r.id);
      const byTarget = (target: "queued" | "converting" | "inferring") =>
        plans
          .filter((p) =>
            target === "queued" ? p.mode === "document" : p.mode === "pages" && (target === "converting") === p.convert.length > 0,
          )
          .map((p) => p.doc.id);
      const got = new Set([
        ...(await claim(byTarget("queued"), "queued")),
        ...(await claim(byTarget("converting"), "converting")),
        ...(await claim(byTarget("inferring"), "inferring")),
      ]);
      const mine = plans.filter((p) => got.has(p.doc.id));
      if (mine.length === 0) return mine;
      const wholeIds = mine.filter((p) => p.mode === "document").map((p) => p.doc.id);
      const pageIds = mine.filter((p) => p.mode === "pages").map((p) => p.doc.id);
      // A whole document is rendered again from scratch; a page with its PNG in place only needs inference.
      if (wholeIds.length > 0) {
        await tx.$executeRaw`
          UPDATE "Page" SET state = 'pending', "failureCode" = NULL, "failureReason" = NULL, "updatedAt" = now()
          WHERE "documentId" = ANY(${wholeIds}::uuid[]) AND state = 'failed'`;
      }
      if (pageIds.length > 0) {
        await tx.$executeRaw`
          UPDATE "Page" SET state = CASE WHEN "imageKey" IS NULL THEN 'pending'::"PageState" ELSE 'rendered'::"PageState" END,
                 "failureCode" = NULL, "failureReason" = NULL, "updatedAt" = now()
          WHERE "documentId" = ANY(${pageIds}::uuid[]) AND state = 'failed'`;
      }
      await tx.batch.updateMany({ where: { id: batchId, state: "completed" }, data: { state: "processing", completedAt: null } });
      const events: Prisma.AuditEventCreateManyInput[] = [];
      for (const p of mine) {
        const retry = (retriesOf.get(p.doc.id) ?? 0) + 1;
        const previousFailure = { code: p.doc.failureCode, reason: p.doc.failureReason };
        const base = { batchId, documentId: p.doc.id, outcome: "replayed" as const, workerId: deps.workerId };
        if (p.mode === "document") {
          events.push({ ...base, stage: "ingestion", details: { event: "retry_failed", retry, resentTo: "ingest", previousFailure } });
          continue;
        }
        const pageNumbers = [...p.convert, ...p.infer].map((x) => x.pageNumber).sort((a, b) => a - b);
        events.push({ ...base, stage: "ingestion", details: { event: "retry_failed", retry, resentTo: "pages", pages: pageNumbers, previousFailure } });
        for (const x of p.convert) {
          events.push({ ...base, stage: "convert", pageNumber: x.pageNumber,
            details: { event: "retry_failed", retry, resentTo: "single-page", previousFailure: { code: x.failureCode, reason: x.failureReason } } });
        }
        for (const x of p.infer) {
          events.push({ ...base, stage: "inference", pageNumber: x.pageNumber,
            details: { event: "retry_failed", retry, resentTo: "converted-image", previousFailure: { code: x.failureCode, reason: x.failureReason } } });
        }
      }
      await tx.auditEvent.createMany({ data: events });
      return mine;
    });
    if (claimed.length === 0) continue;
    batchEvent = true;

    const whole = claimed.filter((p) => p.mode === "document");
    const pages = claimed.flatMap((p) => (p.mode === "pages" ? [p] : []));
    try {
      await ingest.send(whole.map((p) => ({ version: 1, batchId, documentId: p.doc.id, bucket: p.doc.bucket, key: p.doc.key })));
      const convert = pages.flatMap((p) => p.convert);
      if (convert.length > 0) {
        await singlePage!.send(
          convert.map((x) => ({ version: 1, batchId, documentId: x.documentId, bucket: x.pdfBucket, key: x.pdfKey, pageNumber: x.pageNumber })),
        );
      }
      await sendImageEvents(pages.flatMap((p) => p.infer));
    } catch (e) {
      // Claimed but never sent, a document would wait forever: give it back its failure.
      logger.error({ err: coerceError(e), batchId, documents: claimed.length }, "retry messages not sent; documents stay failed");
      await unclaim(claimed);
      throw new RetryError("the queue did not take the retry messages; the documents are still failed, try again", result, { cause: e });
    }

    for (const p of claimed) {
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
