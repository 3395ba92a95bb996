import type { Prisma, PrismaClient } from "@docpipe/db";
import type { ModelResponse } from "./model/invoker.js";

export interface PageRef {
  id: string;
  documentId: string;
  pageNumber: number;
}

export interface StoreOutcome {
  /** False when the page already had a result (a duplicate delivery): nothing was added. */
  created: boolean;
  /** True when this call moved the document to done. */
  documentDone: boolean;
  resultCount: number;
  pageCount: number | null;
}

/** Document states a result may move to `inferring` (never back from done or failed). */
const BEFORE_INFERRING = ["queued", "classified", "splitting", "converting"] as const;

/**
 * Stores a page's result exactly once and moves page and document forward.
 *
 * - The result is inserted with `skipDuplicates` on the unique `pageId`, so a duplicate
 *   delivery (or two workers racing on one page) adds nothing.
 * - The page goes to `done` unconditionally: a rendered or even failed-then-replayed page that
 *   has a result is done.
 * - The document is done when it has `pageCount` results; the update is conditional on a
 *   non-terminal state, so it happens once however many workers finish the last pages together.
 */
export async function storeResult(
  prisma: PrismaClient,
  page: PageRef,
  response: ModelResponse,
  latencyMs: number,
): Promise<StoreOutcome> {
  const { count } = await prisma.inferenceResult.createMany({
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
  await prisma.page.updateMany({ where: { id: page.id, state: { not: "done" } }, data: { state: "done" } });
  return { created: count === 1, ...(await completeDocument(prisma, page.documentId)) };
}

/** Marks the document done if every page has a result; otherwise moves it to `inferring`. Idempotent. */
export async function completeDocument(
  prisma: PrismaClient,
  documentId: string,
): Promise<{ documentDone: boolean; resultCount: number; pageCount: number | null }> {
  const [doc, resultCount] = await Promise.all([
    prisma.document.findUnique({ where: { id: documentId }, select: { pageCount: true } }),
    prisma.inferenceResult.count({ where: { documentId } }),
  ]);
  const pageCount = doc?.pageCount ?? null;
  if (pageCount !== null && resultCount >= pageCount) {
    const { count } = await prisma.document.updateMany({
      where: { id: documentId, state: { notIn: ["done", "failed"] } },
      data: { state: "done", completedAt: new Date() },
    });
    return { documentDone: count === 1, resultCount, pageCount };
  }
  await prisma.document.updateMany({ where: { id: documentId, state: { in: [...BEFORE_INFERRING] } }, data: { state: "inferring" } });
  return { documentDone: false, resultCount, pageCount };
}
