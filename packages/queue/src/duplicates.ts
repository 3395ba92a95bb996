import { Prisma, type PrismaClient } from "@docpipe/db";
import { batchSettings } from "./batch-settings.js";
import { settleBatch } from "./documents.js";

/**
 * `skipAlreadyProcessed`, claimed by content. The first document of an owner to hash a content
 * claims it (`ContentClaim`, one row per owner and SHA-256, taken in one statement: two batches
 * racing with the same file cannot both win) and is processed. A document of a batch that asks to
 * skip finds the claim held by a document of another batch, and is not processed: if that one is
 * done, it ends done at once; while it is still being processed, it waits for it
 * (`duplicateOfId` set, `classified`) and ends as it ends, done, or failed with its reason,
 * in the statement that ends it. A claim whose document failed, or is gone, is taken over.
 */

/** The document whose results stand for a skipped duplicate. */
export interface DuplicateOf {
  documentId: string;
  batchId: string;
  /** Still being processed: this document ends when it does. */
  waiting: boolean;
}

const TERMINAL = ["done", "failed"] as const;

/**
 * The UPDATE (for a CTE) that ends the documents waiting for the documents in `ended` (a CTE
 * of rows `id, state, failureCode, failureReason` that have just ended): done as they are done,
 * or failed with their reason. Returns the waiters' batch ids, for the caller to settle.
 */
export function waitersEnd(ended: string): Prisma.Sql {
  return Prisma.sql`
    UPDATE "Document" w
    SET state = e.state, "completedAt" = now(), "updatedAt" = now(),
        "failureCode" = CASE WHEN e.state = 'failed' THEN 'duplicate_of_failed' END,
        "failureReason" = CASE WHEN e.state = 'failed'
          THEN 'same content as document ' || e.id || ', which failed: ' || coalesce(e."failureReason", e."failureCode", 'no reason recorded') END
    FROM ${Prisma.raw(ended)} e
    WHERE w."duplicateOfId" = e.id AND w.state NOT IN ('done', 'failed')
    RETURNING w."batchId"`;
}

/** Ends the documents waiting for `documentId` if it has ended, and settles their batches. Returns how many it ended. */
export async function endWaitingDuplicates(prisma: PrismaClient, documentId: string): Promise<number> {
  const waiters = await prisma.$queryRaw<{ batchId: string }[]>`
    WITH ended AS (SELECT id, state, "failureCode", "failureReason" FROM "Document" WHERE id = ${documentId}::uuid AND state IN ('done', 'failed'))
    ${waitersEnd("ended")}`;
  for (const batchId of new Set(waiters.map((w) => w.batchId))) await settleBatch(prisma, batchId);
  return waiters.length;
}

/**
 * Stores the document's content hash and claims the content for it (always, whatever its batch
 * asks: a skipping batch may defer to any processed document of the owner). When its batch asks
 * to skip (`options.skipAlreadyProcessed`) and a document of another batch holds the claim, this
 * one is not processed: it ends done now (that one is done), or waits for it. Returns that
 * document, or undefined to process this one. The holder is always a document that was
 * processed itself, so a chain of skips points at real pages and results.
 */
export async function completeIfDuplicate(
  prisma: PrismaClient,
  doc: { batchId: string; documentId: string },
  contentHash: string,
): Promise<DuplicateOf | undefined> {
  const batch = await batchSettings(prisma, doc.batchId);
  const owner = batch?.owner ?? "";
  // One statement: the hash on the document, and the claim, taken when free, when its holder
  // failed or is gone, or when it is this document's own (a redelivery).
  const [claim] = await prisma.$queryRaw<{ won: number }[]>`
    WITH hashed AS (
      UPDATE "Document" SET "contentHash" = ${contentHash} WHERE id = ${doc.documentId}::uuid
    ), claimed AS (
      INSERT INTO "ContentClaim" ("owner", "contentHash", "documentId", "createdAt")
      VALUES (${owner}, ${contentHash}, ${doc.documentId}::uuid, now() AT TIME ZONE 'UTC')
      ON CONFLICT ("owner", "contentHash") DO UPDATE SET "documentId" = EXCLUDED."documentId", "createdAt" = EXCLUDED."createdAt"
      WHERE "ContentClaim"."documentId" = EXCLUDED."documentId"
         OR NOT EXISTS (SELECT 1 FROM "Document" h WHERE h.id = "ContentClaim"."documentId" AND h.state <> 'failed')
      RETURNING 1
    )
    SELECT count(*)::int AS won FROM claimed`;
  if (claim?.won || !batch?.skipDuplicates) return undefined;

  // A fresh look (the claim may have been committed by a racing batch after the statement began).
  const [holder] = await prisma.$queryRaw<{ id: string; batchId: string; state: string }[]>`
    SELECT h.id, h."batchId", h.state::text AS state FROM "ContentClaim" c JOIN "Document" h ON h.id = c."documentId"
    WHERE c."owner" = ${owner} AND c."contentHash" = ${contentHash}`;
  // Gone, failed meanwhile, or of this very batch (two copies in one batch are both processed).
  if (!holder || holder.state === "failed" || holder.batchId === doc.batchId) return undefined;
  const duplicateOf = { documentId: holder.id, batchId: holder.batchId };
  if (holder.state === "done") {
    const { count } = await prisma.document.updateMany({
      where: { id: doc.documentId, state: { notIn: [...TERMINAL] } },
      data: { state: "done", duplicateOfId: holder.id, completedAt: new Date() },
    });
    if (count > 0) await settleBatch(prisma, doc.batchId);
    return { ...duplicateOf, waiting: false };
  }
  // Classified, as a duplicate: it leaves the orchestrator's queue, and no other stage takes it.
  await prisma.$executeRaw`
    UPDATE "Document" SET "duplicateOfId" = ${holder.id}::uuid, "updatedAt" = now(),
      state = CASE WHEN state = 'queued' THEN 'classified'::"DocumentState" ELSE state END
    WHERE id = ${doc.documentId}::uuid AND state NOT IN ('done', 'failed')`;
  // The holder may have ended between the look and the wait: then its end did not see this one.
  await endWaitingDuplicates(prisma, holder.id);
  return { ...duplicateOf, waiting: true };
}
