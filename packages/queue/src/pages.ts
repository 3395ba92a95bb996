import type { Prisma, PrismaClient } from "@docpipe/db";
import type { DocumentRef } from "./keys.js";

/**
 * The rows a page gets as it moves through the pipeline, written by the small splitter, the
 * page converter and the failsafe alike, so a page the failsafe made cannot be told from one
 * the normal path made.
 */

/** As the small splitter: the page row exists with its PDF before anything renders it. */
export async function recordPageSplit(prisma: PrismaClient, doc: DocumentRef, pageNumber: number, pdfKey: string): Promise<void> {
  await prisma.page.upsert({
    where: { documentId_pageNumber: { documentId: doc.documentId, pageNumber } },
    create: { documentId: doc.documentId, pageNumber, pdfKey },
    update: { pdfKey },
  });
}

export interface RenderedFacts {
  imageKey: string;
  width: number;
  height: number;
  /** Rounded: a page over the pixel cap renders at a fractional DPI. */
  dpi: number;
  renderMs: number;
}

/**
 * As the page converter, after the PNG is in S3: the page is rendered (forward only) and its
 * document converting. Run it in the transaction that stores the stage's outcome
 * (`StageScope.commit`), so a crash cannot leave a rendered page whose trail lacks the stage.
 */
export async function recordPageRendered(
  tx: Prisma.TransactionClient,
  doc: DocumentRef,
  pageNumber: number,
  pdfKey: string,
  facts: RenderedFacts,
): Promise<void> {
  await tx.page.upsert({
    where: { documentId_pageNumber: { documentId: doc.documentId, pageNumber } },
    create: { documentId: doc.documentId, pageNumber, pdfKey, state: "rendered", ...facts },
    update: { ...facts, failureCode: null, failureReason: null },
  });
  // Inference may already have marked the page done (it reacts to the upload).
  await tx.page.updateMany({
    where: { documentId: doc.documentId, pageNumber, state: { in: ["pending", "failed"] } },
    data: { state: "rendered" },
  });
  await tx.document.updateMany({
    where: { id: doc.documentId, state: { in: ["queued", "classified", "splitting"] } },
    data: { state: "converting" },
  });
}

/** A page no path can render: failed with the reason, unless it already got further. */
export async function recordPageFailed(
  prisma: PrismaClient | Prisma.TransactionClient,
  doc: DocumentRef,
  pageNumber: number,
  failure: { code: string; reason: string; pdfKey?: string },
): Promise<void> {
  await prisma.page.upsert({
    where: { documentId_pageNumber: { documentId: doc.documentId, pageNumber } },
    create: {
      documentId: doc.documentId,
      pageNumber,
      state: "failed",
      failureCode: failure.code,
      failureReason: failure.reason,
      ...(failure.pdfKey !== undefined && { pdfKey: failure.pdfKey }),
    },
    update: {},
  });
  await prisma.page.updateMany({
    where: { documentId: doc.documentId, pageNumber, state: { in: ["pending", "failed"] } },
    data: { state: "failed", failureCode: failure.code, failureReason: failure.reason },
  });
}
