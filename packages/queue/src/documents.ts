import { Prisma, type PageState, type PrismaClient } from "@docpipe/db";
import { endWaitingDuplicates, waitersEnd } from "./duplicates.js";
import { NOW } from "./sql.js";

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
 * when none failed, else `failed` with the first page failure recorded on it (see failPage). A
 * broken page thus fails alone while its siblings are still rendered and scored, and the
 * document (and its batch) ends only when the last of them has. One conditional UPDATE on the
 * document's own counts of finished and failed pages (a trigger keeps them, with each page's
 * change), so it costs the same for a page of ten or of ten thousand, and concurrent workers
 * may all call it: the row lock orders them. Returns whether it ended the document.
 */
export async function completeDocumentIfFinished(
  prisma: PrismaClient,
  doc: { batchId: string; documentId: string },
): Promise<boolean> {
  // One statement ends the document and the documents of skipAlreadyProcessed batches that wait for its content (see duplicates.ts).
  const [row] = await prisma.$queryRaw<{ changed: number; waiting: string[] }[]>`
    WITH ended AS (
      UPDATE "Document"
      SET "state" = CASE WHEN "pagesFailed" > 0 THEN 'failed'::"DocumentState" ELSE 'done'::"DocumentState" END,
          "completedAt" = ${NOW}, "updatedAt" = ${NOW}
      WHERE "id" = ${doc.documentId}::uuid AND "state" NOT IN ('done', 'failed')
        AND "pageCount" IS NOT NULL AND "pagesFinished" >= "pageCount"
      RETURNING "id", "state", "failureCode", "failureReason"
    ), waiting AS (${waitersEnd("ended")})
    SELECT (SELECT count(*) FROM ended)::int AS changed, ARRAY(SELECT DISTINCT "batchId"::text FROM waiting) AS waiting`;
  const changed = row?.changed ?? 0;
  if (changed > 0) await settleBatch(prisma, doc.batchId);
  for (const batchId of row?.waiting ?? []) await settleBatch(prisma, batchId);
  return changed > 0;
}

/**
 * A page with its result is done, and its document with it when that was its last page (done,
 * or failed if any page failed), else `inferring`: the parts of one statement, whose
 * `document_after` part returns the document's new state when it changed (then call
 * {@link settleBatchIfEnded}). Exact under concurrent pages of one document: the page's row is
 * locked, then the document's, so its counts of finished and failed pages (which the Page
 * trigger moves, under the same lock, at the end of each statement) are read after every
 * earlier page's statement has committed.
 */
export function pageDoneWrites(page: { documentId: string } & ({ id: string } | { pageNumber: number })): Prisma.Sql {
  const which = "id" in page ? Prisma.sql`"id" = ${page.id}::uuid` : Prisma.sql`"documentId" = ${page.documentId}::uuid AND "pageNumber" = ${page.pageNumber}`;
  return Prisma.sql`
    page_locked AS (
      SELECT "id", "state" FROM "Page" WHERE ${which} FOR NO KEY UPDATE
    ),
    document_locked AS (
      SELECT d."id", d."state",
             d."pageCount" IS NOT NULL AND d."pagesFinished" + (SELECT CASE WHEN p."state" IN ('done', 'failed') THEN 0 ELSE 1 END FROM page_locked p) >= d."pageCount" AS last,
             d."pagesFailed" - (SELECT CASE WHEN p."state" = 'failed' THEN 1 ELSE 0 END FROM page_locked p) AS failed
      FROM "Document" d WHERE d."id" = ${page.documentId}::uuid AND EXISTS (SELECT 1 FROM page_locked) FOR NO KEY UPDATE
    ),
    page_done AS (
      -- A done page is nobody's to hold: its claim goes with it (a successful one-statement commit
      -- leaves its lease to expire, and one held by inference would make a convert redelivery for
      -- a page scored before its converter wrote the row skip it, leaving it done without its image).
      UPDATE "Page" p SET "state" = 'done', "leaseUntil" = NULL, "updatedAt" = ${NOW} FROM page_locked l WHERE p."id" = l."id" AND l."state" <> 'done'
    ),
    document_after AS (
      UPDATE "Document" d
      SET "state" = CASE WHEN NOT l.last THEN 'inferring'::"DocumentState" WHEN l.failed > 0 THEN 'failed'::"DocumentState" ELSE 'done'::"DocumentState" END,
          "completedAt" = CASE WHEN l.last THEN ${NOW} ELSE d."completedAt" END,
          "updatedAt" = ${NOW}
      FROM document_locked l
      WHERE d."id" = l."id" AND l."state" NOT IN ('done', 'failed') AND (l.last OR l."state" IN ('queued', 'classified', 'splitting', 'converting'))
      RETURNING d."id", d."state", d."failureCode", d."failureReason"
    ),
    document_waiters AS (${waitersEnd(`(SELECT * FROM document_after WHERE "state" IN ('done', 'failed'))`)})`;
}

/** What a statement with {@link pageDoneWrites} returns: the document's new state when it changed, and the batches of the documents that waited for it. */
export interface PageDoneRow {
  documentState: string | null;
  waitingBatches: string[];
}

/** The select list of a statement with {@link pageDoneWrites}: a {@link PageDoneRow}. */
export const pageDoneReturning = Prisma.sql`(SELECT "state"::text FROM document_after) AS "documentState",
  ARRAY(SELECT DISTINCT "batchId"::text FROM document_waiters) AS "waitingBatches"`;

/** {@link pageDoneWrites} alone (a duplicate delivery of a page that has its result); settles the batch when the document ended. */
export async function finishPage(prisma: PrismaClient, page: { id: string; batchId: string; documentId: string }): Promise<boolean> {
  const [row] = await prisma.$queryRaw<PageDoneRow[]>`WITH ${pageDoneWrites(page)} SELECT ${pageDoneReturning}`;
  return settleBatchIfEnded(prisma, page.batchId, row);
}

/** After a statement with {@link pageDoneWrites}: settles the batch if the document ended (and those of the documents that waited for it). Returns whether it ended. */
export async function settleBatchIfEnded(prisma: PrismaClient, batchId: string, row: PageDoneRow | undefined): Promise<boolean> {
  if (row?.documentState !== "done" && row?.documentState !== "failed") return false;
  await settleBatch(prisma, batchId);
  for (const waiting of row.waitingBatches) await settleBatch(prisma, waiting);
  return true;
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
  // Also on a document already failed without a reason: a sibling's last page may have ended it
  // (its counts include this page's failure) between the page's update and this one.
  await prisma.document.updateMany({
    where: { id: doc.documentId, state: { not: "done" }, failureCode: null },
    data: { failureCode: failure.code, failureReason: failure.reason },
  });
  await completeDocumentIfFinished(prisma, doc);
}

/**
 * Completes a batch whose listing has finished and whose documents are all done or failed.
 * One conditional UPDATE, so the last document and the end of the listing may race freely.
 * Called after each document ends: the batch's counters (what has committed) are read first, and
 * while they show unfinished documents there is nothing to write. Every caller reads after its own
 * document's change has committed, so the last one to finish sees none left.
 */
export async function settleBatch(prisma: PrismaClient, batchId: string): Promise<boolean> {
  const [open] = await prisma.$queryRaw<{ documents: bigint }[]>`
    SELECT coalesce(sum(value), 0)::bigint AS documents FROM "BatchCounter"
    WHERE "batchId" = ${batchId}::uuid AND name IN ('documents.queued', 'documents.classified', 'documents.splitting', 'documents.converting', 'documents.inferring')`;
  if (Number(open?.documents ?? 0) > 0) return false;
  const { count } = await prisma.batch.updateMany({
    where: { id: batchId, state: "processing", documents: { none: { state: { notIn: [...TERMINAL] } } } },
    data: { state: "completed", completedAt: new Date() },
  });
  return count > 0;
}
