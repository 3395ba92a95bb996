import { Prisma } from "@docpipe/db";
import type { DocumentRef } from "./keys.js";

/**
 * Completion records: a unit of work says it is finished on its own row, written with the
 * stage's outcome record, so a duplicate delivery is told by the unit (not by each stage's
 * look at what it wrote) and the reconciler can tell a unit that still waits for its message.
 * - the large splitter's document: `Document.splitAt`, once every chunk is written and sent;
 * - the small splitter's range (a chunk of a large document, or a whole small document):
 *   `Chunk.splitAt`, once every page is written and sent.
 * The converter's and inference's are the page's own `imageKey`/`state` and its result.
 */

const NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;

/** The large splitter finished the document: every chunk is written and its message sent. */
export async function recordDocumentSplit(tx: Prisma.TransactionClient, doc: DocumentRef): Promise<void> {
  await tx.$executeRaw`UPDATE "Document" SET "splitAt" = ${NOW}, "updatedAt" = ${NOW} WHERE id = ${doc.documentId}::uuid`;
}

/**
 * The small splitter finished pages `firstPage..lastPage` of the document (in `key`: a chunk, or
 * the small document itself): every page is written and its message sent. One statement: the
 * range's chunk row (made here for a small document, which has no other) gets `splitAt`, and the
 * document moves on to `converting`, never backwards.
 */
export async function recordRangeSplit(
  tx: Prisma.TransactionClient,
  doc: DocumentRef,
  range: { firstPage: number; lastPage: number; key: string },
): Promise<void> {
  await tx.$executeRaw`
    WITH chunk AS (
      INSERT INTO "Chunk" ("id", "documentId", "firstPage", "lastPage", "key", "createdAt", "updatedAt", "splitAt")
      VALUES (gen_random_uuid(), ${doc.documentId}::uuid, ${range.firstPage}, ${range.lastPage}, ${range.key}, ${NOW}, ${NOW}, ${NOW})
      ON CONFLICT ("documentId", "firstPage") DO UPDATE SET "splitAt" = EXCLUDED."splitAt", "updatedAt" = EXCLUDED."updatedAt"
    )
    UPDATE "Document" SET state = 'converting', "updatedAt" = ${NOW}
    WHERE id = ${doc.documentId}::uuid AND state IN ('queued', 'classified', 'splitting')`;
}
