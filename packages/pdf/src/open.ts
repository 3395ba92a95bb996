import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { open as openAsync } from "node:fs/promises";
import * as mupdf from "mupdf";
import { PdfError } from "./errors.js";
import { MAX_MUPDF_FILE_BYTES, nativeInspect, readsNatively, type NativeOptions } from "./native.js";
import { orphanPages, trustLeaves, walkPageTree, type PageTree } from "./page-tree.js";
import { withPdfium } from "./fallback.js";

export { MAX_MUPDF_FILE_BYTES };

const MAGIC = Buffer.from("%PDF-", "latin1");
const MAGIC_WINDOW = 1024;

/**
 * The file's size and whether `%PDF-` occurs in its first 1024 bytes. Only an empty file is
 * refused here (not_pdf): mupdf opens a PDF whose header is further in, or missing, by repairing
 * it, so a file without one is refused only when no engine can open it (see notPdfUnlessHeader).
 */
export async function sniffPdf(path: string): Promise<{ size: number; header: boolean }> {
  const fh = await openAsync(path, "r");
  try {
    const { size } = await fh.stat();
    if (size === 0) throw new PdfError("not_pdf", "file is empty", { path });
    const head = Buffer.alloc(Math.min(MAGIC_WINDOW, size));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return { size, header: head.subarray(0, bytesRead).indexOf(MAGIC) >= 0 };
  } finally {
    await fh.close();
  }
}

/** A file without a PDF header that no engine opens is not a PDF: the reason says so. */
export function notPdfUnlessHeader(e: unknown, header: boolean, path: string): unknown {
  if (header || !(e instanceof PdfError) || e.code === "file_too_large" || e.code === "too_many_pages") return e;
  return new PdfError("not_pdf", `no %PDF- header in the first 1024 bytes, and no engine can open it (${e.message})`, {
    path,
    cause: e,
  });
}

let failedOpens = 0;

/**
 * Files this thread's mupdf failed to open. Each failed open leaves mupdf.js 1.28's WASM
 * instance a little broken (see resetRepeatedWarnings), so a thread that has seen many should be
 * replaced: RenderPool's workers are, past FAILED_OPENS_BEFORE_RECYCLE.
 */
export function mupdfFailedOpens(): number {
  return failedOpens;
}

/** A PDF to open: the path of a file, or the file's bytes (held in memory: a page, a chunk). */
export type PdfSource = string | Uint8Array;

/** The path of a source read from a file, for error messages; bytes have none. */
export function pathOf(source: PdfSource): string | undefined {
  return typeof source === "string" ? source : undefined;
}

/**
 * Opens a PDF. From a path, it reads through a file descriptor: mupdf pulls the byte ranges it
 * needs, so memory does not grow with the file size. From bytes (a page or a chunk already in
 * memory), mupdf takes a copy and no file is touched. The caller owns the document and must call
 * `.destroy()` on it (that also closes the descriptor).
 *
 * Throws PdfError("file_too_large") for files of 2 GiB or more (see MAX_MUPDF_FILE_BYTES) and
 * PdfError("corrupt") when mupdf cannot open it. It does not check the magic bytes or the
 * password; use inspectPdf for that.
 */
export function openPdf(source: PdfSource): mupdf.PDFDocument {
  if (typeof source !== "string") {
    if (source.byteLength > MAX_MUPDF_FILE_BYTES) {
      throw new PdfError("file_too_large", `file is ${source.byteLength} bytes; mupdf (WASM) can address at most 2 GiB`);
    }
    // mupdf copies the bytes into its heap; the caller's array is not kept.
    return openDocument(source, undefined);
  }
  const path = source;
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
    return openDocument(stream, path);
  } finally {
    // The document holds its own reference to the stream; ours only has to go. The descriptor
    // closes when the last reference (the document's) is dropped.
    stream.destroy();
  }
}

function openDocument(from: mupdf.Stream | Uint8Array, path: string | undefined): mupdf.PDFDocument {
  try {
    const doc = mupdf.Document.openDocument(from, "application/pdf");
    const pdf = doc.asPDF();
    if (!pdf) {
      doc.destroy();
      throw new PdfError("corrupt", "mupdf did not open the file as a PDF", { path });
    }
    return pdf;
  } catch (e) {
    if (e instanceof PdfError) throw e;
    failedOpens++;
    throw new PdfError("corrupt", `mupdf cannot open the file: ${errorText(e)}`, { path, cause: e });
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

export type Engine = "mupdf" | "pdfium";

/** What opened a document: a render Engine, or native mutool for a file past mupdf (WASM)'s reach (see NativeOptions). */
export type OpeningEngine = Engine | "mutool";

export interface PdfInfo {
  pageCount: number;
  /** mupdf had to rebuild a broken cross-reference table to read the file. */
  repaired: boolean;
  sizeBytes: number;
  /** The engine that opened it: pdfium when mupdf cannot (see README, "Two engines"), mutool for a file read natively. */
  engine: OpeningEngine;
  /** What the engines said while opening it (mupdf's messages, why mupdf refused it), distinct. */
  warnings: string[];
}

/**
 * Tells whether a file is a PDF this pipeline can process, without loading it into memory
 * (pdfium, the fallback, holds files up to PDFIUM_MAX_BYTES in its heap). Every failure is a
 * permanent PdfError: not_pdf, encrypted, corrupt, too_many_pages, and file_too_large for a
 * file of 2 GiB or more when native mutool is unavailable or disabled.
 *
 * Opens like a viewer: mupdf first, pdfium when mupdf refuses it (corrupt, no pages, needs a
 * password: pdfium tries the empty one too). Pages are counted by the page tree's leaves, each
 * object visited once, so the count is bounded by the file, not by the /Count it claims.
 */
export async function inspectPdf(path: string, opts: InspectOptions = {}): Promise<PdfInfo> {
  const { size: sizeBytes, header } = await sniffPdf(path);
  checkByteLimit(sizeBytes, opts.maxBytes, path);
  if (readsNatively(sizeBytes, opts)) {
    const { pageCount, repaired } = await nativeInspect(path, sizeBytes, opts);
    checkPageLimit(pageCount, opts.maxPages, path);
    return { pageCount, repaired, sizeBytes, engine: "mutool", warnings: [] };
  }
  const messages: string[] = [];
  try {
    try {
      return captureMupdfLog(() => {
        const doc = openPdf(path);
        try {
          if (doc.needsPassword()) throw new PdfError("encrypted", "the PDF needs a password", { path });
          const pageCount = checkedPageCount(doc, { path, maxPages: opts.maxPages, verifyPages: true });
          return { pageCount, repaired: doc.wasRepaired(), sizeBytes, engine: "mupdf" as const, warnings: distinct(messages) };
        } finally {
          doc.destroy();
        }
      }, messages).result;
    } catch (e) {
      return await withPdfium(path, e, (pdfium) => {
        checkPageLimit(pdfium.pageCount, opts.maxPages, path);
        return {
          pageCount: pdfium.pageCount,
          repaired: false,
          sizeBytes,
          engine: "pdfium" as const,
          warnings: distinct([...messages, `mupdf: ${errorText(e)}`]),
        };
      });
    }
  } catch (e) {
    throw notPdfUnlessHeader(e, header, path);
  }
}

const MAX_WARNINGS = 20;

/** The distinct messages, in order, at most 20. */
export function distinct(messages: string[]): string[] {
  return [...new Set(messages)].slice(0, MAX_WARNINGS);
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

const MISSING_LISTED = 5;

// A document's page tree is walked once, however many pages are then drawn from it.
const counted = new WeakMap<mupdf.PDFDocument, { pages: number; missing: number[] }>();

/**
 * The number of pages of an open document, as a viewer counts them: the leaves of its page
 * tree, whatever /Count claims, so the count is bounded by the objects in the file.
 * - when /Count disagrees with the leaves (an overstated or absurd claim, a tree mupdf could not
 *   walk), the tree is rebuilt in memory from the leaves, so mupdf counts, loads and copies
 *   pages the same way;
 * - the leaves are checked against maxPages (too_many_pages);
 * - with verifyPages, every page must be a dictionary: a truncated file keeps a page tree naming
 *   objects that were cut off, which mupdf would otherwise render as blank pages (corrupt).
 */
export function checkedPageCount(
  doc: mupdf.PDFDocument,
  opts: { path?: string | undefined; maxPages?: number | undefined; verifyPages?: boolean } = {},
): number {
  const { path, maxPages } = opts;
  let known = counted.get(doc);
  if (!known) {
    known = countLeaves(doc, path);
    counted.set(doc, known);
  }
  checkPageLimit(known.pages, maxPages, path);
  if (opts.verifyPages && known.missing.length > 0) {
    const { missing } = known;
    const listed = missing.slice(0, MISSING_LISTED).join(", ") + (missing.length > MISSING_LISTED ? ", ..." : "");
    throw new PdfError(
      "corrupt",
      `${missing.length} of ${known.pages} pages are missing from the file (pages ${listed}): truncated or damaged`,
      { path },
    );
  }
  return known.pages;
}

function countLeaves(doc: mupdf.PDFDocument, path: string | undefined): { pages: number; missing: number[] } {
  let tree = walkPageTree(doc);
  // No leaf in the tree: the pages the file holds, as viewers recover them.
  if (tree.leaves.length === 0 && hasCatalog(doc)) tree = orphanPages(doc);
  let mupdfCount: number | undefined;
  try {
    mupdfCount = doc.countPages();
    // Loading a page makes mupdf walk the tree and correct an overstated /Count it can see through.
    if (mupdfCount > 0) {
      doc.loadPage(0).destroy();
      mupdfCount = doc.countPages();
    }
  } catch {
    // /Count is absurd (mupdf refuses one at or above the number of objects) or the tree is broken.
  }
  if (tree.leaves.length === 0) {
    // A tree the walk cannot read (no /Kids) that mupdf still makes pages of: mupdf knows better.
    if (mupdfCount !== undefined && mupdfCount > 0) return { pages: mupdfCount, missing: [] };
    throw new PdfError("corrupt", "the PDF has no pages", { path });
  }
  if (mupdfCount !== tree.leaves.length || !reachable(doc, tree)) {
    trustLeaves(doc, tree);
    let now: number | undefined;
    try {
      now = doc.countPages();
    } catch {
      // reported below
    }
    if (now !== tree.leaves.length) {
      throw new PdfError("corrupt", `the page tree holds ${tree.leaves.length} pages but mupdf counts ${now ?? "none"}`, { path });
    }
  }
  return { pages: tree.leaves.length, missing: tree.missing };
}

function hasCatalog(doc: mupdf.PDFDocument): boolean {
  try {
    return doc.getTrailer().get("Root").isDictionary();
  } catch {
    return false;
  }
}

/** mupdf finds the first and last leaves where the walk found them (a deep tree can defeat its lookup). */
function reachable(doc: mupdf.PDFDocument, tree: PageTree): boolean {
  const ends = [0, tree.leaves.length - 1];
  try {
    return ends.every((i) => !tree.leaves[i]!.isDictionary() || doc.findPage(i).isDictionary());
  } catch {
    return false;
  }
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Receives mupdf's warnings and errors (e.g. "repairing PDF document"). */
export type MupdfLog = (level: "warning" | "error", message: string) => void;

// mupdf has one log per thread. This module owns it, so that renderDocPage can see the
// messages of one page while they still reach the sink chosen with setMupdfLog.
// Silent by default: a library does not print. Callers capture messages per operation (they come
// back as `warnings`) or route them all to a logger with setMupdfLog.
let sink: MupdfLog | "silent" | "stderr" = "silent";
let installed = false;
let capture: string[] | undefined;
let muted = false;
// mupdf has said nothing since the last resetRepeatedWarnings: the warning it would drop as a
// repeat is still the scrap's.
let quietSinceReset = false;

function dispatch(level: "warning" | "error", message: string): void {
  if (muted) return;
  quietSinceReset = false;
  if (message.startsWith("... repeated")) return;
  capture?.push(message);
  if (sink === "stderr") process.stderr.write(`${level}: ${message}\n`);
  else if (sink !== "silent") sink(level, message);
}

function installLog(): void {
  if (installed) return;
  installed = true;
  mupdf.setLog({ warning: (m) => dispatch("warning", m), error: (m) => dispatch("error", m) });
}
// From the first import on, mupdf's messages go through dispatch: never straight to stderr.
installLog();

/**
 * Routes this thread's mupdf messages to `log` (e.g. a pino child logger), drops them
 * ("silent", the default), or prints them to stderr as mupdf's own tools do ("stderr"). Each
 * worker thread has its own mupdf; RenderPool takes `onMupdfLog` for its workers.
 */
export function setMupdfLog(log: MupdfLog | "silent" | "stderr"): void {
  sink = log;
  installLog();
}

// A PDF without an xref: mupdf repairs it, saying so, and opens it (no pages).
const SCRAP = Buffer.from("%PDF-1.0\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n", "latin1");

/**
 * mupdf drops a warning identical to the one before it (counting it as "repeated"), across
 * pages and documents: a second damaged page would go unnoticed. Opening a scrap that mupdf
 * repairs makes it print other warnings ("repairing PDF document"), so the next one is new
 * again. About 0.1 ms, skipped while mupdf has said nothing since the last time: a page that
 * draws without a word (most do) leaves nothing a later warning could repeat.
 *
 * The scrap must open: in mupdf.js 1.28 every open that fails leaves the WASM instance a little
 * broken, and a few hundred of them corrupt its heap ("memory access out of bounds", "exception
 * stack overflow!" on later, healthy files). See README, "Failed opens".
 */
function resetRepeatedWarnings(): void {
  if (quietSinceReset) return;
  muted = true;
  const scrap = new mupdf.Buffer(SCRAP);
  try {
    mupdf.Document.openDocument(scrap, "application/pdf").destroy();
    quietSinceReset = true;
  } finally {
    scrap.destroy();
    muted = false;
  }
}

/**
 * Runs fn and returns the mupdf warnings and errors it caused (they still reach the sink too).
 * They are also pushed to `into`, which keeps them when fn throws.
 */
export function captureMupdfLog<T>(fn: () => T, into: string[] = []): { result: T; messages: string[] } {
  installLog();
  resetRepeatedWarnings();
  const messages = into;
  const outer = capture;
  capture = messages;
  try {
    return { result: fn(), messages };
  } finally {
    capture = outer;
    outer?.push(...messages);
  }
}
