import * as mupdf from "mupdf";
import { checkedPageCount, openPdf, type PdfSource } from "./open.js";

/** The text mupdf extracts from each page (of a file, or of bytes), in page order. */
export function pageTexts(source: PdfSource): string[] {
  const doc = openPdf(source);
  try {
    const texts: string[] = [];
    // Counted as the library counts: by the page tree's leaves.
    for (let i = 0, n = checkedPageCount(doc); i < n; i++) {
      const page = doc.loadPage(i);
      const st = page.toStructuredText("");
      texts.push(st.asText().trim());
      st.destroy();
      page.destroy();
    }
    return texts;
  } finally {
    doc.destroy();
  }
}

/** Page boxes (rotated, in points) of each page, as mupdf sees them. */
export function pageBounds(path: string): { width: number; height: number; rotate: number }[] {
  const doc = openPdf(path);
  try {
    const out = [];
    // Counted as the library counts: by the page tree's leaves.
    for (let i = 0, n = checkedPageCount(doc); i < n; i++) {
      const page = doc.loadPage(i);
      const [x0, y0, x1, y1] = page.getBounds();
      out.push({ width: x1 - x0, height: y1 - y0, rotate: page.getObject().getInheritable("Rotate").asNumber() });
      page.destroy();
    }
    return out;
  } finally {
    doc.destroy();
  }
}

/** Decodes a PNG with mupdf; `at(x, y)` gives the RGB of a pixel. */
export function decodePng(png: Uint8Array): { width: number; height: number; at(x: number, y: number): [number, number, number] } {
  const image = new mupdf.Image(png);
  const pix = image.toPixmap();
  try {
    const n = pix.getNumberOfComponents() + pix.getAlpha();
    const stride = pix.getStride();
    const data = pix.getPixels().slice();
    return {
      width: pix.getWidth(),
      height: pix.getHeight(),
      at: (x, y) => {
        const o = y * stride + x * n;
        return [data[o]!, data[o + 1]!, data[o + 2]!];
      },
    };
  } finally {
    pix.destroy();
    image.destroy();
  }
}

/** Expected PNG size of a corpus page at dpi: round(pt / 72 × dpi), sides swapped for 90 and 270. */
export function expectedPixels(p: { widthPt: number; heightPt: number; rotate: number }, dpi: number) {
  const w = Math.round((p.widthPt / 72) * dpi);
  const h = Math.round((p.heightPt / 72) * dpi);
  return p.rotate % 180 === 0 ? { width: w, height: h } : { width: h, height: w };
}
