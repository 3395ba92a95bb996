import type { Prisma, PrismaClient } from "@docpipe/db";
import type { CallerKey, QuotaPeriod } from "./keys.js";

// Quotas and the per-day metering of every key (requests, throttled requests, batches, documents, pages).

/** Counts a request refused for its quota as throttled in the day's metering. */
export async function meterQuotaRefusal(prisma: PrismaClient, apiKeyId: string): Promise<void> {
  await prisma.$executeRaw`
    INSERT INTO "UsageDaily" AS u ("apiKeyId", "day", "throttled") VALUES (${apiKeyId}::uuid, (now() AT TIME ZONE 'UTC')::date, 1)
    ON CONFLICT ("apiKeyId", "day") DO UPDATE SET "throttled" = u."throttled" + 1`;
}

/** Counts an accepted batch in the day's metering. */
export async function meterBatch(prisma: Prisma.TransactionClient, apiKeyId: string): Promise<void> {
  await prisma.$executeRaw`
    INSERT INTO "UsageDaily" AS u ("apiKeyId", "day", "batches") VALUES (${apiKeyId}::uuid, (now() AT TIME ZONE 'UTC')::date, 1)
    ON CONFLICT ("apiKeyId", "day") DO UPDATE SET "batches" = u."batches" + 1`;
}

export interface QuotaStatus {
  period: QuotaPeriod;
  /** Null: the plan has no quota. */
  limit: number | null;
  used: number;
  remaining: number | null;
  /** The plan's page quota in the same period (pages charged as documents' page counts became known). */
  pages: { limit: number | null; used: number; remaining: number | null };
  periodStart: Date;
  resetsAt: Date;
}

/** The key's quota in the current UTC period (day or month). */
export async function quotaStatus(prisma: Prisma.TransactionClient, key: Pick<CallerKey, "id" | "plan">, opts: { lock?: boolean } = {}): Promise<QuotaStatus> {
  const period = key.plan.quotaPeriod;
  const [p] = await prisma.$queryRaw<{ start: Date; reset: Date }[]>`
    SELECT date_trunc(${period}, now() AT TIME ZONE 'UTC')::date AS start,
           (date_trunc(${period}, now() AT TIME ZONE 'UTC') + ${period === "day" ? "1 day" : "1 month"}::interval) AS reset`;
  const start = p!.start;
  let row: { used: number; pages: number } | undefined;
  if (opts.lock) {
    // Serialises admissions of this key across processes for the rest of the transaction.
    await prisma.$executeRaw`
      INSERT INTO "QuotaCounter" ("apiKeyId", "periodStart", "used") VALUES (${key.id}::uuid, ${start}::date, 0)
      ON CONFLICT DO NOTHING`;
    [row] = await prisma.$queryRaw<{ used: number; pages: number }[]>`
      SELECT "used", "pages" FROM "QuotaCounter" WHERE "apiKeyId" = ${key.id}::uuid AND "periodStart" = ${start}::date FOR UPDATE`;
  } else {
    [row] = await prisma.$queryRaw<{ used: number; pages: number }[]>`
      SELECT "used", "pages" FROM "QuotaCounter" WHERE "apiKeyId" = ${key.id}::uuid AND "periodStart" = ${start}::date`;
  }
  const used = row?.used ?? 0;
  const limit = key.plan.quotaDocuments;
  const pageLimit = key.plan.quotaPages;
  const pagesUsed = row?.pages ?? 0;
  const pages = { limit: pageLimit, used: pagesUsed, remaining: pageLimit === null ? null : Math.max(0, pageLimit - pagesUsed) };
  // `reset` is a UTC wall-clock timestamp without zone: read it as UTC.
  const resetsAt = new Date(`${(p!.reset as Date).toISOString().slice(0, 19)}Z`);
  return { period, limit, used, remaining: limit === null ? null : Math.max(0, limit - used), pages, periodStart: start, resetsAt };
}

/** Adds admitted documents to the key's quota counter and the day's metering (inside the admitting transaction). */
export async function chargeDocuments(tx: Prisma.TransactionClient, apiKeyId: string, periodStart: Date, n: number): Promise<void> {
  if (n <= 0) return;
  await tx.$executeRaw`
    INSERT INTO "QuotaCounter" AS q ("apiKeyId", "periodStart", "used") VALUES (${apiKeyId}::uuid, ${periodStart}::date, ${n})
    ON CONFLICT ("apiKeyId", "periodStart") DO UPDATE SET "used" = q."used" + excluded."used"`;
  await tx.$executeRaw`
    INSERT INTO "UsageDaily" AS u ("apiKeyId", "day", "documents") VALUES (${apiKeyId}::uuid, (now() AT TIME ZONE 'UTC')::date, ${n})
    ON CONFLICT ("apiKeyId", "day") DO UPDATE SET "documents" = u."documents" + excluded."documents"`;
}

export interface UsageRow {
  day: string;
  requests: number;
  throttled: number;
  batches: number;
  documents: number;
  /** Pages of the key's documents whose page counts became known that day. */
  pages: number;
}

/** Metering of one key per UTC day, newest first. */
export async function keyUsage(prisma: PrismaClient, apiKeyId: string, days = 30): Promise<UsageRow[]> {
  const rows = await prisma.usageDaily.findMany({
    where: { apiKeyId, day: { gte: new Date(Date.now() - days * 86_400_000) } },
    orderBy: { day: "desc" },
  });
  return rows.map((r) => ({ day: r.day.toISOString().slice(0, 10), requests: r.requests, throttled: r.throttled, batches: r.batches, documents: r.documents, pages: r.pages }));
}

/** Metering of every key, per UTC day, for the CLI report. */
export async function usageReport(prisma: PrismaClient, opts: { days?: number } = {}) {
  const since = new Date(Date.now() - (opts.days ?? 30) * 86_400_000);
  const rows = await prisma.usageDaily.findMany({
    where: { day: { gte: since } },
    include: { apiKey: { select: { prefix: true, name: true, owner: true, plan: { select: { name: true } } } } },
    orderBy: [{ day: "desc" }, { apiKeyId: "asc" }],
  });
  return rows.map((r) => ({
    day: r.day.toISOString().slice(0, 10),
    keyId: r.apiKeyId,
    prefix: r.apiKey.prefix,
    name: r.apiKey.name,
    owner: r.apiKey.owner,
    plan: r.apiKey.plan.name,
    requests: r.requests,
    throttled: r.throttled,
    batches: r.batches,
    documents: r.documents,
    pages: r.pages,
  }));
}

/** What {@link admitDocumentPages} decided for a document's pages. */
export type PageAdmission =
  | { admitted: true; alreadyCounted: boolean }
  | { admitted: false; code: "page_quota_exceeded"; reason: string; limit: number; used: number; period: QuotaPeriod; resetsAt: Date };

/**
 * Charges a document's pages to its key's page quota, once: the statement that records the
 * document's page count (only while it has none) also adds the pages to the key's quota counter
 * and the day's metering, and only if they fit the plan's `quotaPages` (checked on the counter
 * row, locked: two documents of one key never both fit into the same remainder). A document
 * whose pages do not fit keeps no page count and is refused, with a reason a person can act on;
 * the caller fails it before any page work starts, so nothing is half-processed, and
 * retry-failed after the reset charges it then. A document that already has a page count was
 * charged (or admitted before page quotas) and is not charged again: a retry is free.
 * Called where a page count is first known: the orchestrator (files under the size limit), the
 * large splitter (larger files), the failsafe's break-down.
 */
export async function admitDocumentPages(prisma: Prisma.TransactionClient, documentId: string, pageCount: number): Promise<PageAdmission> {
  const [row] = await prisma.$queryRaw<
    { found: boolean; admitted: boolean; limit: number | null; used: number | null; period: QuotaPeriod; prefix: string | null; reset: Date }[]
  >`
    WITH doc AS (
      SELECT d.id, b."apiKeyId", k.prefix, p."quotaPages", coalesce(p."quotaPeriod"::text, 'day') AS period
      FROM "Document" d JOIN "Batch" b ON b.id = d."batchId"
      LEFT JOIN "ApiKey" k ON k.id = b."apiKeyId" LEFT JOIN "UsagePlan" p ON p.id = k."planId"
      WHERE d.id = ${documentId}::uuid AND d."pageCount" IS NULL
      FOR UPDATE OF d
    ), period AS (
      SELECT date_trunc(doc.period, now() AT TIME ZONE 'UTC') AS start, doc.period FROM doc
    ), counter AS (
      INSERT INTO "QuotaCounter" AS q ("apiKeyId", "periodStart", "used", "pages")
      SELECT doc."apiKeyId", period.start::date, 0, ${pageCount}
      FROM doc, period
      WHERE doc."apiKeyId" IS NOT NULL AND (doc."quotaPages" IS NULL OR ${pageCount} <= doc."quotaPages")
      ON CONFLICT ("apiKeyId", "periodStart") DO UPDATE SET "pages" = q."pages" + excluded."pages"
        WHERE (SELECT "quotaPages" FROM doc) IS NULL OR q."pages" + excluded."pages" <= (SELECT "quotaPages" FROM doc)
      RETURNING q."pages"
    ), admitted AS (
      SELECT EXISTS (SELECT 1 FROM counter) OR EXISTS (SELECT 1 FROM doc WHERE "apiKeyId" IS NULL) AS ok
    ), counted AS (
      UPDATE "Document" SET "pageCount" = ${pageCount}, "updatedAt" = now()
      WHERE id = (SELECT id FROM doc) AND (SELECT ok FROM admitted)
    ), metered AS (
      INSERT INTO "UsageDaily" AS u ("apiKeyId", "day", "pages")
      SELECT doc."apiKeyId", (now() AT TIME ZONE 'UTC')::date, ${pageCount} FROM doc, counter
      ON CONFLICT ("apiKeyId", "day") DO UPDATE SET "pages" = u."pages" + excluded."pages"
    )
    SELECT EXISTS (SELECT 1 FROM doc) AS found, (SELECT ok FROM admitted) AS admitted,
           doc."quotaPages" AS "limit", doc.prefix,
           coalesce((SELECT c."pages" FROM "QuotaCounter" c WHERE c."apiKeyId" = doc."apiKeyId" AND c."periodStart" = period.start::date), 0) AS used,
           period.period, period.start + (CASE WHEN period.period = 'day' THEN interval '1 day' ELSE interval '1 month' END) AS reset
    FROM (SELECT 1) one LEFT JOIN doc ON true LEFT JOIN period ON true`;
  if (!row?.found) return { admitted: true, alreadyCounted: true };
  if (row.admitted) return { admitted: true, alreadyCounted: false };
  const limit = row.limit ?? 0;
  const used = row.used ?? 0;
  const resetsAt = new Date(`${row.reset.toISOString().slice(0, 19)}Z`);
  return {
    admitted: false,
    code: "page_quota_exceeded",
    reason:
      `the document has ${pageCount} pages; API key ${row.prefix}'s plan allows ${limit} pages per ${row.period} and ${used} are used, ` +
      `so none of its pages were processed. The quota resets at ${resetsAt.toISOString()}: run retry-failed on the batch after that, ` +
      `or ask for a plan with more pages`,
    limit,
    used,
    period: row.period,
    resetsAt,
  };
}
