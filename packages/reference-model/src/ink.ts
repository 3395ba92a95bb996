import type * as Mupdf from "mupdf";
import { pngInk, type InkCount } from "./png-ink.js";

export interface InkOptions {
  /** Gray level (0 = black, 255 = white) below which a pixel counts as ink. @defaultValue 128 */
  inkThreshold?: number;
  /** A page whose ink coverage is below this share is blank. @defaultValue 0.001 */
  blankThreshold?: number;
  /**
   * Images with more pixels are refused before they are decoded: what one decode may allocate.
   * @defaultValue 50_000_000, the page converter's own cap, so every page the pipeline writes fits
   */
  maxPixels?: number;
}

const MAX_PIXELS = 50_000_000;

export interface InkResult {
  width: number;
  height: number;
  /** Pixels darker than the ink threshold. */
  inkPixels: number;
  /** inkPixels / (width * height), 0..1. */
  inkCoverage: number;
  /** Mean gray level, 0..255. */
  meanGray: number;
  blank: boolean;
}

/** Thrown when the bytes are not an image the model can decode, or one larger than it reads; the message says which. */
export class ImageDecodeError extends Error {
  override readonly name = "ImageDecodeError";
}

// mupdf is loaded on the first image that needs it: the pipeline's PNGs never do, and a measure
// thread (see measure.ts) starts faster without its WebAssembly.
let mupdfModule: Promise<typeof Mupdf> | undefined;

/**
 * Decodes an image, converts it to gray and measures how much of the page is ink. The 8-bit gray
 * and RGB PNGs the pipeline writes are read with Node's zlib (see pngInk); anything else (JPEG,
 * palette or alpha PNGs, ...) with mupdf, whose transparent pixels are composited over white, as
 * on paper. Synchronous work: the only wait is mupdf's first load.
 */
export async function measureInk(bytes: Uint8Array, opts: InkOptions = {}): Promise<InkResult> {
  const inkThreshold = opts.inkThreshold ?? 128;
  const blankThreshold = opts.blankThreshold ?? 0.001;
  const maxPixels = opts.maxPixels ?? MAX_PIXELS;
  let counted: InkCount | undefined;
  try {
    counted = pngInk(bytes, inkThreshold, maxPixels);
  } catch (cause) {
    throw new ImageDecodeError(`the PNG cannot be read: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  const { width, height, inkPixels, graySum } = counted ?? withMupdf(await (mupdfModule ??= import("mupdf")), bytes, inkThreshold, maxPixels);
  const total = width * height;
  const inkCoverage = total === 0 ? 0 : inkPixels / total;
  return { width, height, inkPixels, inkCoverage, meanGray: total === 0 ? 255 : graySum / total, blank: inkCoverage < blankThreshold };
}

/** Counts the ink of any image mupdf decodes, in gray. */
function withMupdf(mupdf: typeof Mupdf, bytes: Uint8Array, inkThreshold: number, maxPixels: number): InkCount {
  let image: Mupdf.Image;
  try {
    image = new mupdf.Image(bytes);
  } catch (cause) {
    throw new ImageDecodeError("the object is not a decodable image", { cause });
  }
  let pixmap: Mupdf.Pixmap;
  try {
    const [w, h] = [image.getWidth(), image.getHeight()];
    if (w * h > maxPixels) throw new ImageDecodeError(`the image is ${w}×${h} pixels, more than the ${maxPixels} this model reads`);
    pixmap = image.toPixmap();
  } catch (cause) {
    image.destroy();
    if (cause instanceof ImageDecodeError) throw cause;
    throw new ImageDecodeError("the object is not a decodable image", { cause });
  }
  let gray: Mupdf.Pixmap | undefined;
  try {
    // mupdf keeps alpha through a conversion (it refuses to drop it), premultiplied: over white
    // paper a pixel reads gray + (255 - alpha).
    const alpha = pixmap.getAlpha() === 1;
    gray = pixmap.getColorSpace()?.isGray() ? pixmap : pixmap.convertToColorSpace(mupdf.ColorSpace.DeviceGray, alpha);
    const width = gray.getWidth();
    const height = gray.getHeight();
    const stride = gray.getStride();
    const n = gray.getNumberOfComponents(); // 1, or 2 with alpha
    const pixels = gray.getPixels();
    let inkPixels = 0;
    let graySum = 0;
    for (let y = 0; y < height; y++) {
      for (let x = y * stride, end = x + width * n; x < end; x += n) {
        const v = n === 2 ? pixels[x]! + 255 - pixels[x + 1]! : pixels[x]!;
        graySum += v;
        if (v < inkThreshold) inkPixels++;
      }
    }
    return { width, height, inkPixels, graySum };
  } catch (cause) {
    throw new ImageDecodeError("the object is not an image the model can read", { cause });
  } finally {
    if (gray && gray !== pixmap) gray.destroy();
    pixmap.destroy();
    image.destroy();
  }
}
