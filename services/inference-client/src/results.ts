import { Prisma } from "@docpipe/db";
import { NOW, pageDoneReturning, pageDoneWrites, type UnitStatement } from "@docpipe/queue";
import type { ModelResponse } from "./model/invoker.js";

export interface PageRef {
  id: string;
  batchId: string;
  documentId: string;
  pageNumber: number;
}

/**
 * A page's result stored exactly once, the page done and its document with it when that was
 * the last page (see `pageDoneWrites`), with the stage's outcome record: one statement.
 * The result is inserted with ON CONFLICT DO NOTHING on the unique `pageId`, so a duplicate
 * delivery (or two workers racing on one page) adds nothing, and records `skipped`. The
 * statement returns a `PageDoneRow`: the document's new state when it changed, and more.
 */
export function scoredWrites(page: PageRef, response: ModelResponse, latencyMs: number): UnitStatement {
  return {
    with: Prisma.sql`
      result AS (
        INSERT INTO "InferenceResult" ("id", "pageId", "documentId", "pageNumber", "modelName", "modelVersion", "output", "features", "latencyMs", "createdAt")
        VALUES (gen_random_uuid(), ${page.id}::uuid, ${page.documentId}::uuid, ${page.pageNumber}, ${response.model.name}, ${response.model.version},
                ${JSON.stringify(response.output)}::jsonb, ${response.features}::text[], ${latencyMs}, ${NOW})
        ON CONFLICT ("pageId") DO NOTHING
        RETURNING 1
      ),
      ${pageDoneWrites(page)}`,
    skippedWhen: { condition: Prisma.sql`NOT EXISTS (SELECT 1 FROM result)`, details: { reason: "result_exists" } },
    returning: pageDoneReturning,
  };
}
