import type { PrismaClient } from "@docpipe/db";

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
  if (count > 0) await settleBatch(prisma, doc.batchId);
  return count > 0;
}

/**
 * Marks a document done once every one of its pages has a result, or has failed on its own
 * (a broken page fails alone while its siblings are done). Idempotent and safe to call from
 * concurrent workers: one conditional UPDATE decides. Returns whether it changed.
 */
export async function completeDocumentIfFinished(
  prisma: PrismaClient,
  doc: { batchId: string; documentId: string },
): Promise<boolean> {
  const changed = await prisma.$executeRaw`
    UPDATE "Document" d SET state = 'done', "completedAt" = now(), "updatedAt" = now()
    WHERE d.id = ${doc.documentId}::uuid
      AND d.state NOT IN ('done', 'failed')
      AND d."pageCount" IS NOT NULL
      AND (SELECT count(*) FROM "Page" p WHERE p."documentId" = d.id AND p.state IN ('done', 'failed')) >= d."pageCount"`;
  if (changed > 0) await settleBatch(prisma, doc.batchId);
  return changed > 0;
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
