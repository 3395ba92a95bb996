import * as mupdf from "mupdf";

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


/** PNG of a mupdf pixmap: the one place pages are encoded (both engines' images go through it). */
export function encodePixmap(pixmap: mupdf.Pixmap): Uint8Array {
  return pixmap.asPNG();
}

/** PNG of RGB pixels (3 bytes a pixel, rows of width × 3 bytes). */
export function encodePng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const pixmap = new mupdf.Pixmap(mupdf.ColorSpace.DeviceRGB, [0, 0, width, height], false);
  try {
    pixmap.getPixels().set(rgb);
    return encodePixmap(pixmap);
  } finally {
    pixmap.destroy();
  }
}

/** Pixels that are not white (RGB, 3 bytes a pixel): how much of a page got drawn. */
export function inkOf(rgb: Uint8Array | Uint8ClampedArray): number {
  let ink = 0;
  for (let i = 0; i + 2 < rgb.length; i += 3) if (rgb[i]! + rgb[i + 1]! + rgb[i + 2]! < 735) ink++;
  return ink;
}
