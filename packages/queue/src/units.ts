import { Prisma, type PrismaClient } from "@docpipe/db";
import type { DocumentRef } from "./keys.js";
import { NOW } from "./sql.js";

/**
 * Completion records: a unit of work says it is finished on its own row, written with the
 * stage's outcome record, so a duplicate delivery is told by the unit (not by each stage's
 * look at what it wrote) and the reconciler can tell a unit that still waits for its message.
 * - the large splitter's document: `Document.splitAt`, once every chunk is written and sent;
 * - the small splitter's range (a chunk of a large document, or a whole small document):
 *   `Chunk.splitAt`, once every page is written and sent.
 * The converter's and inference's are the page's own `imageKey`/`state` and its result.
 */

/** The large splitter finished the document: every chunk is written and its message sent. Parts of one statement. */
export function documentSplitWrites(doc: DocumentRef): Prisma.Sql {
  return Prisma.sql`document_split AS (UPDATE "Document" SET "splitAt" = ${NOW}, "updatedAt" = ${NOW} WHERE id = ${doc.documentId}::uuid)`;
}

/** {@link documentSplitWrites} in a transaction of the caller's. */
export async function recordDocumentSplit(tx: Prisma.TransactionClient, doc: DocumentRef): Promise<void> {
  await tx.$executeRaw`WITH ${documentSplitWrites(doc)} SELECT 1`;
}

/**
 * The small splitter finished pages `firstPage..lastPage` of the document (in `key`: a chunk, or
 * the small document itself): every page is written and its message sent. Parts of one
 * statement: the range's chunk row (made here for a small document, which has no other) gets
 * `splitAt`, and the document moves on to `converting`, never backwards.
 */
export function rangeSplitWrites(doc: DocumentRef, range: { firstPage: number; lastPage: number; key: string }): Prisma.Sql {
  return Prisma.sql`
    range_split AS (
      INSERT INTO "Chunk" ("id", "documentId", "firstPage", "lastPage", "key", "createdAt", "updatedAt", "splitAt")
      VALUES (gen_random_uuid(), ${doc.documentId}::uuid, ${range.firstPage}, ${range.lastPage}, ${range.key}, ${NOW}, ${NOW}, ${NOW})
      ON CONFLICT ("documentId", "firstPage") DO UPDATE SET "splitAt" = EXCLUDED."splitAt", "updatedAt" = EXCLUDED."updatedAt"
    ),
    range_document AS (
      UPDATE "Document" SET state = 'converting', "updatedAt" = ${NOW}
      WHERE id = ${doc.documentId}::uuid AND state IN ('queued', 'classified', 'splitting')
    )`;
}

/** {@link rangeSplitWrites} in a transaction of the caller's. */
export async function recordRangeSplit(
  tx: Prisma.TransactionClient,
  doc: DocumentRef,
  range: { firstPage: number; lastPage: number; key: string },
): Promise<void> {
  await tx.$executeRaw`WITH ${rangeSplitWrites(doc, range)} SELECT 1`;
}

/** The large splitter's chunks (before their messages are sent): their rows, one statement for a group. */
export async function recordChunks(
  prisma: PrismaClient,
  doc: DocumentRef,
  chunks: readonly { firstPage: number; lastPage: number; key: string }[],
): Promise<void> {
  if (chunks.length === 0) return;
  await prisma.$executeRaw`
    INSERT INTO "Chunk" ("id", "documentId", "firstPage", "lastPage", "key", "createdAt", "updatedAt")
    SELECT gen_random_uuid(), ${doc.documentId}::uuid, t.first, t.last, t.key, ${NOW}, ${NOW}
    FROM unnest(${chunks.map((c) => c.firstPage)}::int[], ${chunks.map((c) => c.lastPage)}::int[], ${chunks.map((c) => c.key)}::text[]) AS t(first, last, key)
    ON CONFLICT ("documentId", "firstPage") DO UPDATE SET "lastPage" = EXCLUDED."lastPage", "key" = EXCLUDED."key", "updatedAt" = EXCLUDED."updatedAt"`;
}
