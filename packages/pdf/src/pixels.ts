import type * as mupdf from "mupdf";
import { DEFAULT_PNG_LEVEL, encodePngPixels, type RawPixels } from "./png.js";

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


/** PNG of a mupdf pixmap at zlib `level`: the one place pages are encoded (both engines' images go through it). */
export function encodePixmap(pixmap: mupdf.Pixmap, level = DEFAULT_PNG_LEVEL): Uint8Array {
  // n counts the alpha channel too.
  const channels = pixmap.getNumberOfComponents();
  const cs = pixmap.getColorSpace();
  const plain = (cs === null ? channels === 1 : cs.isGray() || cs.isRGB()) && channels >= 1 && channels <= 4;
  cs?.destroy();
  // Anything else (CMYK, a separation) is mupdf's to convert; pages are always drawn in RGB.
  if (!plain) return pixmap.asPNG();
  return encodePngPixels(
    { data: pixmap.getPixels(), width: pixmap.getWidth(), height: pixmap.getHeight(), stride: pixmap.getStride(), channels: channels as RawPixels["channels"] },
    level,
  );
}

/** PNG of RGB pixels (3 bytes a pixel, rows of width × 3 bytes) at zlib `level`. */
export function encodePng(rgb: Uint8Array, width: number, height: number, level = DEFAULT_PNG_LEVEL): Uint8Array {
  return encodePngPixels({ data: rgb, width, height, stride: width * 3, channels: 3 }, level);
}

/** Pixels that are not white (RGB, 3 bytes a pixel): how much of a page got drawn. */
export function inkOf(rgb: Uint8Array | Uint8ClampedArray): number {
  let ink = 0;
  for (let i = 0; i + 2 < rgb.length; i += 3) if (rgb[i]! + rgb[i + 1]! + rgb[i + 2]! < 735) ink++;
  return ink;
}
