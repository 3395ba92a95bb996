import { Prisma } from "@docpipe/db";
import { NOW, pageDoneReturning, pageDoneWrites, type UnitStatement } from "@docpipe/queue";
import type { ModelResponse } from "./model/invoker.js";

export interface PageRef {
  batchId: string;
  documentId: string;
  pageNumber: number;
}

/**
 * A page's result stored exactly once, the page done and its document with it when that was
 * the last page (see `pageDoneWrites`), with the stage's outcome record: one statement.
 * The result is inserted with ON CONFLICT DO NOTHING on the unique `pageId`, so a duplicate
 * delivery (or two workers racing on one page) adds nothing, and records `skipped`. The page is
 * found by its document and number in the statement itself (no look of its own): when it has no
 * row, its result gets no `pageId` and the whole statement fails with a NOT NULL violation,
 * writing nothing. The statement returns a `PageDoneRow`: the document's new state when it
 * changed, and more.
 */
export function scoredWrites(page: PageRef, response: ModelResponse, latencyMs: number): UnitStatement {
  return {
    with: Prisma.sql`
      ${pageDoneWrites(page)},
      result AS (
        INSERT INTO "InferenceResult" ("id", "pageId", "documentId", "pageNumber", "modelName", "modelVersion", "output", "features", "latencyMs", "createdAt")
        VALUES (gen_random_uuid(), (SELECT "id" FROM page_locked), ${page.documentId}::uuid, ${page.pageNumber}, ${response.model.name}, ${response.model.version},
                ${JSON.stringify(response.output)}::jsonb, ${response.features}::text[], ${latencyMs}, ${NOW})
        ON CONFLICT ("pageId") DO NOTHING
        RETURNING 1
      )`,
    skippedWhen: { condition: Prisma.sql`NOT EXISTS (SELECT 1 FROM result)`, details: { reason: "result_exists" } },
    returning: pageDoneReturning,
  };
}
