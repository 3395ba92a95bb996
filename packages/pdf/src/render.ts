import * as mupdf from "mupdf";
import { isWasmAbort, PdfError, type PdfErrorCode } from "./errors.js";
import { captureMupdfLog, checkedPageCount, distinct, errorText, openPdf, type Engine, type PdfSource } from "./open.js";
import { loadPdfium, PdfiumDocument } from "./pdfium.js";
import { encodeDrawnPage, encodePng, fitPixels, inkOf, pagePixmap } from "./pixels.js";
import { DEFAULT_PNG_LEVEL } from "./png.js";

export interface RenderOptions {
  /** Resolution in dots per inch. @defaultValue 150 */
  dpi?: number;
  /**
   * Upper bound on width × height. A page that would exceed it at `dpi` is rendered at the
   * highest lower resolution that fits (reported as `dpi` in the result) rather than refused:
   * the pipeline still gets an image of every page, and one hostile page size cannot exhaust
   * the worker. @defaultValue 50_000_000
   */
  maxPixels?: number;
  /**
   * Fail a page that no engine draws cleanly (PdfError "corrupt_page", the damage in its
   * message) instead of returning the best image with `degraded: true`: the batch option
   * `onDamagedPage: "fail"`. See DAMAGE. @defaultValue false
   */
  rejectDamaged?: boolean;
  /** Ask pdfium when mupdf cannot open the file, finds no pages or draws the page with damage. @defaultValue true */
  secondEngine?: boolean;
  /** zlib level of the PNG (0-9, lossless at every level): CPU time against bytes. @defaultValue DEFAULT_PNG_LEVEL (1) */
  pngLevel?: number;
}

/**
 * mupdf messages (warnings or errors) that mean part of a page's drawing was lost. mupdf keeps
 * going after each of them and draws what it could, so without this check a damaged page
 * becomes a blank or partial PNG that looks like a valid result. Font substitutions and other
 * cosmetic warnings are deliberately not listed.
 */
export const DAMAGE =
  /zlib error|premature end of data|read error|syntax error|unknown filter|not a stream|jpeg error|jbig2|jpx|openjpeg|lzw|ccitt|padding truncated image|cannot load object|object out of range|truncated object/i;

export interface RenderResult {
  png: Uint8Array;
  width: number;
  height: number;
  /** The resolution actually used: lower than requested when maxPixels forced a scale-down. */
  dpi: number;
  /** The engine whose image this is. */
  engine: Engine;
  /** No engine drew the page cleanly: this is the best image there is, parts may be missing. */
  degraded: boolean;
  /** With `degraded`: the kind of damage in a few words (see damageReason), for counting pages per reason. */
  degradedReason?: string;
  /** What the engines said about this page (mupdf's messages, why an engine failed), distinct. */
  warnings: string[];
}

export const DEFAULT_DPI = 150;
export const DEFAULT_MAX_PIXELS = 50_000_000;

interface Drawing {
  png: Uint8Array;
  width: number;
  height: number;
  dpi: number;
  /** Pixels that are not white: how much of the page got drawn. */
  ink: number;
}

// mupdf's verdicts that pdfium may see differently. Limits, timeouts and aborts are final.
const SECOND_OPINION: ReadonlySet<PdfErrorCode> = new Set(["corrupt", "corrupt_page", "encrypted", "not_pdf"]);

/** Draws page pageIndex (0-based) of an open document with mupdf, on this thread. */
function drawWithMupdf(doc: mupdf.PDFDocument, pageIndex: number, dpi: number, maxPixels: number, messages: string[], pngLevel: number): Drawing {
  if (doc.needsPassword()) throw new PdfError("encrypted", "the PDF needs a password");
  const count = checkedPageCount(doc);
  if (!Number.isInteger(pageIndex) || pageIndex < 0 || pageIndex >= count) {
    throw new RangeError(`page index ${pageIndex} is outside 0-${count - 1}`);
  }
  let pageObject: mupdf.PDFObject | undefined;
  try {
    pageObject = doc.findPage(pageIndex);
  } catch {
    // Reported below: mupdf cannot find the page in its page tree.
  }
  if (!pageObject?.isDictionary()) {
    throw new PdfError("corrupt_page", `page ${pageIndex + 1} is missing from the file (its object is gone)`);
  }

  let page: mupdf.PDFPage | undefined;
  let pixmap: mupdf.Pixmap | undefined;
  let device: mupdf.DrawDevice | undefined;
  try {
    page = doc.loadPage(pageIndex);
    // The CropBox (falling back to the MediaBox) after /Rotate, in points: mupdf's page space.
    const [x0, y0, x1, y1] = page.getBounds();
    const w = x1 - x0;
    const h = y1 - y0;
    if (!(w > 0) || !(h > 0)) throw new PdfError("corrupt_page", `page ${pageIndex + 1} has an empty page box`);
    const size = fitPixels(w, h, dpi, maxPixels);
    if (size.width < 1 || size.height < 1) {
      throw new PdfError("page_too_large", `page ${pageIndex + 1} (${w}×${h} pt) cannot fit ${maxPixels} pixels`);
    }
    // Scale each axis to the exact integer size, so width = round(w × dpi / 72) and mupdf's own
    // bbox rounding (which rounds outwards) cannot add a column.
    const ctm = mupdf.Matrix.concat(
      mupdf.Matrix.translate(-x0, -y0),
      mupdf.Matrix.scale(size.width / w, size.height / h),
    );
    pixmap = pagePixmap(size.width, size.height);
    pixmap.clear(255);
    device = new mupdf.DrawDevice(mupdf.Matrix.identity, pixmap);
    captureMupdfLog(() => {
      page!.run(device!, ctm);
      device!.close();
    }, messages);
    const damaged = messages.some((m) => DAMAGE.test(m));
    // Counted before encoding, which reuses the pixels' memory.
    const ink = damaged ? inkOf(pixmap.getPixels().subarray(0, size.width * 3 * size.height)) : 0;
    return { png: encodeDrawnPage(pixmap, size.height, pngLevel), ...size, ink };
  } catch (e) {
    // An abort (WebAssembly.RuntimeError) leaves this mupdf instance unusable: not the page's fault
    // alone, so it is not labelled corrupt. RenderPool replaces a worker that hits one.
    if (e instanceof PdfError || e instanceof RangeError || isWasmAbort(e)) throw e;
    if (/malloc|out of memory/i.test(errorText(e))) {
      throw new PdfError("page_too_large", `page ${pageIndex + 1} does not fit in memory: ${errorText(e)}`, { cause: e });
    }
    // The document opened and its page tree is sound: what failed is this page.
    throw new PdfError("corrupt_page", `cannot render page ${pageIndex + 1}: ${errorText(e)}`, { cause: e });
  } finally {
    device?.destroy();
    pixmap?.destroy();
    page?.destroy();
  }
}

async function drawWithPdfium(source: PdfSource, pageIndex: number, dpi: number, maxPixels: number, pngLevel: number): Promise<Drawing & { problems: string[] }> {
  const doc = PdfiumDocument.open(await loadPdfium(), source);
  try {
    if (pageIndex >= doc.pageCount) throw new PdfError("corrupt_page", `pdfium finds ${doc.pageCount} pages, not page ${pageIndex + 1}`);
    const r = doc.render(pageIndex, dpi, maxPixels);
    return { png: encodePng(r.rgb, r.width, r.height, pngLevel), width: r.width, height: r.height, dpi: r.dpi, ink: inkOf(r.rgb), problems: r.problems };
  } finally {
    doc.destroy();
  }
}

/**
 * Renders page pageIndex (0-based) of the PDF `source` (a path or the bytes), with the document
 * mupdf opened from it (`open`, which may throw). mupdf draws first; when it cannot open the file, finds no pages or
 * draws the page with damage (see DAMAGE), pdfium draws it too, and pdfium's image wins when it
 * has no undecodable image and draws more of the page than mupdf could. Otherwise the best image
 * there is comes back `degraded`; a page fails only when no engine draws it.
 */
export async function renderPageWith(
  open: () => mupdf.PDFDocument,
  source: PdfSource,
  pageIndex: number,
  opts: RenderOptions = {},
): Promise<RenderResult> {
  const dpi = opts.dpi ?? DEFAULT_DPI;
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const pngLevel = opts.pngLevel ?? DEFAULT_PNG_LEVEL;
  if (!(dpi > 0) || !(maxPixels > 0)) throw new RangeError(`dpi and maxPixels must be positive (${dpi}, ${maxPixels})`);
  const opening: string[] = [];
  const drawing: string[] = [];
  let mu: Drawing | undefined;
  let refused: PdfError | undefined;
  try {
    const doc = captureMupdfLog(open, opening).result;
    mu = drawWithMupdf(doc, pageIndex, dpi, maxPixels, drawing, pngLevel);
  } catch (e) {
    if (!(e instanceof PdfError) || !SECOND_OPINION.has(e.code)) throw e;
    refused = e;
  }
  const damage = drawing.filter((m) => DAMAGE.test(m));
  const said = [...opening, ...drawing];
  let result: RenderResult | undefined;
  if (mu && damage.length === 0) return { ...mu, engine: "mupdf", degraded: false, warnings: distinct(said) };
  if (refused) said.push(`mupdf: ${refused.message}`);
  if (opts.secondEngine !== false) {
    try {
      const pd = await drawWithPdfium(source, pageIndex, dpi, maxPixels, pngLevel);
      if (pd.problems.length === 0 && (!mu || pd.ink > mu.ink)) {
        return { ...pd, engine: "pdfium", degraded: false, warnings: distinct(said) };
      }
      if (!mu) {
        const warnings = distinct([...said, ...pd.problems]);
        result = { ...pd, engine: "pdfium", degraded: true, degradedReason: damageReason(warnings), warnings };
      }
    } catch (e) {
      said.push(`pdfium: ${errorText(e).replace(/^pdfium /, "")}`);
    }
  }
  if (mu) result = { ...mu, engine: "mupdf", degraded: true, degradedReason: damageReason([...damage, ...said]), warnings: distinct(said) };
  if (!result) throw new PdfError(refused!.code, summarise(said), { cause: refused });
  if (opts.rejectDamaged) {
    throw new PdfError("corrupt_page", `page ${pageIndex + 1} is damaged: ${summarise(damage.length > 0 ? damage : said)}`);
  }
  return result;
}

/**
 * The kind of damage the messages of a degraded page tell, in a few words that repeat across
 * documents (`zlib error`, `jbig2`, `undecodable image`, ...), so pages can be counted per reason.
 */
export function damageReason(messages: readonly string[]): string {
  for (const m of messages) {
    const hit = DAMAGE.exec(m);
    if (hit) return hit[0].toLowerCase();
  }
  if (messages.some((m) => m.includes("does not decode"))) return "undecodable image";
  const first = messages[0]?.replace(/^(mupdf|pdfium): /, "") ?? "";
  return first.split(":")[0]!.slice(0, 60) || "unknown";
}

function summarise(messages: string[]): string {
  const unique = [...new Set(messages)];
  return unique.slice(0, 3).join("; ") + (unique.length > 3 ? `; and ${unique.length - 3} more` : "");
}

/**
 * Renders page pageIndex (0-based) of a PDF (its path, or its bytes) to PNG, honouring /Rotate and
 * the CropBox as mupdf does, with pdfium as the second engine (see renderPageWith). Runs on the
 * calling thread; use RenderPool to render in parallel with a time limit.
 */
export async function renderPage(source: PdfSource, pageIndex: number, opts: RenderOptions = {}): Promise<RenderResult> {
  let doc: mupdf.PDFDocument | undefined;
  try {
    return await renderPageWith(() => (doc = openPdf(source)), source, pageIndex, opts);
  } catch (e) {
    if (typeof source === "string" && e instanceof PdfError && e.path === undefined) {
      throw new PdfError(e.code, e.message, { cause: e.cause, path: source });
    }
    throw e;
  } finally {
    doc?.destroy();
  }
}
