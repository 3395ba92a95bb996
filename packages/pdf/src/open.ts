import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { open as openAsync } from "node:fs/promises";
import * as mupdf from "mupdf";
import { PdfError } from "./errors.js";
import { nativeInspect, type NativeOptions } from "./native.js";

/**
 * mupdf's WASM build passes stream positions to JavaScript as signed 32-bit integers, so any
 * byte at or beyond 2 GiB is unreachable (it reads at position -2^31 and then "repairs" the file
 * into nonsense). Refuse such files up front with a clear reason instead.
 */
export const MAX_MUPDF_FILE_BYTES = 2 ** 31 - 1;

const MAGIC = Buffer.from("%PDF-", "latin1");
const MAGIC_WINDOW = 1024;

/** Throws PdfError("not_pdf") unless `%PDF-` occurs in the first 1024 bytes. Returns the size. */
export async function checkPdfMagic(path: string): Promise<number> {
  const fh = await openAsync(path, "r");
  try {
    const { size } = await fh.stat();
    if (size === 0) throw new PdfError("not_pdf", "file is empty", { path });
    const head = Buffer.alloc(Math.min(MAGIC_WINDOW, size));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (head.subarray(0, bytesRead).indexOf(MAGIC) < 0) {
      throw new PdfError("not_pdf", "no %PDF- header in the first 1024 bytes", { path });
    }
    return size;
  } finally {
    await fh.close();
  }
}

/**
 * Opens a PDF for random access through a file descriptor: mupdf pulls the byte ranges it needs,
 * so memory does not grow with the file size. The caller owns the document and must call
 * `.destroy()` on it (that also closes the descriptor).
 *
 * Throws PdfError("file_too_large") for files of 2 GiB or more (see MAX_MUPDF_FILE_BYTES) and
 * PdfError("corrupt") when mupdf cannot open it. It does not check the magic bytes or the
 * password; use inspectPdf for that.
 */
export function openPdf(path: string): mupdf.PDFDocument {
  const fd = openSync(path, "r");
  let size: number;
  try {
    size = fstatSync(fd).size;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  if (size > MAX_MUPDF_FILE_BYTES) {
    closeSync(fd);
    throw new PdfError("file_too_large", `file is ${size} bytes; mupdf (WASM) can address at most 2 GiB`, {
      path,
    });
  }
  let closed = false;
  const stream = new mupdf.Stream({
    fileSize: () => size,
    read: (memory, offset, length, position) => {
      if (position < 0 || position >= size) return 0;
      return readSync(fd, memory, offset, length, position);
    },
    close: () => {
      if (!closed) {
        closed = true;
        closeSync(fd);
      }
    },
  });
  try {
    const doc = mupdf.Document.openDocument(stream, "application/pdf");
    const pdf = doc.asPDF();
    if (!pdf) {
      doc.destroy();
      throw new PdfError("corrupt", "mupdf did not open the file as a PDF", { path });
    }
    return pdf;
  } catch (e) {
    if (e instanceof PdfError) throw e;
    throw new PdfError("corrupt", `mupdf cannot open the file: ${errorText(e)}`, { path, cause: e });
  } finally {
    // The document holds its own reference to the stream; ours only has to go. The descriptor
    // closes when the last reference (the document's) is dropped.
    stream.destroy();
  }
}

/** Limits that refuse a document before it costs a worker time or memory. */
export interface DocumentLimits extends NativeOptions {
  /**
   * Refuse (PdfError "too_many_pages") a document with more pages than this. Checked against
   * the page tree's claim before any page is looked at. @defaultValue no limit
   */
  maxPages?: number;
  /** Refuse (PdfError "file_too_large") a file larger than this many bytes. @defaultValue no limit */
  maxBytes?: number;
}

export type InspectOptions = DocumentLimits;

export interface PdfInfo {
  pageCount: number;
  /** mupdf had to rebuild a broken cross-reference table to read the file. */
  repaired: boolean;
  sizeBytes: number;
}

/**
 * Tells whether a file is a PDF this pipeline can process, without loading it into memory.
 * Every failure is a permanent PdfError: not_pdf, encrypted, corrupt, too_many_pages, and
 * file_too_large for a file of 2 GiB or more when native mutool is unavailable or disabled.
 *
 * The work is bounded by the file, not by what it claims: a page tree's /Count is checked
 * against maxPages before anything is walked, mupdf itself refuses a /Count larger than the
 * number of objects in the file, and the page tree walk that follows visits each object once.
 */
export async function inspectPdf(path: string, opts: InspectOptions = {}): Promise<PdfInfo> {
  const sizeBytes = await checkPdfMagic(path);
  checkByteLimit(sizeBytes, opts.maxBytes, path);
  if (sizeBytes > MAX_MUPDF_FILE_BYTES) {
    const { pageCount, repaired } = await nativeInspect(path, sizeBytes, opts);
    checkPageLimit(pageCount, opts.maxPages, path);
    return { pageCount, repaired, sizeBytes };
  }
  const doc = openPdf(path);
  try {
    if (doc.needsPassword()) throw new PdfError("encrypted", "the PDF needs a password", { path });
    const pageCount = checkedPageCount(doc, { path, maxPages: opts.maxPages, verifyPages: true });
    return { pageCount, repaired: doc.wasRepaired(), sizeBytes };
  } finally {
    doc.destroy();
  }
}

export function checkByteLimit(sizeBytes: number, maxBytes: number | undefined, path?: string): void {
  if (maxBytes !== undefined && sizeBytes > maxBytes) {
    throw new PdfError("file_too_large", `file is ${sizeBytes} bytes, over the limit of ${maxBytes}`, { path });
  }
}

export function checkPageLimit(pageCount: number, maxPages: number | undefined, path?: string): void {
  if (maxPages !== undefined && pageCount > maxPages) {
    throw new PdfError("too_many_pages", `${pageCount} pages is over the limit of ${maxPages}`, { path });
  }
}

/** The /Count the document's page tree claims, read without trusting it. */
function claimedPageCount(doc: mupdf.PDFDocument): number | undefined {
  try {
    const count = doc.getTrailer().get("Root", "Pages", "Count");
    return count.isNumber() ? count.asNumber() : undefined;
  } catch {
    return undefined;
  }
}

const MISSING_LISTED = 5;

/**
 * Walks the page tree once, in page order: the number of leaves and the (1-based) positions of
 * those that are not dictionaries, i.e. objects the file does not hold. One pass over the Kids
 * arrays, each intermediate node visited at most once, so a cycle or a shared node cannot make
 * it loop; an explicit stack, so a deep tree cannot overflow. (Asking mupdf page by page is
 * quadratic on a flat tree it failed to load.)
 */
function walkPageTree(doc: mupdf.PDFDocument): { pages: number; missing: number[] } {
  const root = doc.getTrailer().get("Root", "Pages");
  const rootKids = root.get("Kids");
  if (!rootKids.isArray()) return { pages: 0, missing: [] };
  const seen = new Set<number>();
  if (root.isIndirect()) seen.add(root.asIndirect());
  const stack = [{ kids: rootKids, next: 0, length: rootKids.length }];
  const missing: number[] = [];
  let pages = 0;
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next >= top.length) {
      stack.pop();
      continue;
    }
    const kid = top.kids.get(top.next++);
    const kids = kid.isDictionary() ? kid.get("Kids") : undefined;
    if (kids?.isArray() && kid.get("Type").asName() !== "Page") {
      if (kid.isIndirect()) {
        const num = kid.asIndirect();
        if (seen.has(num)) continue;
        seen.add(num);
      }
      stack.push({ kids, next: 0, length: kids.length });
    } else {
      pages++;
      if (!kid.isDictionary()) missing.push(pages);
    }
  }
  return { pages, missing };
}

/**
 * The number of pages of an open document, checked against what the file really holds:
 * - the page tree's claimed /Count is checked against maxPages first (too_many_pages), before
 *   any page is looked at, so a claim of a billion pages costs nothing;
 * - mupdf refuses a /Count at or above the number of objects in the file ("Invalid number of
 *   pages"): that is a lie, so corrupt;
 * - loading the first page makes mupdf walk the page tree once and, when the tree is sound,
 *   replace a /Count that overstates the pages by the number it found;
 * - with verifyPages, every page must be a dictionary: a truncated file keeps a page tree
 *   naming objects that were cut off, which mupdf would otherwise render as blank pages.
 */
export function checkedPageCount(
  doc: mupdf.PDFDocument,
  opts: { path?: string | undefined; maxPages?: number | undefined; verifyPages?: boolean } = {},
): number {
  const { path, maxPages } = opts;
  let claimed: number;
  try {
    claimed = doc.countPages();
  } catch (e) {
    const raw = claimedPageCount(doc);
    if (raw === undefined) throw new PdfError("corrupt", `cannot count pages: ${errorText(e)}`, { path, cause: e });
    checkPageLimit(raw, maxPages, path);
    throw new PdfError(
      "corrupt",
      `the page tree claims ${raw} pages, more than the ${doc.countObjects()} objects in the file can hold`,
      { path, cause: e },
    );
  }
  checkPageLimit(claimed, maxPages, path);
  if (claimed < 1) throw new PdfError("corrupt", "the PDF has no pages", { path });
  let count: number;
  try {
    doc.loadPage(0).destroy();
    count = doc.countPages();
  } catch (e) {
    throw new PdfError("corrupt", `cannot read the page tree: ${errorText(e)}`, { path, cause: e });
  }
  if (count < 1) throw new PdfError("corrupt", "the PDF has no pages", { path });
  if (opts.verifyPages) {
    const tree = walkPageTree(doc);
    if (tree.missing.length > 0) {
      const listed =
        tree.missing.slice(0, MISSING_LISTED).join(", ") + (tree.missing.length > MISSING_LISTED ? ", ..." : "");
      throw new PdfError(
        "corrupt",
        `${tree.missing.length} of ${tree.pages} pages are missing from the file (pages ${listed}): truncated or damaged`,
        { path },
      );
    }
    if (tree.pages !== count) {
      // mupdf could not make sense of the tree either (it keeps /Count when its own walk
      // fails): some pages would be unreachable or phantom.
      throw new PdfError("corrupt", `the page tree says ${count} pages but holds ${tree.pages}`, { path });
    }
  }
  return count;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Receives mupdf's warnings and errors (e.g. "repairing PDF document"). */
export type MupdfLog = (level: "warning" | "error", message: string) => void;

// mupdf has one log per thread. This module owns it, so that renderDocPage can see the
// messages of one page while they still reach the sink chosen with setMupdfLog.
let sink: MupdfLog | "silent" | "stderr" = "stderr";
let installed = false;
let capture: string[] | undefined;
let muted = false;

function dispatch(level: "warning" | "error", message: string): void {
  if (muted) return;
  capture?.push(message);
  if (sink === "stderr") process.stderr.write(`${level}: ${message}\n`);
  else if (sink !== "silent") sink(level, message);
}

function installLog(): void {
  if (installed) return;
  installed = true;
  mupdf.setLog({ warning: (m) => dispatch("warning", m), error: (m) => dispatch("error", m) });
}

/**
 * Routes this thread's mupdf messages to `log` (e.g. a pino child logger), drops them
 * ("silent"), or restores mupdf's default of printing them to stderr ("stderr"). Each worker
 * thread has its own mupdf; RenderPool takes `onMupdfLog` for its workers.
 */
export function setMupdfLog(log: MupdfLog | "silent" | "stderr"): void {
  sink = log;
  if (log !== "stderr") installLog();
}

const NOT_A_PDF = new Uint8Array(Buffer.from("%PDF-1.0\n"));

/**
 * mupdf drops a warning identical to the one before it (counting it as "repeated"), across
 * pages and documents: a second damaged page would go unnoticed. Opening a scrap of bytes
 * makes it print different warnings, so the next one is new again. About 0.5 ms.
 */
function resetRepeatedWarnings(): void {
  muted = true;
  try {
    mupdf.Document.openDocument(NOT_A_PDF, "application/pdf").destroy();
  } catch {
    // Expected: the scrap has no objects.
  } finally {
    muted = false;
  }
}

/** Runs fn and returns the mupdf warnings and errors it caused (they still reach the sink too). */
export function captureMupdfLog<T>(fn: () => T): { result: T; messages: string[] } {
  installLog();
  resetRepeatedWarnings();
  const messages: string[] = [];
  const outer = capture;
  capture = messages;
  try {
    return { result: fn(), messages };
  } finally {
    capture = outer;
    outer?.push(...messages);
  }
}
