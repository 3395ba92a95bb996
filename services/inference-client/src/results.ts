import type { Prisma, PrismaClient } from "@docpipe/db";
import { completeDocumentIfFinished } from "@docpipe/queue";
import type { ModelResponse } from "./model/invoker.js";

export interface PageRef {
  id: string;
  batchId: string;
  documentId: string;
  pageNumber: number;
}

/** Document states a result may move to `inferring` (never back from done or failed). */
const BEFORE_INFERRING = ["queued", "classified", "splitting", "converting"] as const;

/**
 * Stores a page's result exactly once: inserted with `skipDuplicates` on the unique `pageId`,
 * so a duplicate delivery (or two workers racing on one page) adds nothing. Returns whether
 * this call added it. Run it in the transaction that records the stage's outcome.
 */
export async function insertResult(
  tx: Prisma.TransactionClient,
  page: PageRef,
  response: ModelResponse,
  latencyMs: number,
): Promise<boolean> {
  const { count } = await tx.inferenceResult.createMany({
    data: [
      {
        pageId: page.id,
        documentId: page.documentId,
        pageNumber: page.pageNumber,
        modelName: response.model.name,
        modelVersion: response.model.version,
        output: response.output as Prisma.InputJsonValue,
        features: response.features,
        latencyMs,
      },
    ],
    skipDuplicates: true,
  });
  return count === 1;
}

/**
 * A page with its result is done. Run it in the transaction that inserts the result: `done` on
 * the page's own row is what a second delivery's claim sees as the stage's completion record.
 */
export async function markPageDone(db: PrismaClient | Prisma.TransactionClient, page: PageRef): Promise<void> {
  await db.page.updateMany({ where: { id: page.id, state: { not: "done" } }, data: { state: "done" } });
}

/**
 * Marks a page that has its result done (a delivery that finds the result there catches the
 * page up), then {@link finishDocument}. Idempotent: a duplicate delivery calls it again harmlessly.
 */
export async function finishPage(prisma: PrismaClient, page: PageRef): Promise<boolean> {
  await markPageDone(prisma, page);
  return finishDocument(prisma, page);
}

/**
 * Ends the document done if that was its last page (one conditional UPDATE shared with the
 * other stages, which also settles the batch), or moves it to `inferring` otherwise. Returns
 * whether this call finished the document.
 */
export async function finishDocument(prisma: PrismaClient, page: PageRef): Promise<boolean> {
  const doc = { batchId: page.batchId, documentId: page.documentId };
  if (await completeDocumentIfFinished(prisma, doc)) return true;
  await prisma.document.updateMany({
    where: { id: page.documentId, state: { in: [...BEFORE_INFERRING] } },
    data: { state: "inferring" },
  });
  return false;
}
