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

export interface InspectOptions extends NativeOptions {
  /** Documents with more pages than this fail with PdfError("too_many_pages"). @defaultValue no limit */
  maxPages?: number;
}

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
 */
export async function inspectPdf(path: string, opts: InspectOptions = {}): Promise<PdfInfo> {
  const sizeBytes = await checkPdfMagic(path);
  if (sizeBytes > MAX_MUPDF_FILE_BYTES) {
    const { pageCount, repaired } = await nativeInspect(path, sizeBytes, opts);
    checkPageLimit(pageCount, opts, path);
    return { pageCount, repaired, sizeBytes };
  }
  const doc = openPdf(path);
  try {
    if (doc.needsPassword()) throw new PdfError("encrypted", "the PDF needs a password", { path });
    let pageCount: number;
    try {
      pageCount = doc.countPages();
    } catch (e) {
      throw new PdfError("corrupt", `cannot count pages: ${errorText(e)}`, { path, cause: e });
    }
    if (pageCount < 1) throw new PdfError("corrupt", "the PDF has no pages", { path });
    checkPageLimit(pageCount, opts, path);
    return { pageCount, repaired: doc.wasRepaired(), sizeBytes };
  } finally {
    doc.destroy();
  }
}

function checkPageLimit(pageCount: number, opts: InspectOptions, path: string): void {
  if (opts.maxPages !== undefined && pageCount > opts.maxPages) {
    throw new PdfError("too_many_pages", `${pageCount} pages is over the limit of ${opts.maxPages}`, { path });
  }
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Receives mupdf's warnings and errors (e.g. "repairing PDF document"). */
export type MupdfLog = (level: "warning" | "error", message: string) => void;

/**
 * Routes this thread's mupdf messages to `log` (e.g. a pino child logger), drops them
 * ("silent"), or restores mupdf's default of printing them to stderr ("stderr"). Each worker
 * thread has its own mupdf; RenderPool takes `onMupdfLog` for its workers.
 */
export function setMupdfLog(log: MupdfLog | "silent" | "stderr"): void {
  if (log === "stderr") mupdf.setLog(null);
  else if (log === "silent") mupdf.setLog({});
  else mupdf.setLog({ warning: (m) => log("warning", m), error: (m) => log("error", m) });
}
