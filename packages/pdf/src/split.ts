import { writeFileSync } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import * as mupdf from "mupdf";
import { PdfError } from "./errors.js";
import { openInPdfium, withPdfium } from "./fallback.js";
import { nativeInspect, nativeSplitRange, readsNatively } from "./native.js";
import {
  checkByteLimit,
  checkedPageCount,
  checkPageLimit,
  errorText,
  openPdf,
  type DocumentLimits,
} from "./open.js";

/** One chunk written by splitChunks: pages first..last (1-based, inclusive) of the source. */
export interface SplitChunk {
  first: number;
  last: number;
  path: string;
  /** Pages in the source document. */
  totalPages: number;
}

export interface SplitOptions extends DocumentLimits {
  /** Directory for chunk files; created if missing. */
  dir: string;
  /** Pages per chunk. @defaultValue 10 */
  pagesPerChunk?: number;
  /** Leave chunk files on disk instead of deleting each once the consumer moves on. @defaultValue false */
  keepFiles?: boolean;
  /** Start at this 1-based page (to resume a partly split document). @defaultValue 1 */
  fromPage?: number;
}

/**
 * Copies pages first..last (1-based, inclusive) of `doc` into a new PDF at outPath. Only the
 * objects those pages reach are copied (fonts, images, inherited resources), one chunk in
 * memory at a time.
 */
function writeRange(doc: mupdf.PDFDocument, first: number, last: number, outPath: string): void {
  const out = new mupdf.PDFDocument();
  const map = out.newGraftMap();
  let bytes: mupdf.Buffer | undefined;
  try {
    try {
      for (let p = first; p <= last; p++) map.graftPage(-1, doc, p - 1);
      bytes = out.saveToBuffer("");
    } catch (e) {
      throw new PdfError("corrupt", `cannot copy pages ${first}-${last}: ${errorText(e)}`, { cause: e });
    }
    // asUint8Array() is a view into the WASM heap, which any later mupdf call may grow (and so
    // detach); write it before yielding to the event loop rather than copying the chunk.
    writeFileSync(outPath, bytes.asUint8Array());
  } finally {
    bytes?.destroy();
    map.destroy();
    out.destroy();
  }
}

function checkRange(first: number, last: number, pageCount: number): void {
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last < first || last > pageCount) {
    throw new RangeError(`page range ${first}-${last} is outside 1-${pageCount}`);
  }
}

function openReadable(src: string): mupdf.PDFDocument {
  const doc = openPdf(src);
  if (doc.needsPassword()) {
    doc.destroy();
    throw new PdfError("encrypted", "the PDF needs a password", { path: src });
  }
  return doc;
}

function countPages(doc: mupdf.PDFDocument, src: string, maxPages: number | undefined): number {
  return checkedPageCount(doc, { path: src, maxPages, verifyPages: true });
}

/**
 * Writes pages first..last (1-based, inclusive) of src into a new PDF at outPath. Files of
 * 2 GiB or more (or of opts.nativeMinBytes) go through native mutool (see NativeOptions).
 */
export async function splitRange(
  src: string,
  first: number,
  last: number,
  outPath: string,
  opts: DocumentLimits = {},
): Promise<void> {
  const { size } = await stat(src);
  checkByteLimit(size, opts.maxBytes, src);
  if (readsNatively(size, opts)) {
    const { pageCount } = await nativeInspect(src, size, opts);
    checkPageLimit(pageCount, opts.maxPages, src);
    checkRange(first, last, pageCount);
    await nativeSplitRange(src, size, first, last, outPath, opts);
    return;
  }
  let doc: mupdf.PDFDocument | undefined;
  try {
    doc = openReadable(src);
    checkRange(first, last, countPages(doc, src, opts.maxPages));
  } catch (e) {
    doc?.destroy();
    if (e instanceof RangeError) throw e;
    await withPdfium(src, e, (pdfium) => {
      checkPageLimit(pdfium.pageCount, opts.maxPages, src);
      checkRange(first, last, pdfium.pageCount);
      pdfium.writePages(first, last, outPath);
    });
    return;
  }
  try {
    writeRange(doc, first, last, outPath);
  } finally {
    doc.destroy();
  }
}

/** A document open for splitting, by whichever engine opened it (see openSplitSource). */
export interface SplitSource {
  /** Pages in the document, every one checked to exist. */
  total: number;
  /** Writes pages first..last (1-based, inclusive) into a new PDF at outPath. */
  write(first: number, last: number, outPath: string): void | Promise<void>;
  /** write runs elsewhere (a worker): the next chunk is written while the consumer handles this one. */
  ahead?: boolean;
  destroy(): void | Promise<void>;
}

/**
 * Opens src (under 2 GiB) to be split: mupdf, or pdfium when mupdf refuses it. Every page is
 * checked to exist before the first chunk is written, so a truncated file fails at once as
 * corrupt instead of after some of its chunks have gone downstream.
 */
export async function openSplitSource(src: string, maxPages: number | undefined): Promise<SplitSource> {
  let doc: mupdf.PDFDocument | undefined;
  let total: number;
  try {
    doc = openReadable(src);
    total = countPages(doc, src, maxPages);
  } catch (e) {
    doc?.destroy();
    const pdfium = await openInPdfium(src, e);
    try {
      checkPageLimit(pdfium.pageCount, maxPages, src);
    } catch (limit) {
      pdfium.destroy();
      throw limit;
    }
    return { total: pdfium.pageCount, write: (first, last, path) => pdfium.writePages(first, last, path), destroy: () => pdfium.destroy() };
  }
  const opened = doc;
  return {
    total,
    write: (first, last, path) => {
      writeRange(opened, first, last, path);
      // Decoded fonts and images cached while copying are of no use to the next chunk.
      mupdf.emptyStore();
    },
    destroy: () => opened.destroy(),
  };
}

/**
 * Splits src into files of at most `pagesPerChunk` pages, yielding one at a time. Unless
 * `keepFiles` is set, each chunk file is deleted when the consumer asks for the next one (or
 * stops iterating), so disk use stays at one chunk; the source is read through a file
 * descriptor and each chunk's objects are freed before the next, so memory stays flat however
 * large the source is. Runs on the calling thread; PdfPool.splitChunks runs it in a worker.
 */
export function splitChunks(src: string, opts: SplitOptions): AsyncGenerator<SplitChunk, void, undefined> {
  return splitChunksWith(src, opts, openSplitSource);
}

/** splitChunks with the document opened by `open` (on this thread, or in a worker). Files of 2 GiB or more go through native mutool. */
export async function* splitChunksWith(
  src: string,
  opts: SplitOptions,
  open: (src: string, maxPages: number | undefined) => Promise<SplitSource>,
): AsyncGenerator<SplitChunk, void, undefined> {
  const per = opts.pagesPerChunk ?? 10;
  if (!Number.isInteger(per) || per < 1) throw new RangeError(`pagesPerChunk must be a positive integer, got ${per}`);
  await mkdir(opts.dir, { recursive: true });
  const { size } = await stat(src);
  checkByteLimit(size, opts.maxBytes, src);
  if (readsNatively(size, opts)) {
    const total = (await nativeInspect(src, size, opts)).pageCount;
    checkPageLimit(total, opts.maxPages, src);
    yield* chunks(total, per, opts, (first, last, path) => nativeSplitRange(src, size, first, last, path, opts));
    return;
  }
  const source = await open(src, opts.maxPages);
  try {
    yield* chunks(source.total, per, opts, (first, last, path) => source.write(first, last, path), source.ahead);
  } finally {
    await source.destroy();
  }
}

/**
 * Writes and yields the chunks of a document of `total` pages, one at a time, with `write`. With
 * `ahead`, the next chunk is being written (elsewhere: a worker thread) while the consumer handles
 * this one, so at most two chunk files exist at once.
 */
async function* chunks(
  total: number,
  per: number,
  opts: SplitOptions,
  write: (first: number, last: number, path: string) => void | Promise<void>,
  ahead = false,
): AsyncGenerator<SplitChunk, void, undefined> {
  const start = opts.fromPage ?? 1;
  if (start > total) return;
  checkRange(start, start, total);
  const range = (first: number) => {
    const last = Math.min(total, first + per - 1);
    return { first, last, path: join(opts.dir, `${first}-${last}.pdf`) };
  };
  const begin = (first: number) => {
    const r = range(first);
    const written = Promise.resolve().then(() => write(r.first, r.last, r.path));
    // Awaited when its turn comes, or in the finally below: never unhandled.
    written.catch(() => undefined);
    return { ...r, written };
  };
  let next: ReturnType<typeof begin> | undefined = ahead ? begin(start) : undefined;
  try {
    for (let first = start; first <= total; first += per) {
      const { last, path } = range(first);
      if (next) {
        await next.written;
        next = last < total ? begin(last + 1) : undefined;
      } else {
        await write(first, last, path);
      }
      try {
        yield { first, last, path, totalPages: total };
      } finally {
        if (!opts.keepFiles) await rm(path, { force: true });
      }
    }
  } finally {
    // A chunk written ahead that the consumer stopped before.
    if (next) {
      await next.written.catch(() => undefined);
      if (!opts.keepFiles) await rm(next.path, { force: true });
    }
  }
}

/** Callback form of splitChunks: `onChunk` runs (and may upload the file) before the next chunk is written. */
export async function splitIntoChunks(
  src: string,
  onChunk: (chunk: SplitChunk) => Promise<void>,
  opts: SplitOptions,
): Promise<number> {
  let chunks = 0;
  for await (const chunk of splitChunks(src, opts)) {
    await onChunk(chunk);
    chunks++;
  }
  return chunks;
}

/** Splits src into single-page PDFs; `onPage` gets the 1-based page number and the file's path. */
export async function splitPages(
  src: string,
  onPage: (pageNumber: number, path: string) => Promise<void>,
  opts: Omit<SplitOptions, "pagesPerChunk">,
): Promise<number> {
  return splitIntoChunks(src, (chunk) => onPage(chunk.first, chunk.path), { ...opts, pagesPerChunk: 1 });
}
