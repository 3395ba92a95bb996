import { writeFileSync } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
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

/** One chunk split off in memory (PdfPool.splitPieces): pages first..last (1-based, inclusive) as a PDF's bytes. */
export interface SplitPiece {
  first: number;
  last: number;
  bytes: Uint8Array;
  /** Pages in the source document. */
  totalPages: number;
}

export interface SplitOptions extends DocumentLimits {
  /** Directory for chunk files; created if missing. Split in memory, only a file read by native mutool writes there. */
  dir: string;
  /** Pages per chunk. @defaultValue 10 */
  pagesPerChunk?: number;
  /** Leave chunk files on disk instead of deleting each once the consumer moves on. @defaultValue false */
  keepFiles?: boolean;
  /** Start at this 1-based page (to resume a partly split document). @defaultValue 1 */
  fromPage?: number;
}

/**
 * Copies pages first..last (1-based, inclusive) of `doc` into a new PDF and hands its bytes to
 * `take`. Only the objects those pages reach are copied (fonts, images, inherited resources), one
 * chunk in memory at a time. The bytes are a view into the WASM heap, which any later mupdf call
 * may grow (and so detach): `take` writes or copies them before it returns.
 */
function withRange<T>(doc: mupdf.PDFDocument, first: number, last: number, take: (bytes: Uint8Array) => T): T {
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
    return take(bytes.asUint8Array());
  } finally {
    bytes?.destroy();
    map.destroy();
    out.destroy();
  }
}

/** withRange for one chunk of a split: decoded fonts and images cached while copying are of no use to the next. */
function chunkOf<T>(doc: mupdf.PDFDocument, first: number, last: number, take: (bytes: Uint8Array) => T): T {
  try {
    return withRange(doc, first, last, take);
  } finally {
    mupdf.emptyStore();
  }
}

const writeTo = (path: string) => (bytes: Uint8Array) => writeFileSync(path, bytes);
// A copy of its own, which can move between threads.
const copy = (bytes: Uint8Array) => bytes.slice();

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
      writeFileSync(outPath, pdfium.pagesBytes(first, last));
    });
    return;
  }
  try {
    withRange(doc, first, last, writeTo(outPath));
  } finally {
    doc.destroy();
  }
}

/** A document open for splitting, by whichever engine opened it (see openSplitSource). */
export interface SplitSource {
  /** Pages in the document, every one checked to exist. */
  total: number;
  /** Pages first..last (1-based, inclusive) as a new PDF's bytes. */
  piece(first: number, last: number): Uint8Array | Promise<Uint8Array>;
  /** The same pages written to outPath, when the engine can write them without a copy in between. */
  write?(first: number, last: number, outPath: string): void;
  /** piece runs elsewhere (a worker): the next chunk is made while the consumer handles this one. */
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
    return { total: pdfium.pageCount, piece: (first, last) => pdfium.pagesBytes(first, last), destroy: () => pdfium.destroy() };
  }
  const opened = doc;
  return {
    total,
    piece: (first, last) => chunkOf(opened, first, last, copy),
    write: (first, last, path) => chunkOf(opened, first, last, writeTo(path)),
    destroy: () => opened.destroy(),
  };
}

/**
 * Splits src into files of at most `pagesPerChunk` pages, yielding one at a time. Unless
 * `keepFiles` is set, each chunk file is deleted when the consumer asks for the next one (or
 * stops iterating), so disk use stays at one chunk; the source is read through a file
 * descriptor and each chunk's objects are freed before the next, so memory stays flat however
 * large the source is. Runs on the calling thread; PdfPool.splitPieces runs it in a worker, with
 * the chunks in memory rather than in files.
 */
export function splitChunks(src: string, opts: SplitOptions): AsyncGenerator<SplitChunk, void, undefined> {
  return splitChunksWith(src, opts, openSplitSource);
}

type OpenSplit = (src: string, maxPages: number | undefined) => Promise<SplitSource>;

/** splitChunks with the document opened by `open` (on this thread, or in a worker). Files of 2 GiB or more go through native mutool. */
export async function* splitChunksWith(src: string, opts: SplitOptions, open: OpenSplit): AsyncGenerator<SplitChunk, void, undefined> {
  await mkdir(opts.dir, { recursive: true });
  const at = (first: number, last: number) => join(opts.dir, `${first}-${last}.pdf`);
  const pieces = splitWith<string>(src, opts, open, {
    native: async (write, first, last) => {
      await write(at(first, last));
      return at(first, last);
    },
    piece: async (source, first, last) => {
      if (source.write) source.write(first, last, at(first, last));
      else await writeFile(at(first, last), await source.piece(first, last));
      return at(first, last);
    },
    drop: (path) => (opts.keepFiles ? undefined : rm(path, { force: true })),
  });
  for await (const { first, last, value, totalPages } of pieces) yield { first, last, path: value, totalPages };
}

/**
 * splitChunksWith without chunk files: each chunk comes back as its bytes. A file of 2 GiB or
 * more still goes through native mutool, whose chunk file (under opts.dir) is read and removed.
 */
export async function* splitPiecesWith(src: string, opts: SplitOptions, open: OpenSplit): AsyncGenerator<SplitPiece, void, undefined> {
  const pieces = splitWith<Uint8Array>(src, opts, open, {
    native: async (write, first, last) => {
      await mkdir(opts.dir, { recursive: true });
      const path = join(opts.dir, `${first}-${last}.pdf`);
      try {
        await write(path);
        return new Uint8Array(await readFile(path));
      } finally {
        await rm(path, { force: true });
      }
    },
    piece: (source, first, last) => source.piece(first, last),
  });
  for await (const { first, last, value, totalPages } of pieces) yield { first, last, bytes: value, totalPages };
}

interface Makers<T> {
  /** A chunk of a file read natively: `write` has mutool write it to a path. */
  native: (write: (path: string) => Promise<void>, first: number, last: number) => Promise<T>;
  /** A chunk made by the open SplitSource. */
  piece: (source: SplitSource, first: number, last: number) => T | Promise<T>;
  /** Called when the consumer moves on from a chunk (or stops). */
  drop?: (value: T) => Promise<void> | undefined;
}

async function* splitWith<T>(
  src: string,
  opts: SplitOptions,
  open: OpenSplit,
  make: Makers<T>,
): AsyncGenerator<{ first: number; last: number; value: T; totalPages: number }, void, undefined> {
  const per = opts.pagesPerChunk ?? 10;
  if (!Number.isInteger(per) || per < 1) throw new RangeError(`pagesPerChunk must be a positive integer, got ${per}`);
  const { size } = await stat(src);
  checkByteLimit(size, opts.maxBytes, src);
  if (readsNatively(size, opts)) {
    const total = (await nativeInspect(src, size, opts)).pageCount;
    checkPageLimit(total, opts.maxPages, src);
    yield* chunks(total, per, opts.fromPage, (first, last) => make.native((path) => nativeSplitRange(src, size, first, last, path, opts), first, last), make.drop);
    return;
  }
  const source = await open(src, opts.maxPages);
  try {
    yield* chunks(source.total, per, opts.fromPage, (first, last) => make.piece(source, first, last), make.drop, source.ahead);
  } finally {
    await source.destroy();
  }
}

/**
 * Makes and yields the chunks of a document of `total` pages, one at a time. With `ahead`, the
 * next chunk is being made (elsewhere: a worker thread) while the consumer handles this one, so
 * at most two chunks exist at once.
 */
async function* chunks<T>(
  total: number,
  per: number,
  fromPage: number | undefined,
  make: (first: number, last: number) => T | Promise<T>,
  drop: ((value: T) => Promise<void> | undefined) | undefined,
  ahead = false,
): AsyncGenerator<{ first: number; last: number; value: T; totalPages: number }, void, undefined> {
  const start = fromPage ?? 1;
  if (start > total) return;
  checkRange(start, start, total);
  const lastOf = (first: number) => Math.min(total, first + per - 1);
  const begin = (first: number) => {
    const made = Promise.resolve().then(() => make(first, lastOf(first)));
    // Awaited when its turn comes, or in the finally below: never unhandled.
    made.catch(() => undefined);
    return made;
  };
  let next: Promise<T> | undefined = ahead ? begin(start) : undefined;
  try {
    for (let first = start; first <= total; first += per) {
      const last = lastOf(first);
      let value: T;
      if (next) {
        value = await next;
        next = last < total ? begin(last + 1) : undefined;
      } else {
        value = await make(first, last);
      }
      try {
        yield { first, last, value, totalPages: total };
      } finally {
        await drop?.(value);
      }
    }
  } finally {
    // A chunk made ahead that the consumer stopped before.
    if (next) {
      const value = await next.then(
        (v) => ({ v }),
        () => undefined,
      );
      if (value) await drop?.(value.v);
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
