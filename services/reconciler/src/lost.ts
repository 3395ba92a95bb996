import { Prisma, type PrismaClient } from "@docpipe/db";
import type { Stage } from "@docpipe/queue";
import type { ReconciledQueue } from "@docpipe/queue";

/**
 * The units whose message can be lost, each with the queue its next message goes to and the
 * stage that consumes it. The rows tell where a unit stands:
 * - a `queued` document waits for the orchestrator (ingest);
 * - a classified large document without `splitAt` waits for the large splitter;
 * - a classified small document without a split chunk (`splitAt`) waits for the small splitter,
 *   as does a chunk of a split large document without `splitAt`;
 * - a `pending` page with its PDF, outside any chunk still being split, waits for the converter;
 * - a `rendered` page waits for inference (its PNG is in S3; the message is S3's notification).
 * A unit covered by a larger one still waiting (the pages of an unsplit chunk, the chunks of a
 * large document whose split did not finish) is left to it: re-sending the larger one redoes it.
 */
export type LostKind = "document" | "large" | "small" | "chunk" | "page" | "image";

/** Which queue each kind's message goes to, and which stage reads it. */
export const KINDS: Record<LostKind, { queue: ReconciledQueue; stage: Stage }> = {
  document: { queue: "ingest", stage: "classify" },
  large: { queue: "large", stage: "split-large" },
  small: { queue: "small", stage: "split-small" },
  chunk: { queue: "small", stage: "split-small" },
  page: { queue: "singlePage", stage: "convert" },
  image: { queue: "convertedImage", stage: "inference" },
};

/** What a lost unit's message is made of. Columns a kind does not select are null. */
export interface LostRow {
  documentId: string;
  batchId: string;
  bucket: string;
  key: string;
  size: bigint | null;
  pageCount: number | null;
  firstPage: number | null;
  lastPage: number | null;
  pageNumber: number | null;
  pdfKey: string | null;
  imageKey: string | null;
}

const UNFINISHED = Prisma.sql`d.state NOT IN ('queued', 'done', 'failed')`;

interface KindSql {
  table: "Document" | "Chunk" | "Page";
  where: (cutoff: Prisma.Sql) => Prisma.Sql;
  columns: Prisma.Sql;
  /** Page number on the audit record. */
  page?: Prisma.Sql;
  /** Facts on the audit record besides the queue, the idle time and the mark. */
  details?: Prisma.Sql;
}

const DOCUMENT_COLUMNS = Prisma.sql`d.bucket, d.key, d.size, d."pageCount"`;
const RANGE_DETAILS = Prisma.sql`jsonb_build_object('firstPage', l."firstPage", 'lastPage', l."lastPage")`;

const SQL: Record<LostKind, KindSql> = {
  document: { table: "Document", where: () => Prisma.sql`d.state = 'queued'`, columns: DOCUMENT_COLUMNS },
  large: {
    table: "Document",
    // Any state past classification: a chunk split meanwhile moves the document on to converting.
    where: () => Prisma.sql`${UNFINISHED} AND d.class = 'large' AND d."splitAt" IS NULL`,
    columns: DOCUMENT_COLUMNS,
  },
  small: {
    table: "Document",
    // Its one chunk row (written by a split-small claim) counts as activity too.
    where: (cutoff) => Prisma.sql`${UNFINISHED} AND d.class = 'small' AND d."pageCount" IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM "Chunk" c WHERE c."documentId" = d.id AND (c."splitAt" IS NOT NULL OR c."updatedAt" >= ${cutoff}))`,
    columns: Prisma.sql`${DOCUMENT_COLUMNS}, 1 AS "firstPage", d."pageCount" AS "lastPage"`,
    details: RANGE_DETAILS,
  },
  chunk: {
    table: "Chunk",
    where: () => Prisma.sql`${UNFINISHED} AND d.class = 'large' AND d."splitAt" IS NOT NULL AND u."splitAt" IS NULL`,
    columns: Prisma.sql`d.bucket, u.key, u."firstPage", u."lastPage"`,
    details: RANGE_DETAILS,
  },
  page: {
    table: "Page",
    where: () => Prisma.sql`${UNFINISHED} AND u.state = 'pending' AND u."pdfKey" IS NOT NULL
      AND (d.class IS DISTINCT FROM 'large' OR d."splitAt" IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM "Chunk" c WHERE c."documentId" = d.id AND c."splitAt" IS NULL
                      AND u."pageNumber" BETWEEN c."firstPage" AND c."lastPage")`,
    columns: Prisma.sql`d.bucket, d.key, u."pageNumber", u."pdfKey"`,
    page: Prisma.sql`l."pageNumber"`,
  },
  image: {
    table: "Page",
    where: () => Prisma.sql`${UNFINISHED} AND u.state = 'rendered' AND u."imageKey" IS NOT NULL`,
    columns: Prisma.sql`d.bucket, d.key, u."pageNumber", u."imageKey"`,
    page: Prisma.sql`l."pageNumber"`,
  },
};

/** Prisma writes DateTime columns as UTC into `timestamp without time zone`; SQL does the same here. */
const NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;
const utc = (d: Date): Prisma.Sql => Prisma.sql`(${d.toISOString()}::timestamptz AT TIME ZONE 'UTC')`;

export interface TakeOptions {
  kind: LostKind;
  /** Units last touched before this are taken. */
  cutoff: Date;
  /** The drain mark the cutoff came from, for the audit record. */
  mark: Date;
  limit: number;
  workerId: string;
  /** Only this batch's units. @defaultValue every unfinished batch's */
  batchId?: string;
}

/**
 * Takes up to `limit` lost units of one kind in one statement: picks them (rows locked by
 * another reconciler are skipped), touches their `updatedAt` (so they count as lost again only
 * after their next message has had its chance) and writes one `reconciled` audit record each.
 * Two reconcilers at once take disjoint units; a unit a worker moved on meanwhile no longer
 * matches and is not taken. The caller sends the messages of the rows it gets back.
 */
export async function takeLost(prisma: PrismaClient, o: TakeOptions): Promise<LostRow[]> {
  const k = SQL[o.kind];
  const { queue, stage } = KINDS[o.kind];
  const table = Prisma.raw(`"${k.table}"`);
  const documentOf = k.table === "Document" ? Prisma.sql`u.id` : Prisma.sql`u."documentId"`;
  const cutoff = utc(o.cutoff);
  const batch = o.batchId ? Prisma.sql`d."batchId" = ${o.batchId}::uuid` : Prisma.sql`TRUE`;
  return prisma.$queryRaw<LostRow[]>`
    WITH lost AS (
      SELECT u.id AS "unitId", u."updatedAt" AS "idleSince", d.id AS "documentId", d."batchId", ${k.columns}
      FROM ${table} u JOIN "Document" d ON d.id = ${documentOf} JOIN "Batch" b ON b.id = d."batchId"
      WHERE b.state IN ('listing', 'processing') AND ${batch} AND ${k.where(cutoff)} AND u."updatedAt" < ${cutoff}
        -- A duplicate waiting for its content's document has no message to lose.
        AND d."duplicateOfId" IS NULL
      ORDER BY u."updatedAt"
      LIMIT ${o.limit}
      FOR UPDATE OF u SKIP LOCKED
    ), touched AS (
      -- No message is left for the unit, so no live attempt holds it: a claim on it is a dead worker's.
      UPDATE ${table} t SET "updatedAt" = ${NOW}, "leaseUntil" = NULL FROM lost WHERE t.id = lost."unitId" RETURNING t.id
    ), freed AS (
      -- A small document's split is claimed on its chunk row.
      UPDATE "Chunk" c SET "leaseUntil" = NULL FROM lost
      WHERE ${o.kind === "small" ? Prisma.sql`TRUE` : Prisma.sql`FALSE`} AND c."documentId" = lost."documentId" AND c."splitAt" IS NULL
    ), audited AS (
      INSERT INTO "AuditEvent" ("batchId", "documentId", "pageNumber", "stage", "outcome", "workerId", "details", "createdAt")
      SELECT l."batchId", l."documentId", ${k.page ?? Prisma.sql`NULL::int`}, ${stage}, 'reconciled'::"AuditOutcome", ${o.workerId},
             jsonb_build_object('queue', ${queue}::text, 'idleSince', l."idleSince", 'mark', ${o.mark.toISOString()}::text)
               || ${k.details ?? Prisma.sql`'{}'::jsonb`},
             ${NOW}
      FROM lost l JOIN touched t ON t.id = l."unitId"
    )
    SELECT l.* FROM lost l JOIN touched t ON t.id = l."unitId"`;
}

/**
 * Documents whose every page has finished but that did not end (the worker that finished the
 * last page died before ending it), idle since before `cutoff`. No message is needed:
 * `completeDocumentIfFinished` ends them.
 */
export async function finishedButOpen(prisma: PrismaClient, cutoff: Date, limit: number, batchId?: string): Promise<{ documentId: string; batchId: string }[]> {
  const batch = batchId ? Prisma.sql`d."batchId" = ${batchId}::uuid` : Prisma.sql`TRUE`;
  return prisma.$queryRaw`
    SELECT d.id AS "documentId", d."batchId"
    FROM "Document" d JOIN "Batch" b ON b.id = d."batchId"
    WHERE b.state IN ('listing', 'processing') AND ${batch} AND ${UNFINISHED}
      AND d."pageCount" IS NOT NULL AND d."updatedAt" < ${utc(cutoff)}
      AND NOT EXISTS (SELECT 1 FROM "Page" p WHERE p."documentId" = d.id AND p.state NOT IN ('done', 'failed'))
      AND (SELECT count(*) FROM "Page" p WHERE p."documentId" = d.id) >= d."pageCount"
    LIMIT ${limit}`;
}

/** Batches still `processing` whose documents have all ended (the last one's worker died before settling it). */
export async function settledButOpen(prisma: PrismaClient, batchId?: string): Promise<string[]> {
  const batch = batchId ? Prisma.sql`b.id = ${batchId}::uuid` : Prisma.sql`TRUE`;
  const rows = await prisma.$queryRaw<{ id: string }[]>`
    SELECT b.id FROM "Batch" b
    WHERE b.state = 'processing' AND ${batch}
      AND NOT EXISTS (SELECT 1 FROM "Document" d WHERE d."batchId" = b.id AND d.state NOT IN ('done', 'failed'))`;
  return rows.map((r) => r.id);
}

/**
 * Documents of skipAlreadyProcessed batches still waiting for the document whose content they
 * share, although it has ended (its end raced with their start of waiting), or is gone (deleted
 * with its batch). Returns those documents, per document waited for.
 */
export async function waitingInVain(prisma: PrismaClient, cutoff: Date, limit: number, batchId?: string): Promise<{ holder: string; gone: boolean }[]> {
  const batch = batchId ? Prisma.sql`d."batchId" = ${batchId}::uuid` : Prisma.sql`TRUE`;
  return prisma.$queryRaw`
    SELECT DISTINCT d."duplicateOfId" AS holder, (h.id IS NULL) AS gone
    FROM "Document" d JOIN "Batch" b ON b.id = d."batchId" LEFT JOIN "Document" h ON h.id = d."duplicateOfId"
    WHERE b.state IN ('listing', 'processing') AND ${batch} AND d.state NOT IN ('done', 'failed') AND d."duplicateOfId" IS NOT NULL
      AND d."updatedAt" < ${utc(cutoff)} AND (h.id IS NULL OR h.state IN ('done', 'failed'))
    LIMIT ${limit}`;
}

/** Sends the documents that waited for a document that is gone back to the orchestrator's queue, as new: the next pass re-sends them. */
export async function stopWaiting(prisma: PrismaClient, holder: string): Promise<number> {
  return prisma.$executeRaw`
    UPDATE "Document" SET "duplicateOfId" = NULL, state = 'queued', "updatedAt" = ${NOW}
    WHERE "duplicateOfId" = ${holder}::uuid AND state NOT IN ('done', 'failed')`;
}
