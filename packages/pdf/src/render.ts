import * as mupdf from "mupdf";
import { isWasmAbort, PdfError } from "./errors.js";
import { captureMupdfLog, checkedPageCount, errorText, openPdf } from "./open.js";

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
   * Fail a page whose drawing mupdf could not read in full (PdfError "corrupt_page") instead of
   * returning the partial, often blank, image it draws: undecodable or truncated compressed
   * streams, syntax errors in the content stream, a content stream that is missing or not a
   * stream, broken images. See DAMAGE. @defaultValue true
   */
  rejectDamaged?: boolean;
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
}

export const DEFAULT_DPI = 150;
export const DEFAULT_MAX_PIXELS = 50_000_000;

/**
 * Pixel size of a page box of widthPt × heightPt points (already rotated) at dpi, scaled down
 * to fit maxPixels. Width is round(widthPt / 72 × dpi), likewise height.
 */
export function fitPixels(
  widthPt: number,
  heightPt: number,
  dpi: number,
  maxPixels: number,
): { width: number; height: number; dpi: number } {
  const at = (d: number) => ({
    width: Math.round((widthPt * d) / 72),
    height: Math.round((heightPt * d) / 72),
    dpi: d,
  });
  let size = at(dpi);
  if (size.width * size.height > maxPixels) {
    let d = dpi * Math.sqrt(maxPixels / ((widthPt * dpi) / 72) / ((heightPt * dpi) / 72));
    size = at(d);
    // Rounding up either side may still overshoot by a row or column.
    while (size.width * size.height > maxPixels && d > 0) {
      d *= 0.999;
      size = at(d);
    }
  }
  return size;
}

/** Renders page pageIndex (0-based) of an open document. Synchronous: runs mupdf on this thread. */
export function renderDocPage(doc: mupdf.PDFDocument, pageIndex: number, opts: RenderOptions = {}): RenderResult {
  const dpi = opts.dpi ?? DEFAULT_DPI;
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(dpi > 0) || !(maxPixels > 0)) throw new RangeError(`dpi and maxPixels must be positive (${dpi}, ${maxPixels})`);
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
    pixmap = new mupdf.Pixmap(mupdf.ColorSpace.DeviceRGB, [0, 0, size.width, size.height], false);
    pixmap.clear(255);
    device = new mupdf.DrawDevice(mupdf.Matrix.identity, pixmap);
    const drawn = captureMupdfLog(() => {
      page!.run(device!, ctm);
      device!.close();
    });
    const damage = drawn.messages.filter((m) => DAMAGE.test(m));
    if (damage.length > 0 && opts.rejectDamaged !== false) {
      throw new PdfError("corrupt_page", `page ${pageIndex + 1} is damaged: ${summarise(damage)}`);
    }
    return { png: pixmap.asPNG(), width: size.width, height: size.height, dpi: size.dpi };
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

function summarise(messages: string[]): string {
  const distinct = [...new Set(messages)];
  return distinct.slice(0, 3).join("; ") + (distinct.length > 3 ? `; and ${distinct.length - 3} more` : "");
}

/**
 * Renders page pageIndex (0-based) of the PDF at pdfPath to PNG, honouring /Rotate and the
 * CropBox as mupdf does. Runs on the calling thread; use RenderPool to render in parallel with
 * a time limit.
 */
export async function renderPage(pdfPath: string, pageIndex: number, opts: RenderOptions = {}): Promise<RenderResult> {
  const doc = openPdf(pdfPath);
  try {
    return renderDocPage(doc, pageIndex, opts);
  } catch (e) {
    if (e instanceof PdfError && e.path === undefined) {
      throw new PdfError(e.code, e.message, { cause: e.cause, path: pdfPath });
    }
    throw e;
  } finally {
    doc.destroy();
  }
}
