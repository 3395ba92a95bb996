import * as mupdf from "mupdf";
import { DEFAULT_PNG_LEVEL, encodePackedRowsInPlace, encodePngPixels, spareRowsForFilters } from "./png.js";

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

/**
 * The RGB pixmap (no alpha) a page of width × height pixels is drawn into: with the spare row
 * below the page that lets encodeDrawnPage add the PNG's filter bytes in place, when one is enough
 * (see spareRowsForFilters). Drawing that spills past the page's bottom edge lands in that row and
 * is not encoded; the rows of the page are drawn exactly as in a pixmap of the page's size.
 */
export function pagePixmap(width: number, height: number): mupdf.Pixmap {
  const spare = spareRowsForFilters(width * 3, height);
  return new mupdf.Pixmap(mupdf.ColorSpace.DeviceRGB, [0, 0, width, height + spare], false);
}

/**
 * PNG at zlib `level` of the page's `height` rows of a pixmap made by pagePixmap: the one place
 * mupdf's pages are encoded. With a spare row the pixels are encoded where mupdf drew them, not
 * copied out first (a page at 150 dpi is ~6 MB of rows); they are not usable afterwards.
 */
export function encodeDrawnPage(pixmap: mupdf.Pixmap, height: number, level = DEFAULT_PNG_LEVEL): Uint8Array {
  const width = pixmap.getWidth();
  const data = pixmap.getPixels();
  if (pixmap.getHeight() > height && pixmap.getStride() === width * 3) return encodePackedRowsInPlace(data, width, height, 3, level);
  return encodePngPixels({ data, width, height, stride: pixmap.getStride(), channels: 3 }, level);
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
