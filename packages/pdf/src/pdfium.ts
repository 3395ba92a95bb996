// pdfium (Chrome's PDF engine, WASM from @embedpdf/pdfium): the second engine, for what mupdf
// cannot open, finds no pages in, or draws only with damage. One instance per thread, loaded on
// first use. pdfium reads a document from its own heap, so it takes files up to PDFIUM_MAX_BYTES.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { createRequire } from "node:module";
import { init, type WrappedPdfiumModule } from "@embedpdf/pdfium";
import { PdfError } from "./errors.js";
import { fitPixels } from "./pixels.js";

/** Larger files are not given to pdfium: it holds the whole file in its WASM heap. */
export const PDFIUM_MAX_BYTES = 256 * 2 ** 20;

interface Heap {
  HEAPU8: Uint8Array;
  wasmExports: { malloc(size: number): number; free(ptr: number): void };
}

let loading: Promise<WrappedPdfiumModule> | undefined;
let loaded: WrappedPdfiumModule | undefined;

/** Loads this thread's pdfium (about 80 ms, once). */
export function loadPdfium(): Promise<WrappedPdfiumModule> {
  loading ??= (async () => {
    const wasm = readFileSync(createRequire(import.meta.url).resolve("@embedpdf/pdfium/pdfium.wasm"));
    const m = await init({ wasmBinary: wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength) as ArrayBuffer });
    m.PDFiumExt_Init();
    loaded = m;
    return m;
  })();
  return loading;
}

/** Bytes held by this thread's pdfium heap (0 before its first use). */
export function pdfiumHeapBytes(): number {
  return loaded ? heap(loaded).HEAPU8.buffer.byteLength : 0;
}

function heap(m: WrappedPdfiumModule): Heap {
  return m.pdfium as unknown as Heap;
}

// FPDF_GetLastError
const LOAD_ERRORS: Record<number, string> = {
  1: "unknown error",
  2: "file not found or unreadable",
  3: "not a PDF or corrupted",
  4: "password required or incorrect",
  5: "unsupported security scheme",
  6: "page not found or content error",
};

const FPDF_ANNOT = 0x01;
const FPDF_REVERSE_BYTE_ORDER = 0x10;
const FPDFBitmap_BGR = 2;
const FPDF_PAGEOBJ_IMAGE = 3;
const FPDF_PAGEOBJ_FORM = 5;
const MAX_FORM_DEPTH = 8;

export interface PdfiumRender {
  /** RGB, 3 bytes a pixel, rows of width × 3 bytes. */
  rgb: Uint8Array;
  width: number;
  height: number;
  dpi: number;
  /** What pdfium could not draw (images that do not decode); empty when the page drew cleanly. */
  problems: string[];
}

/** A document open in pdfium: its bytes and handle live in pdfium's heap until destroy(). */
export class PdfiumDocument {
  readonly pageCount: number;
  private constructor(
    private readonly m: WrappedPdfiumModule,
    private readonly handle: number,
    private readonly bytesPtr: number,
  ) {
    this.pageCount = m.FPDF_GetPageCount(handle);
  }

  /**
   * Opens a file (its path) or its bytes with an empty password, as a viewer does: an
   * owner-password-only PDF opens. PdfError: file_too_large over PDFIUM_MAX_BYTES, encrypted when
   * it needs a user password, corrupt when pdfium cannot read it.
   */
  static open(m: WrappedPdfiumModule, source: string | Uint8Array): PdfiumDocument {
    const [path, bytes] = typeof source === "string" ? [source, undefined] : [undefined, source];
    const fd = path === undefined ? undefined : openSync(path, "r");
    let ptr = 0;
    try {
      const size = bytes ? bytes.byteLength : fstatSync(fd!).size;
      if (size > PDFIUM_MAX_BYTES) throw new PdfError("file_too_large", `file is ${size} bytes, over pdfium's ${PDFIUM_MAX_BYTES}`, { path });
      const h = heap(m);
      ptr = h.wasmExports.malloc(Math.max(1, size));
      if (!ptr) throw new PdfError("file_too_large", `pdfium cannot allocate ${size} bytes`, { path });
      if (bytes) h.HEAPU8.set(bytes, ptr);
      for (let at = 0; fd !== undefined && at < size; ) {
        // HEAPU8 is re-read each time: a heap that grew detaches the old view.
        const n = readSync(fd, h.HEAPU8, ptr + at, Math.min(size - at, 1 << 24), at);
        if (n <= 0) throw new Error(`short read at ${at} of ${size}`);
        at += n;
      }
      const handle = m.FPDF_LoadMemDocument64(ptr, size, "");
      if (!handle) {
        const code = m.FPDF_GetLastError();
        const why = LOAD_ERRORS[code] ?? `error ${code}`;
        throw new PdfError(code === 4 || code === 5 ? "encrypted" : "corrupt", `pdfium cannot open the file: ${why}`, { path });
      }
      const doc = new PdfiumDocument(m, handle, ptr);
      ptr = 0;
      return doc;
    } finally {
      if (ptr) heap(m).wasmExports.free(ptr);
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Draws page pageIndex (0-based) the size mupdf would: round(pt / 72 × dpi), scaled to fit maxPixels. */
  render(pageIndex: number, dpi: number, maxPixels: number): PdfiumRender {
    const m = this.m;
    const page = m.FPDF_LoadPage(this.handle, pageIndex);
    if (!page) throw new PdfError("corrupt_page", `pdfium cannot load page ${pageIndex + 1}`);
    let bitmap = 0;
    try {
      const w = m.FPDF_GetPageWidthF(page);
      const h = m.FPDF_GetPageHeightF(page);
      if (!(w > 0) || !(h > 0)) throw new PdfError("corrupt_page", `page ${pageIndex + 1} has an empty page box`);
      const size = fitPixels(w, h, dpi, maxPixels);
      if (size.width < 1 || size.height < 1) {
        throw new PdfError("page_too_large", `page ${pageIndex + 1} (${w}×${h} pt) cannot fit ${maxPixels} pixels`);
      }
      bitmap = m.FPDFBitmap_CreateEx(size.width, size.height, FPDFBitmap_BGR, 0, 0);
      if (!bitmap) throw new PdfError("page_too_large", `pdfium cannot allocate ${size.width}×${size.height} pixels`);
      m.FPDFBitmap_FillRect(bitmap, 0, 0, size.width, size.height, 0xffffffff);
      m.FPDF_RenderPageBitmap(bitmap, page, 0, 0, size.width, size.height, 0, FPDF_ANNOT | FPDF_REVERSE_BYTE_ORDER);
      const stride = m.FPDFBitmap_GetStride(bitmap);
      const at = m.FPDFBitmap_GetBuffer(bitmap);
      const row = size.width * 3;
      const rgb = new Uint8Array(row * size.height);
      const src = heap(m).HEAPU8;
      for (let y = 0; y < size.height; y++) rgb.set(src.subarray(at + y * stride, at + y * stride + row), y * row);
      return { rgb, ...size, problems: this.undecodableImages(page) };
    } finally {
      if (bitmap) m.FPDFBitmap_Destroy(bitmap);
      m.FPDF_ClosePage(page);
    }
  }

  /**
   * pdfium draws what it can without a word about what it skipped. Its images are where damage
   * hides (a broken JPEG, JBIG2 or Flate stream): one that does not decode means the page is not clean.
   */
  private undecodableImages(page: number): string[] {
    const m = this.m;
    const problems: string[] = [];
    const visit = (count: number, get: (i: number) => number, depth: number) => {
      for (let i = 0; i < count && problems.length < 5; i++) {
        const obj = get(i);
        const type = m.FPDFPageObj_GetType(obj);
        if (type === FPDF_PAGEOBJ_IMAGE) {
          const bmp = m.FPDFImageObj_GetBitmap(obj);
          if (bmp) m.FPDFBitmap_Destroy(bmp);
          else problems.push(`pdfium: image ${i + 1} does not decode`);
        } else if (type === FPDF_PAGEOBJ_FORM && depth < MAX_FORM_DEPTH) {
          visit(m.FPDFFormObj_CountObjects(obj), (k) => m.FPDFFormObj_GetObject(obj, k), depth + 1);
        }
      }
    };
    visit(m.FPDFPage_CountObjects(page), (i) => m.FPDFPage_GetObject(page, i), 0);
    return problems;
  }

  /** Pages first..last (1-based, inclusive) as a new PDF, as pdfium saves them. */
  pagesBytes(first: number, last: number): Uint8Array {
    const m = this.m;
    const out = m.FPDF_CreateNewDocument();
    let writer = 0;
    try {
      if (!m.FPDF_ImportPages(out, this.handle, `${first}-${last}`, 0)) {
        throw new PdfError("corrupt", `pdfium cannot copy pages ${first}-${last}`);
      }
      writer = m.PDFiumExt_OpenFileWriter();
      if (!m.PDFiumExt_SaveAsCopy(out, writer)) throw new PdfError("corrupt", `pdfium cannot save pages ${first}-${last}`);
      const size = m.PDFiumExt_GetFileWriterSize(writer);
      const h = heap(m);
      const buf = h.wasmExports.malloc(Math.max(1, size));
      try {
        m.PDFiumExt_GetFileWriterData(writer, buf, size);
        return h.HEAPU8.slice(buf, buf + size);
      } finally {
        h.wasmExports.free(buf);
      }
    } finally {
      if (writer) m.PDFiumExt_CloseFileWriter(writer);
      m.FPDF_CloseDocument(out);
    }
  }

  destroy(): void {
    this.m.FPDF_CloseDocument(this.handle);
    heap(this.m).wasmExports.free(this.bytesPtr);
  }
}
