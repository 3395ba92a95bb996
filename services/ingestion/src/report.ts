import { documentStates, encodeCursor, type BatchReport, type DocumentReport, type PageProgress } from "@docpipe/api-contract";
import { readBatchCounters, readStageStats, type DocumentState, type PrismaClient } from "@docpipe/db";
import { stages } from "@docpipe/queue";
import { detectStall } from "./stall.js";

const FEATURE_PAGES = "features.pages:";
const FEATURE_DOCUMENTS = "features.documents:";
const DEGRADED_PAGES = "pages.degraded:";
/** Counted when a document finishes (done or failed). */
const DEGRADED_DOCUMENTS = "documents.degraded:";

const n = (v: bigint | number | null | undefined): number => Number(v ?? 0);
const pct = (v: number | null): number | null => (v === null ? null : Math.round(v));

/** Pipeline order of the stages, for the report; stages it does not know come after, by name. */
const STAGE_ORDER: readonly string[] = stages;

/**
 * Builds the report of one batch from its counters (kept by the database as work happens) and
 * one query over its failed documents, so its cost does not grow with the batch's pages or audit
 * trail (the per-document list is the exception, and optional). Returns undefined when the batch
 * does not exist.
 */
export async function buildBatchReport(
  prisma: PrismaClient,
  batchId: string,
  opts: {
    /** A page of the per-document list: up to `limit` documents after the key `after`, in key order. */
    perDocument?: { limit: number; after?: string | undefined };
    /** @defaultValue 600 */ stallAfterSeconds?: number;
  } = {},
): Promise<BatchReport | undefined> {
  const batch = await prisma.batch.findUnique({ where: { id: batchId } });
  if (!batch) return undefined;

  const [counters, failures, stageStats, stalled] = await Promise.all([
    readBatchCounters(prisma, batchId),
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
    readStageStats(prisma, batchId),
    detectStall(prisma, batch, (opts.stallAfterSeconds ?? 600) * 1000),
  ]);

  const count = (name: string): number => counters.get(name) ?? 0;
  const total = documentStates.reduce((s, state) => s + count(`documents.${state}`), 0);
  const done = count("documents.done");
  const failed = count("documents.failed");
  const duplicates = count("documents.duplicates");
  const withResults = count("results");
  const end = batch.completedAt ?? new Date();
  const elapsedSeconds = Math.max(0.001, (end.getTime() - batch.createdAt.getTime()) / 1000);
  /** What follows `prefix` in the names of the counters that have it, sorted. */
  const suffixes = (prefix: string) => [...counters.keys()].flatMap((name) => (name.startsWith(prefix) ? [name.slice(prefix.length)] : [])).sort();
  const features = suffixes(FEATURE_PAGES);
  const degradedReasons = suffixes(DEGRADED_PAGES).sort((a, b) => count(`${DEGRADED_PAGES}${b}`) - count(`${DEGRADED_PAGES}${a}`));
  const rank = (stage: string) => (STAGE_ORDER.includes(stage) ? STAGE_ORDER.indexOf(stage) : STAGE_ORDER.length);

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
    pages: { total: count("pages.rows"), rendered: count("pages.imaged"), degraded: count("pages.degraded"), withResults, failed: count("pages.failed") },
    degraded: degradedReasons.map((reason) => ({ reason, pages: count(`${DEGRADED_PAGES}${reason}`), documents: count(`${DEGRADED_DOCUMENTS}${reason}`) })),
    failures: failures.map((f) => ({ code: f.code, reason: f.reason, documents: n(f.documents) })),
    features: features.map((feature) => {
      const documentsWith = count(`${FEATURE_DOCUMENTS}${feature}`);
      return { feature, pages: count(`${FEATURE_PAGES}${feature}`), documentsWith, documentsWithout: Math.max(0, done - duplicates - documentsWith) };
    }),
    stages: stageStats
      .sort((a, b) => rank(a.stage) - rank(b.stage) || a.stage.localeCompare(b.stage))
      .map((s) => ({ stage: s.stage, attempts: s.attempts, failures: s.failures, p50Ms: pct(s.p50Ms), p90Ms: pct(s.p90Ms), p99Ms: pct(s.p99Ms) })),
    throughput: {
      elapsedSeconds,
      pagesPerMinute: (withResults / elapsedSeconds) * 60,
      documentsPerMinute: ((done + failed) / elapsedSeconds) * 60,
    },
    stalled: stalled && { ...stalled, since: stalled.since.toISOString() },
  };
  if (opts.perDocument) {
    const { limit, after } = opts.perDocument;
    const rows = await documentReports(prisma, batch, limit + 1, after);
    report.perDocument = rows.slice(0, limit);
    report.perDocumentNextCursor = rows.length > limit ? encodeCursor(report.perDocument[limit - 1]!.key) : null;
  }
  return report;
}

/** Up to `take` documents of the batch after the key `after`, in key order (keyset on the batch's unique index). */
async function documentReports(
  prisma: PrismaClient,
  batch: { id: string; bucket: string },
  take: number,
  after: string | undefined,
): Promise<DocumentReport[]> {
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
    FROM "Document" d
    WHERE d."batchId" = ${batch.id}::uuid AND d.bucket = ${batch.bucket} AND d.key > ${after ?? ""}
    ORDER BY d.key LIMIT ${take}`;
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

/** Documents per state and pages per stage, for progress bars: one read of the batch's counters. */
export async function batchProgress(
  prisma: PrismaClient,
  batchId: string,
): Promise<{ documents: Record<DocumentState, number>; pages: PageProgress }> {
  const counters = await readBatchCounters(prisma, batchId);
  const count = (name: string): number => counters.get(name) ?? 0;
  return {
    documents: Object.fromEntries(documentStates.map((s) => [s, count(`documents.${s}`)])) as Record<DocumentState, number>,
    pages: {
      expected: count("pages.expected"),
      split: count("pages.rows"),
      rendered: count("pages.rendered"),
      done: count("pages.done"),
      failed: count("pages.failed"),
    },
  };
}

/** Pages of a batch per stage, for progress bars: `expected` counts the pages of documents whose page count is known. */
export async function pageProgress(prisma: PrismaClient, batchId: string): Promise<PageProgress> {
  return (await batchProgress(prisma, batchId)).pages;
}
