import * as mupdf from "mupdf";

export interface InkOptions {
  /** Gray level (0 = black, 255 = white) below which a pixel counts as ink. @defaultValue 128 */
  inkThreshold?: number;
  /** A page whose ink coverage is below this share is blank. @defaultValue 0.001 */
  blankThreshold?: number;
}

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

/** Thrown when the bytes are not an image mupdf can decode. */
export class ImageDecodeError extends Error {
  override readonly name = "ImageDecodeError";
}

/**
 * Decodes an image (PNG, JPEG, ...) with mupdf, converts it to gray and measures how much of
 * the page is ink. Transparent pixels are composited as mupdf does when dropping alpha.
 */
export function measureInk(bytes: Uint8Array, opts: InkOptions = {}): InkResult {
  const inkThreshold = opts.inkThreshold ?? 128;
  const blankThreshold = opts.blankThreshold ?? 0.001;
  let image: mupdf.Image;
  let pixmap: mupdf.Pixmap;
  try {
    image = new mupdf.Image(bytes);
    pixmap = image.toPixmap();
  } catch (cause) {
    throw new ImageDecodeError("cannot decode image", { cause });
  }
  let gray: mupdf.Pixmap | undefined;
  try {
    const cs = pixmap.getColorSpace();
    gray =
      cs?.isGray() && pixmap.getAlpha() === 0 ? pixmap : pixmap.convertToColorSpace(mupdf.ColorSpace.DeviceGray, false);
    const width = gray.getWidth();
    const height = gray.getHeight();
    const stride = gray.getStride();
    const pixels = gray.getPixels();
    let ink = 0;
    let sum = 0;
    for (let y = 0; y < height; y++) {
      const row = y * stride;
      for (let x = 0; x < width; x++) {
        const v = pixels[row + x]!;
        sum += v;
        if (v < inkThreshold) ink += 1;
      }
    }
    const total = width * height;
    const inkCoverage = total === 0 ? 0 : ink / total;
    return {
      width,
      height,
      inkPixels: ink,
      inkCoverage,
      meanGray: total === 0 ? 255 : sum / total,
      blank: inkCoverage < blankThreshold,
    };
  } finally {
    if (gray && gray !== pixmap) gray.destroy();
    pixmap.destroy();
    image.destroy();
  }
}
