import { Prisma, queryRows, type PrismaClient } from "@docpipe/db";
import type { DocumentRef } from "./keys.js";
import type { Logger } from "./logger.js";
import { NOW } from "./sql.js";

/**
 * The rows a page gets as it moves through the pipeline, written by the small splitter, the
 * page converter and the failsafe alike, so a page the failsafe made cannot be told from one
 * the normal path made.
 */

/**
 * As the small splitter: the pages' rows exist with their PDFs before anything renders them.
 * One statement for a group of pages (the splitter writes them before it sends their messages),
 * which with `splitting` also moves the document on to `splitting` (never backwards).
 */
export async function recordPagesSplit(
  prisma: PrismaClient,
  doc: DocumentRef,
  pages: readonly { pageNumber: number; pdfKey: string }[],
  opts: { splitting?: boolean } = {},
): Promise<void> {
  if (pages.length === 0) return;
  await queryRows(
    prisma,
    Prisma.sql`
    WITH split_document AS (
      UPDATE "Document" SET "state" = 'splitting', "updatedAt" = ${NOW}
      WHERE ${opts.splitting ?? false} AND "id" = ${doc.documentId}::uuid AND "state" IN ('queued', 'classified')
    )
    INSERT INTO "Page" ("id", "documentId", "pageNumber", "pdfKey", "createdAt", "updatedAt")
    SELECT gen_random_uuid(), ${doc.documentId}::uuid, t.n, t.key, ${NOW}, ${NOW}
    FROM unnest(${pages.map((p) => p.pageNumber)}::int[], ${pages.map((p) => p.pdfKey)}::text[]) AS t(n, key)
    ON CONFLICT ("documentId", "pageNumber") DO UPDATE SET "pdfKey" = EXCLUDED."pdfKey", "updatedAt" = EXCLUDED."updatedAt"`,
  );
}

/** {@link recordPagesSplit} for one page. */
export function recordPageSplit(prisma: PrismaClient, doc: DocumentRef, pageNumber: number, pdfKey: string): Promise<void> {
  return recordPagesSplit(prisma, doc, [{ pageNumber, pdfKey }]);
}

export interface RenderedFacts {
  imageKey: string;
  width: number;
  height: number;
  /** Rounded: a page over the pixel cap renders at a fractional DPI. */
  dpi: number;
  renderMs: number;
  /** The engine whose image the PNG is. */
  engine: string;
  /** No engine drew the page cleanly (kept under the batch's `onDamagedPage: "flag"`). */
  degraded: boolean;
  /** With `degraded`: the kind of damage; otherwise null. */
  degradedReason: string | null;
  /** What the engines said while drawing it. */
  warnings: string[];
}

/** What a render engine tells of one page (a `RenderResult` of @docpipe/pdf, less its PNG). */
export interface DrawnPage {
  width: number;
  height: number;
  dpi: number;
  engine: string;
  degraded: boolean;
  degradedReason?: string;
  warnings: string[];
}

/** The Page row's facts of a page drawn by `page` whose PNG is at imageKey. */
export function renderedFacts(imageKey: string, page: DrawnPage, renderMs: number): RenderedFacts {
  return {
    imageKey,
    width: page.width,
    height: page.height,
    // A page over the pixel cap renders at a fractional DPI; the column holds it rounded.
    dpi: Math.round(page.dpi),
    renderMs,
    engine: page.engine,
    degraded: page.degraded,
    degradedReason: page.degraded ? (page.degradedReason ?? "unknown") : null,
    warnings: page.warnings,
  };
}

/**
 * The engines' messages of one page go to the log at debug (they are also in the page's row and
 * audit record), never to the terminal; a degraded page is worth a warning line of its own.
 */
export function logEngineMessages(log: Logger, page: DrawnPage): void {
  if (page.warnings.length > 0) log.debug({ engine: page.engine, warnings: page.warnings }, "render engine messages");
  if (page.degraded) log.warn({ engine: page.engine, degradedReason: page.degradedReason }, "page drawn with damage; kept as degraded");
}

/**
 * For a stage's audit record: the engine that opened a document and what the engines said,
 * when there is anything to say (an engine other than mupdf, or messages); else nothing.
 */
export function openedDetails(opened: { engine: string; warnings: string[] } | undefined): { engine?: string; warnings?: string[] } {
  if (!opened || (opened.engine === "mupdf" && opened.warnings.length === 0)) return {};
  return { engine: opened.engine, ...(opened.warnings.length > 0 && { warnings: opened.warnings }) };
}

/**
 * As the page converter, after the PNG is in S3: the page gets its facts and is rendered (forward
 * only: inference, which reacts to the upload, may have marked it done), and its document moves
 * on to converting. The parts of one statement (`StageScope.commitStatement`), so the stage's
 * outcome record commits with them and a crash cannot leave a rendered page without it.
 */
export function pageRenderedWrites(doc: DocumentRef, pageNumber: number, pdfKey: string, facts: RenderedFacts): Prisma.Sql {
  const f = facts;
  return Prisma.sql`
    rendered_page AS (
      INSERT INTO "Page" ("id", "documentId", "pageNumber", "pdfKey", "state", "imageKey", "width", "height", "dpi", "renderMs",
                          "engine", "degraded", "degradedReason", "warnings", "createdAt", "updatedAt")
      VALUES (gen_random_uuid(), ${doc.documentId}::uuid, ${pageNumber}, ${pdfKey}, 'rendered', ${f.imageKey}, ${f.width}, ${f.height}, ${f.dpi},
              ${f.renderMs}, ${f.engine}, ${f.degraded}, ${f.degradedReason}, ${f.warnings}::text[], ${NOW}, ${NOW})
      ON CONFLICT ("documentId", "pageNumber") DO UPDATE SET
        "imageKey" = EXCLUDED."imageKey", "width" = EXCLUDED."width", "height" = EXCLUDED."height", "dpi" = EXCLUDED."dpi",
        "renderMs" = EXCLUDED."renderMs", "engine" = EXCLUDED."engine", "degraded" = EXCLUDED."degraded",
        "degradedReason" = EXCLUDED."degradedReason", "warnings" = EXCLUDED."warnings", "failureCode" = NULL, "failureReason" = NULL,
        "state" = CASE WHEN "Page"."state" IN ('pending', 'failed') THEN 'rendered'::"PageState" ELSE "Page"."state" END,
        "updatedAt" = EXCLUDED."updatedAt"
    ),
    converting_document AS (
      UPDATE "Document" SET "state" = 'converting', "updatedAt" = ${NOW}
      WHERE "id" = ${doc.documentId}::uuid AND "state" IN ('queued', 'classified', 'splitting')
    )`;
}

/** {@link pageRenderedWrites} in a transaction of its own making (the failsafe's breakdown commits a page at a time). */
export async function recordPageRendered(
  tx: Prisma.TransactionClient,
  doc: DocumentRef,
  pageNumber: number,
  pdfKey: string,
  facts: RenderedFacts,
): Promise<void> {
  await tx.$executeRaw`WITH ${pageRenderedWrites(doc, pageNumber, pdfKey, facts)} SELECT 1`;
}

/** A page no path can render: failed with the reason, unless it already got further. */
export async function recordPageFailed(
  prisma: PrismaClient | Prisma.TransactionClient,
  doc: DocumentRef,
  pageNumber: number,
  failure: { code: string; reason: string; pdfKey?: string },
): Promise<void> {
  await prisma.page.upsert({
    where: { documentId_pageNumber: { documentId: doc.documentId, pageNumber } },
    create: {
      documentId: doc.documentId,
      pageNumber,
      state: "failed",
      failureCode: failure.code,
      failureReason: failure.reason,
      ...(failure.pdfKey !== undefined && { pdfKey: failure.pdfKey }),
    },
    update: {},
  });
  await prisma.page.updateMany({
    where: { documentId: doc.documentId, pageNumber, state: { in: ["pending", "failed"] } },
    data: { state: "failed", failureCode: failure.code, failureReason: failure.reason },
  });
}
