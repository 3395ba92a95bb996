import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { admitDocumentPages } from "@docpipe/api-keys";
import type { PrismaClient } from "@docpipe/db";
import { PdfError, type PdfPool, type RenderPool, type RenderResult } from "@docpipe/pdf";
import {
  coerceError,
  downloadToFile,
  failureReason,
  imageKey,
  pageKey,
  PermanentError,
  TransientError,
  uploadFile,
  type StageScope,
  type DocumentRef,
  intermediateTags,
  batchSettings,
  logEngineMessages,
  renderedFacts,
  type DamagedPagePolicy,
  recordPageFailed,
  recordPageRendered,
  recordPageSplit,
  classByPageCount,
  isLargeBySize,
  type ClassifyThresholds,
} from "@docpipe/queue";

/** A file in S3 to break down to pages and PNGs, and how its pages map onto the document. */
export interface BreakdownJob extends DocumentRef {
  bucket: string;
  key: string;
  /**
   * - `document`: the whole original (ingest and large DLQs): records pageCount, and for an
   *   ingest message the class, as the orchestrator would have.
   * - `range`: pages firstPage..lastPage of the document (small DLQ: a chunk, or a small original).
   * - `page`: one page, already its own PDF, kept as the page's pdfKey (single-page DLQ).
   */
  kind: "document" | "range" | "page";
  firstPage: number;
  lastPage?: number;
  /** Set for ingest messages: the class was never decided. */
  classify?: boolean;
}

export interface BreakdownDeps {
  prisma: PrismaClient;
  s3: S3Client;
  /** The render pool, built on first use. */
  pool: () => RenderPool;
  /**
   * The pool that opens and splits documents, built on first use. Not the render pool: a split
   * holds its worker while it renders each page in the render pool.
   */
  splitPool: () => PdfPool;
  workBucket: string;
  dpi: number;
  maxPixels: number;
  renderTimeoutMs: number;
  maxPages: number;
  thresholds: ClassifyThresholds;
}

export interface BreakdownResult {
  pages: number;
  rendered: number;
  /** Pages the normal path had already rendered (or scored): left as they are. */
  skipped: number;
  failed: { pageNumber: number; code: string; reason: string }[];
}

/**
 * Breaks a document (or a chunk, or a page) down to single-page PDFs and PNGs in this one
 * process: the slow, sure path, with no queue in between. Keys and rows are the normal
 * path's (pages/{n}.pdf, images/{n}.png, the Page row with its facts), pages already
 * rendered are left alone, and each PNG upload triggers inference as usual. A page that
 * cannot be rendered fails alone; the caller fails the document.
 */
export async function breakDown(deps: BreakdownDeps, job: BreakdownJob, a: StageScope): Promise<BreakdownResult> {
  const { prisma, s3 } = deps;
  const doc: DocumentRef = { batchId: job.batchId, documentId: job.documentId };
  const dir = await a.dir();
  const result: BreakdownResult = { pages: 0, rendered: 0, skipped: 0, failed: [] };
  const src = join(dir, "source.pdf");
  const bytes = await downloadToFile(s3, job.bucket, job.key, src);
  const [info, batch] = await Promise.all([deps.splitPool().inspect(src, { maxPages: deps.maxPages }), batchSettings(prisma, job.batchId)]);
  const { pageCount } = info;
  const policy = batch?.onDamagedPage ?? "flag";
  if (info.warnings.length > 0) a.log.debug({ engine: info.engine, warnings: info.warnings }, "pdf engine messages while opening");
  if (job.lastPage !== undefined && pageCount !== job.lastPage - job.firstPage + 1) {
    throw new PermanentError(
      "page_count_mismatch",
      `s3://${job.bucket}/${job.key} has ${pageCount} pages, the message names pages ${job.firstPage}-${job.lastPage}`,
    );
  }
  result.pages = pageCount;

  let kind = job.kind;
  if (job.kind === "document") {
    const large = isLargeBySize(bytes, deps.thresholds);
    const cls = large ? "large" : classByPageCount(pageCount, deps.thresholds);
    // The normal path renders a one-page document under the size limit from its own key.
    if (job.classify && cls === "single") kind = "page";
    // Its first count when the normal path never got that far: charged to the key's page quota like theirs.
    const pages = await admitDocumentPages(prisma, doc.documentId, pageCount);
    if (!pages.admitted) throw new PermanentError(pages.code, pages.reason);
    await prisma.document.updateMany({ where: { id: doc.documentId, size: null }, data: { size: BigInt(bytes) } });
    if (job.classify) await prisma.document.updateMany({ where: { id: doc.documentId, class: null }, data: { class: cls } });
  }
  await prisma.document.updateMany({ where: { id: doc.documentId, state: { in: ["queued", "classified"] } }, data: { state: "splitting" } });

  // The page: its file, or its bytes (moved to the render thread once uploaded).
  const renderOne = async (pageNumber: number, page: string | Uint8Array, pdfKey: string, upload: boolean): Promise<void> => {
    a.throwIfStopping();
    const where = { documentId_pageNumber: { documentId: doc.documentId, pageNumber } };
    const existing = await prisma.page.findUnique({ where, select: { state: true, imageKey: true } });
    // The PNG is uploaded before the row gets its imageKey, so a row with one means the PNG is there. A done
    // row without one was scored from a PNG whose converter died before writing the row: render it again
    // for its facts, as the converter's claim does (the page stays done).
    if (existing?.imageKey && (existing.state === "done" || existing.state === "rendered")) {
      result.skipped++;
      return;
    }
    if (upload) {
      await uploadFile(s3, deps.workBucket, pdfKey, page, "application/pdf", { tags: intermediateTags("page") });
      await recordPageSplit(prisma, doc, pageNumber, pdfKey);
    }
    const started = performance.now();
    let png: RenderResult;
    try {
      png = await render(deps, page, pageNumber, policy);
    } catch (e) {
      if (!(e instanceof PermanentError)) throw e;
      const reason = failureReason(e);
      await a.commitPage(pageNumber, { outcome: "failed", error: { code: e.code, message: reason } }, (tx) =>
        recordPageFailed(tx, doc, pageNumber, { code: e.code, reason, pdfKey }),
      );
      result.failed.push({ pageNumber, code: e.code, reason });
      a.log.warn({ pageNumber, errorCode: e.code }, "page cannot be rendered, even by the failsafe");
      return;
    }
    const renderMs = Math.round(performance.now() - started);
    const key = imageKey(doc, pageNumber);
    // This upload is what triggers inference (S3 notification), so it comes after a good render only.
    await uploadFile(s3, deps.workBucket, key, png.png, "image/png");
    const facts = renderedFacts(key, png, renderMs);
    logEngineMessages(a.log.child({ pageNumber }), png);
    await a.commitPage(pageNumber, { outcome: "succeeded", durationMs: renderMs, details: { ...facts, pdfKey } }, (tx) =>
      recordPageRendered(tx, doc, pageNumber, pdfKey, facts),
    );
    if (facts.degraded) a.metrics.count("DegradedPages");
    result.rendered++;
  };

  if (kind === "page") {
    await renderOne(job.firstPage, src, job.key, false);
  } else {
    // Pages come back from the worker in memory, at most two at a time: no page file.
    for await (const piece of deps.splitPool().splitPieces(src, { dir: join(dir, "pages"), pagesPerChunk: 1, maxPages: deps.maxPages })) {
      const pageNumber = job.firstPage + piece.first - 1;
      await renderOne(pageNumber, piece.bytes, pageKey(doc, pageNumber), true);
    }
  }
  return result;
}

/** Renders page 1 of a one-page PDF; permanent problems (and a timeout: this is the last try) fail the page. */
async function render(deps: BreakdownDeps, page: string | Uint8Array, pageNumber: number, policy: DamagedPagePolicy): Promise<RenderResult> {
  try {
    return await deps.pool().render(page, 0, {
      dpi: deps.dpi,
      maxPixels: deps.maxPixels,
      timeoutMs: deps.renderTimeoutMs,
      rejectDamaged: policy === "fail",
    });
  } catch (e) {
    if (e instanceof PdfError) {
      if (e.permanent) throw new PermanentError(e.code, `page ${pageNumber} cannot be rendered: ${e.message}`, { cause: e, pageNumber });
      if (e.code === "timeout") throw new PermanentError("render_timeout", `page ${pageNumber}: ${e.message}`, { cause: e, pageNumber });
      throw new TransientError(`render_${e.code}`, `page ${pageNumber}: ${e.message}`, { cause: e, pageNumber });
    }
    // A RangeError: the file has no page to render, so it is not the one-page PDF it should be.
    if (e instanceof RangeError) throw new PermanentError("corrupt", `page ${pageNumber}: ${e.message}`, { cause: e, pageNumber });
    throw new TransientError("render_failed", `page ${pageNumber}: ${coerceError(e).message}`, { cause: e, pageNumber });
  }
}
