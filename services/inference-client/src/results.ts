import type { Prisma, PrismaClient } from "@docpipe/db";
import { completeDocumentIfFinished } from "@docpipe/queue";
import type { ModelResponse } from "./model/invoker.js";

export interface PageRef {
  id: string;
  batchId: string;
  documentId: string;
  pageNumber: number;
}

export interface StoreOutcome {
  /** False when the page already had a result (a duplicate delivery): nothing was added. */
  created: boolean;
  /** True when this call moved the document to done. */
  documentDone: boolean;
}

/** Document states a result may move to `inferring` (never back from done or failed). */
const BEFORE_INFERRING = ["queued", "classified", "splitting", "converting"] as const;

/**
 * Stores a page's result exactly once and moves page and document forward.
 *
 * - The result is inserted with `skipDuplicates` on the unique `pageId`, so a duplicate
 *   delivery (or two workers racing on one page) adds nothing.
 * - The page goes to `done`: a page with a result is done, whatever it was before.
 * - The document is done when all its pages are; see {@link finishPage}.
 */
export async function storeResult(
  prisma: PrismaClient,
  page: PageRef,
  response: ModelResponse,
  latencyMs: number,
  /** The stage's `succeeded` audit row, stored in the same transaction as the result it reports. */
  succeeded?: Prisma.AuditEventUncheckedCreateInput,
): Promise<StoreOutcome> {
  const count = await prisma.$transaction(async (tx) => {
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
    if (count === 1 && succeeded) await tx.auditEvent.create({ data: succeeded });
    return count;
  });
  return { created: count === 1, documentDone: await finishPage(prisma, page) };
}

/**
 * Marks a page that has its result done, then the document done if that was its last page
 * (one conditional UPDATE shared with the other stages, which also settles the batch), or
 * `inferring` otherwise. Idempotent: a duplicate delivery calls it again harmlessly. Returns
 * whether this call finished the document.
 */
export async function finishPage(prisma: PrismaClient, page: PageRef): Promise<boolean> {
  await prisma.page.updateMany({ where: { id: page.id, state: { not: "done" } }, data: { state: "done" } });
  const doc = { batchId: page.batchId, documentId: page.documentId };
  if (await completeDocumentIfFinished(prisma, doc)) return true;
  await prisma.document.updateMany({
    where: { id: page.documentId, state: { in: [...BEFORE_INFERRING] } },
    data: { state: "inferring" },
  });
  return false;
}
