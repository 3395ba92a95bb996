import type { PrismaClient } from "@docpipe/db";
import { isWorkKey } from "@docpipe/queue";

export interface FailedDoc {
  id: string;
  bucket: string;
  key: string;
  class: string | null;
  pageCount: number | null;
  pages: bigint;
  failureCode: string | null;
  failureReason: string | null;
}

export interface FailedPage {
  documentId: string;
  pageNumber: number;
  pdfKey: string | null;
  imageKey: string | null;
  failureCode: string | null;
  failureReason: string | null;
}

/** How one failed document is re-run: from the start, or only its failed pages (to render, or only to score). */
export type Plan =
  | { doc: FailedDoc; mode: "document" }
  | { doc: FailedDoc; mode: "pages"; convert: (FailedPage & { pdfBucket: string; pdfKey: string })[]; infer: (FailedPage & { imageKey: string })[] };

/** A chunk of a batch's failed documents, with what is needed to plan their retry. */
export interface FailedChunk {
  docs: FailedDoc[];
  pagesOf: Map<string, FailedPage[]>;
  /** Earlier retry-failed runs per document, so each retry is numbered. */
  retriesOf: Map<string, number>;
}

/** Up to `limit` failed documents of the batch after `cursor` (by id), their failed pages and earlier retries. */
export async function loadFailed(prisma: PrismaClient, batchId: string, cursor: string, limit: number): Promise<FailedChunk> {
  const docs = await prisma.$queryRaw<FailedDoc[]>`
    SELECT d.id, d.bucket, d.key, d.class::text AS class, d."pageCount", d."failureCode", d."failureReason",
           (SELECT count(*) FROM "Page" p WHERE p."documentId" = d.id) AS pages
    FROM "Document" d
    WHERE d."batchId" = ${batchId}::uuid AND d.state = 'failed' AND d.id > ${cursor}::uuid
    ORDER BY d.id LIMIT ${limit}`;
  if (docs.length === 0) return { docs, pagesOf: new Map(), retriesOf: new Map() };
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
  return { docs, pagesOf, retriesOf: new Map(previous.map((r) => [r.documentId, Number(r.retries)])) };
}

/** What a plan may use: the work bucket and which page queues there are. */
export interface PlanContext {
  batchId: string;
  /** Bucket of split pages and PNGs; without it failed pages are retried by re-running their whole document. */
  workBucket: string | undefined;
  canSendPages: boolean;
  canSendImages: boolean;
}

/**
 * Re-sends only a document's failed pages when every page of it exists and each failed one
 * has its single-page PDF (to render again) or its PNG (to score again); otherwise the whole
 * document is re-run. A document failed early may lack pages that were never split (a
 * splitter skips the chunks of a failed document): re-sending its failed pages alone would
 * leave it waiting forever.
 */
export function planRetry(doc: FailedDoc, failedPages: FailedPage[], ctx: PlanContext): Plan {
  const whole = { doc, mode: "document" as const };
  if (failedPages.length === 0 || doc.pageCount === null || Number(doc.pages) !== doc.pageCount || !ctx.workBucket) return whole;
  const convert: Extract<Plan, { mode: "pages" }>["convert"] = [];
  const infer: Extract<Plan, { mode: "pages" }>["infer"] = [];
  for (const p of failedPages) {
    if (p.imageKey) infer.push({ ...p, imageKey: p.imageKey });
    else if (p.pdfKey) {
      // A single-page document's page is the source object itself; split pages are in the work bucket.
      const pdfBucket = isWorkKey({ batchId: ctx.batchId, documentId: doc.id }, p.pdfKey) ? ctx.workBucket : doc.bucket;
      convert.push({ ...p, pdfKey: p.pdfKey, pdfBucket });
    } else return whole;
  }
  if ((convert.length > 0 && !ctx.canSendPages) || (infer.length > 0 && !ctx.canSendImages)) return whole;
  return { doc, mode: "pages", convert, infer };
}
