import type { PrismaClient } from "@docpipe/db";
import type { BatchReport, DocumentReport, PageProgress } from "@docpipe/api-contract";
import { detectStall } from "./stall.js";

const n = (v: bigint | number | null | undefined): number => Number(v ?? 0);
const pct = (v: number | null): number | null => (v === null ? null : Math.round(v));

/**
 * Builds the report of one batch with a handful of aggregate queries, so it stays cheap for a
 * batch of millions of documents (the per-document list is the exception, and optional).
 * Returns undefined when the batch does not exist.
 */
export async function buildBatchReport(
  prisma: PrismaClient,
  batchId: string,
  opts: { perDocument?: boolean; /** @defaultValue 600 */ stallAfterSeconds?: number } = {},
): Promise<BatchReport | undefined> {
  const batch = await prisma.batch.findUnique({ where: { id: batchId } });
  if (!batch) return undefined;

  const [docStates, pageRows, degraded, failures, features, stages, duplicates, stalled] = await Promise.all([
    prisma.document.groupBy({ by: ["state"], where: { batchId }, _count: { _all: true } }),
    prisma.$queryRaw<{ total: bigint; rendered: bigint; degraded: bigint; failed: bigint; results: bigint }[]>`
      SELECT count(*) AS total,
             count(*) FILTER (WHERE p."imageKey" IS NOT NULL) AS rendered,
             count(*) FILTER (WHERE p.degraded) AS degraded,
             count(*) FILTER (WHERE p.state = 'failed') AS failed,
             count(r.id) AS results
      FROM "Page" p JOIN "Document" d ON d.id = p."documentId"
      LEFT JOIN "InferenceResult" r ON r."pageId" = p.id
      WHERE d."batchId" = ${batchId}::uuid`,
    prisma.$queryRaw<{ reason: string; pages: bigint; documents: bigint }[]>`
      SELECT coalesce(p."degradedReason", 'unknown') AS reason, count(*) AS pages, count(DISTINCT p."documentId") AS documents
      FROM "Page" p JOIN "Document" d ON d.id = p."documentId"
      WHERE d."batchId" = ${batchId}::uuid AND p.degraded
      GROUP BY 1 ORDER BY pages DESC, reason`,
    prisma.$queryRaw<{ code: string; reason: string; documents: bigint }[]>`
      SELECT code, reason, documents FROM (
        SELECT coalesce(d."failureCode", 'unknown') AS code, coalesce(d."failureReason", '') AS reason,
               -- Rows here are (code, reason) groups: add up their documents, not the groups.
               (sum(count(*)) OVER (PARTITION BY d."failureCode"))::bigint AS documents,
               row_number() OVER (PARTITION BY d."failureCode" ORDER BY count(*) DESC, d."failureReason") AS rank
        FROM "Document" d
        WHERE d."batchId" = ${batchId}::uuid AND d.state = 'failed'
        GROUP BY d."failureCode", d."failureReason"
      ) f WHERE rank = 1 ORDER BY documents DESC, code`,
    prisma.$queryRaw<{ feature: string; pages: bigint; documents: bigint }[]>`
      SELECT f.feature, count(*) AS pages, count(DISTINCT r."documentId") AS documents
      FROM "InferenceResult" r JOIN "Document" d ON d.id = r."documentId",
           unnest(r.features) AS f(feature)
      WHERE d."batchId" = ${batchId}::uuid
      GROUP BY f.feature ORDER BY f.feature`,
    prisma.$queryRaw<{ stage: string; attempts: bigint; failures: bigint; p50: number | null; p90: number | null; p99: number | null }[]>`
      SELECT e.stage,
             count(*) AS attempts,
             count(*) FILTER (WHERE e.outcome IN ('failed', 'dead_lettered')) AS failures,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY e."durationMs") AS p50,
             percentile_cont(0.9) WITHIN GROUP (ORDER BY e."durationMs") AS p90,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY e."durationMs") AS p99
      FROM "AuditEvent" e
      WHERE e."batchId" = ${batchId}::uuid AND e.outcome IN ('succeeded', 'failed', 'dead_lettered')
      GROUP BY e.stage ORDER BY min(e."createdAt")`,
    prisma.document.count({ where: { batchId, state: "done", duplicateOfId: { not: null } } }),
    detectStall(prisma, batch, (opts.stallAfterSeconds ?? 600) * 1000),
  ]);

  const byState = Object.fromEntries(docStates.map((g) => [g.state, g._count._all])) as Record<string, number>;
  const total = docStates.reduce((s, g) => s + g._count._all, 0);
  const done = byState.done ?? 0;
  const failed = byState.failed ?? 0;
  const pages = pageRows[0];
  const withResults = n(pages?.results);
  const end = batch.completedAt ?? new Date();
  const elapsedSeconds = Math.max(0.001, (end.getTime() - batch.createdAt.getTime()) / 1000);

  const report: BatchReport = {
    batchId: batch.id,
    label: batch.label,
    state: batch.state,
    documents: {
      total,
      done,
      failed,
      inProgress: total - done - failed,
      skippedNonPdf: batch.skippedCount,
      skippedDuplicates: duplicates,
    },
    pages: { total: n(pages?.total), rendered: n(pages?.rendered), degraded: n(pages?.degraded), withResults, failed: n(pages?.failed) },
    degraded: degraded.map((d) => ({ reason: d.reason, pages: n(d.pages), documents: n(d.documents) })),
    failures: failures.map((f) => ({ code: f.code, reason: f.reason, documents: n(f.documents) })),
    features: features.map((f) => ({
      feature: f.feature,
      pages: n(f.pages),
      documentsWith: n(f.documents),
      documentsWithout: Math.max(0, done - duplicates - n(f.documents)),
    })),
    stages: stages.map((s) => ({
      stage: s.stage,
      attempts: n(s.attempts),
      failures: n(s.failures),
      p50Ms: pct(s.p50),
      p90Ms: pct(s.p90),
      p99Ms: pct(s.p99),
    })),
    throughput: {
      elapsedSeconds,
      pagesPerMinute: (withResults / elapsedSeconds) * 60,
      documentsPerMinute: ((done + failed) / elapsedSeconds) * 60,
    },
    stalled: stalled && { ...stalled, since: stalled.since.toISOString() },
  };
  if (opts.perDocument) report.perDocument = await documentReports(prisma, batchId);
  return report;
}

async function documentReports(prisma: PrismaClient, batchId: string): Promise<DocumentReport[]> {
  const rows = await prisma.$queryRaw<
    {
      id: string;
      bucket: string;
      key: string;
      state: string;
      pageCount: number | null;
      pngs: bigint;
      degraded: bigint;
      results: bigint;
      failureCode: string | null;
      failureReason: string | null;
      duplicateOfId: string | null;
    }[]
  >`
    SELECT d.id, d.bucket, d.key, d.state::text AS state, d."pageCount", d."failureCode", d."failureReason", d."duplicateOfId",
           (SELECT count(*) FROM "Page" p WHERE p."documentId" = d.id AND p."imageKey" IS NOT NULL) AS pngs,
           (SELECT count(*) FROM "Page" p WHERE p."documentId" = d.id AND p.degraded) AS degraded,
           (SELECT count(*) FROM "InferenceResult" r WHERE r."documentId" = d.id) AS results
    FROM "Document" d WHERE d."batchId" = ${batchId}::uuid ORDER BY d.key`;
  return rows.map((r) => ({
    documentId: r.id,
    bucket: r.bucket,
    key: r.key,
    state: r.state,
    pageCount: r.pageCount,
    pngCount: n(r.pngs),
    degradedCount: n(r.degraded),
    resultCount: n(r.results),
    failureCode: r.failureCode,
    failureReason: r.failureReason,
    duplicateOfId: r.duplicateOfId,
  }));
}

/** Pages of a batch per stage, for progress bars: `expected` counts the pages of documents whose page count is known. */
export async function pageProgress(
  prisma: PrismaClient,
  batchId: string,
): Promise<PageProgress> {
  const [row] = await prisma.$queryRaw<{ expected: bigint; split: bigint; rendered: bigint; done: bigint; failed: bigint }[]>`
    SELECT (SELECT coalesce(sum(d."pageCount"), 0) FROM "Document" d WHERE d."batchId" = ${batchId}::uuid) AS expected,
           count(p.id) AS split,
           count(p.id) FILTER (WHERE p.state = 'rendered') AS rendered,
           count(p.id) FILTER (WHERE p.state = 'done') AS done,
           count(p.id) FILTER (WHERE p.state = 'failed') AS failed
    FROM "Document" d JOIN "Page" p ON p."documentId" = d.id
    WHERE d."batchId" = ${batchId}::uuid`;
  return {
    expected: n(row?.expected),
    split: n(row?.split),
    rendered: n(row?.rendered),
    done: n(row?.done),
    failed: n(row?.failed),
  };
}
