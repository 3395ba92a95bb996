import type { Prisma, PrismaClient } from "@docpipe/db";
import { settleBatch } from "@docpipe/queue";
import type { Plan } from "./plan.js";

/**
 * Claims the planned documents for a retry, in one transaction: each goes from `failed` to the
 * state its retry starts in (`queued` for a whole document, `converting` or `inferring` for
 * pages) with a conditional update, so two calls at once never claim the same document; its
 * failed pages go back to `pending` or `rendered`; a completed batch goes back to
 * `processing`; and each claimed document and page gets a `replayed` audit record
 * (`{ event: "retry_failed", retry: n }`). Returns the plans it claimed.
 */
export async function claimRetries(
  prisma: PrismaClient,
  batchId: string,
  plans: Plan[],
  retriesOf: Map<string, number>,
  workerId: string,
): Promise<Plan[]> {
  return prisma.$transaction(async (tx) => {
    const claim = async (docIds: string[], state: "queued" | "converting" | "inferring") =>
      docIds.length === 0
        ? []
        : (
            await tx.$queryRaw<{ id: string }[]>`
              UPDATE "Document" SET state = ${state}::"DocumentState", "failureCode" = NULL, "failureReason" = NULL,
                     "completedAt" = NULL, "updatedAt" = now()
              WHERE id = ANY(${docIds}::uuid[]) AND state = 'failed'
              RETURNING id`
          ).map((r) => r.id);
    const byTarget = (target: "queued" | "converting" | "inferring") =>
      plans
        .filter((p) => (target === "queued" ? p.mode === "document" : p.mode === "pages" && (target === "converting") === p.convert.length > 0))
        .map((p) => p.doc.id);
    const got = new Set([
      ...(await claim(byTarget("queued"), "queued")),
      ...(await claim(byTarget("converting"), "converting")),
      ...(await claim(byTarget("inferring"), "inferring")),
    ]);
    const mine = plans.filter((p) => got.has(p.doc.id));
    if (mine.length === 0) return mine;
    const wholeIds = mine.filter((p) => p.mode === "document").map((p) => p.doc.id);
    const pageIds = mine.filter((p) => p.mode === "pages").map((p) => p.doc.id);
    // A whole document is rendered again from scratch; a page with its PNG in place only needs inference.
    if (wholeIds.length > 0) {
      await tx.$executeRaw`
        UPDATE "Page" SET state = 'pending', "failureCode" = NULL, "failureReason" = NULL, "updatedAt" = now()
        WHERE "documentId" = ANY(${wholeIds}::uuid[]) AND state = 'failed'`;
    }
    if (pageIds.length > 0) {
      await tx.$executeRaw`
        UPDATE "Page" SET state = CASE WHEN "imageKey" IS NULL THEN 'pending'::"PageState" ELSE 'rendered'::"PageState" END,
               "failureCode" = NULL, "failureReason" = NULL, "updatedAt" = now()
        WHERE "documentId" = ANY(${pageIds}::uuid[]) AND state = 'failed'`;
    }
    await tx.batch.updateMany({ where: { id: batchId, state: "completed" }, data: { state: "processing", completedAt: null } });
    await tx.auditEvent.createMany({ data: mine.flatMap((p) => auditRecords(batchId, p, (retriesOf.get(p.doc.id) ?? 0) + 1, workerId)) });
    return mine;
  });
}

/** The `replayed` records of one claimed document: the document's, and one per page re-sent alone. */
function auditRecords(batchId: string, p: Plan, retry: number, workerId: string): Prisma.AuditEventCreateManyInput[] {
  const previousFailure = { code: p.doc.failureCode, reason: p.doc.failureReason };
  const base = { batchId, documentId: p.doc.id, outcome: "replayed" as const, workerId };
  if (p.mode === "document") return [{ ...base, stage: "ingestion", details: { event: "retry_failed", retry, resentTo: "ingest", previousFailure } }];
  const pageNumbers = [...p.convert, ...p.infer].map((x) => x.pageNumber).sort((a, b) => a - b);
  return [
    { ...base, stage: "ingestion", details: { event: "retry_failed", retry, resentTo: "pages", pages: pageNumbers, previousFailure } },
    ...p.convert.map((x) => ({
      ...base,
      stage: "convert",
      pageNumber: x.pageNumber,
      details: { event: "retry_failed", retry, resentTo: "single-page", previousFailure: { code: x.failureCode, reason: x.failureReason } },
    })),
    ...p.infer.map((x) => ({
      ...base,
      stage: "inference",
      pageNumber: x.pageNumber,
      details: { event: "retry_failed", retry, resentTo: "converted-image", previousFailure: { code: x.failureCode, reason: x.failureReason } },
    })),
  ];
}

/** Puts claimed documents (and their pages) back the way they were, so a later call can retry them again. */
export async function unclaimRetries(prisma: PrismaClient, batchId: string, plans: Plan[]): Promise<void> {
  for (const p of plans) {
    await prisma.document.updateMany({
      where: { id: p.doc.id, state: { in: ["queued", "converting", "inferring"] } },
      data: { state: "failed", failureCode: p.doc.failureCode, failureReason: p.doc.failureReason, completedAt: new Date() },
    });
    if (p.mode === "pages") {
      for (const page of [...p.convert, ...p.infer]) {
        await prisma.page.updateMany({
          where: { documentId: p.doc.id, pageNumber: page.pageNumber, state: { in: ["pending", "rendered"] }, result: { is: null } },
          data: { state: "failed", failureCode: page.failureCode, failureReason: page.failureReason },
        });
      }
    }
  }
  await settleBatch(prisma, batchId);
}
