import type { PageState, PrismaClient } from "@docpipe/db";
import { endWaitingDuplicates, waitersEnd } from "./duplicates.js";

const TERMINAL = ["done", "failed"] as const;

/**
 * Ends a document as failed with a reason a person can act on. Never overwrites a terminal
 * state, so a late duplicate cannot undo a finished document. Returns whether it changed.
 */
export async function failDocument(
  prisma: PrismaClient,
  doc: { batchId: string; documentId: string },
  failure: { code: string; reason: string },
): Promise<boolean> {
  const { count } = await prisma.document.updateMany({
    where: { id: doc.documentId, state: { notIn: [...TERMINAL] } },
    data: { state: "failed", failureCode: failure.code, failureReason: failure.reason, completedAt: new Date() },
  });
  if (count > 0) {
    await settleBatch(prisma, doc.batchId);
    // Failures are few: the documents waiting for this content are ended in a statement of their own.
    await endWaitingDuplicates(prisma, doc.documentId);
  }
  return count > 0;
}

/**
 * Ends a document once every one of its pages has a result or has failed on its own: `done`
 * when none failed, else `failed` with the first page failure recorded on it (see
 * failPage). A broken page thus fails alone while its siblings are still rendered and
 * scored, and the document (and its batch) ends only when the last of them has. Idempotent
 * and safe to call from concurrent workers: one conditional UPDATE decides. Returns whether
 * it changed.
 */
export async function completeDocumentIfFinished(
  prisma: PrismaClient,
  doc: { batchId: string; documentId: string },
): Promise<boolean> {
  // One statement ends the document and the documents of skipAlreadyProcessed batches that wait for its content (see duplicates.ts).
  const [row] = await prisma.$queryRaw<{ changed: number; waiting: string[] }[]>`
    WITH ended AS (
      UPDATE "Document" d
      SET state = CASE WHEN EXISTS (SELECT 1 FROM "Page" f WHERE f."documentId" = d.id AND f.state = 'failed')
                       THEN 'failed'::"DocumentState" ELSE 'done'::"DocumentState" END,
          "completedAt" = now(), "updatedAt" = now()
      WHERE d.id = ${doc.documentId}::uuid
        AND d.state NOT IN ('done', 'failed')
        AND d."pageCount" IS NOT NULL
        AND (SELECT count(*) FROM "Page" p WHERE p."documentId" = d.id AND p.state IN ('done', 'failed')) >= d."pageCount"
      RETURNING d.id, d.state, d."failureCode", d."failureReason"
    ), waiting AS (${waitersEnd("ended")})
    SELECT (SELECT count(*) FROM ended)::int AS changed, ARRAY(SELECT DISTINCT "batchId"::text FROM waiting) AS waiting`;
  const changed = row?.changed ?? 0;
  if (changed > 0) await settleBatch(prisma, doc.batchId);
  for (const batchId of row?.waiting ?? []) await settleBatch(prisma, batchId);
  return changed > 0;
}

/**
 * Fails one page with its reason and notes the failure on its document (the first one wins),
 * without ending the document: its other pages go on, and completeDocumentIfFinished ends it
 * as failed once they have all finished. A page already past `failFrom` is left as it is.
 */
export async function failPage(
  prisma: PrismaClient,
  page: { batchId: string; documentId: string; pageNumber: number },
  failure: { pageCode: string; pageReason: string; documentCode: string; documentReason: string; failFrom: readonly PageState[] },
): Promise<void> {
  const { count } = await prisma.page.updateMany({
    where: { documentId: page.documentId, pageNumber: page.pageNumber, state: { in: [...failure.failFrom] } },
    data: { state: "failed", failureCode: failure.pageCode, failureReason: failure.pageReason },
  });
  if (count === 0) return;
  await noteDocumentFailure(prisma, page, { code: failure.documentCode, reason: failure.documentReason });
}

/**
 * Records why an unfinished document will end failed (the first reason wins) and ends it if
 * its pages have all finished; otherwise completeDocumentIfFinished ends it when they have.
 */
export async function noteDocumentFailure(
  prisma: PrismaClient,
  doc: { batchId: string; documentId: string },
  failure: { code: string; reason: string },
): Promise<void> {
  await prisma.document.updateMany({
    where: { id: doc.documentId, state: { notIn: [...TERMINAL] }, failureCode: null },
    data: { failureCode: failure.code, failureReason: failure.reason },
  });
  await completeDocumentIfFinished(prisma, doc);
}

/**
 * Completes a batch whose listing has finished and whose documents are all done or failed.
 * One conditional UPDATE, so the last document and the end of the listing may race freely.
 */
export async function settleBatch(prisma: PrismaClient, batchId: string): Promise<boolean> {
  const { count } = await prisma.batch.updateMany({
    where: { id: batchId, state: "processing", documents: { none: { state: { notIn: [...TERMINAL] } } } },
    data: { state: "completed", completedAt: new Date() },
  });
  return count > 0;
}
