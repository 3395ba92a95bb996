import type { Prisma, PrismaClient } from "@docpipe/db";
import type { DocumentRef } from "./keys.js";
import type { Logger } from "./logger.js";

/**
 * The rows a page gets as it moves through the pipeline, written by the small splitter, the
 * page converter and the failsafe alike, so a page the failsafe made cannot be told from one
 * the normal path made.
 */

/** As the small splitter: the page row exists with its PDF before anything renders it. */
export async function recordPageSplit(prisma: PrismaClient, doc: DocumentRef, pageNumber: number, pdfKey: string): Promise<void> {
  await prisma.page.upsert({
    where: { documentId_pageNumber: { documentId: doc.documentId, pageNumber } },
    create: { documentId: doc.documentId, pageNumber, pdfKey },
    update: { pdfKey },
  });
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
 * As the page converter, after the PNG is in S3: the page is rendered (forward only) and its
 * document converting. Run it in the transaction that stores the stage's outcome
 * (`StageScope.commit`), so a crash cannot leave a rendered page whose trail lacks the stage.
 */
export async function recordPageRendered(
  tx: Prisma.TransactionClient,
  doc: DocumentRef,
  pageNumber: number,
  pdfKey: string,
  facts: RenderedFacts,
): Promise<void> {
  await tx.page.upsert({
    where: { documentId_pageNumber: { documentId: doc.documentId, pageNumber } },
    create: { documentId: doc.documentId, pageNumber, pdfKey, state: "rendered", ...facts },
    update: { ...facts, failureCode: null, failureReason: null },
  });
  // Inference may already have marked the page done (it reacts to the upload).
  await tx.page.updateMany({
    where: { documentId: doc.documentId, pageNumber, state: { in: ["pending", "failed"] } },
    data: { state: "rendered" },
  });
  await tx.document.updateMany({
    where: { id: doc.documentId, state: { in: ["queued", "classified", "splitting"] } },
    data: { state: "converting" },
  });
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
