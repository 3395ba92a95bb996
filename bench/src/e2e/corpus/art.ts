// The corpus's art: charts, technical drawings, contour maps, photos and scans.
import { deflateSync } from "node:zlib";
import * as mupdf from "mupdf";
import { between, Canvas, type Fonts, n, paragraph, type Rng, word } from "./pdf.ts";

// Drawings: bar and line charts, technical drawings, contour maps.

export function barChart(c: Canvas, r: Rng, x: number, y: number, w: number, h: number): void {
  const bars = 6 + Math.floor(r() * 10);
  c.ops.push(`q 0.4 w 0 0 0 RG ${n(x)} ${n(y)} m ${n(x)} ${n(y + h)} l S ${n(x)} ${n(y)} m ${n(x + w)} ${n(y)} l S`);
  for (let g = 1; g <= 4; g++) c.ops.push(`0.85 G 0.3 w ${n(x)} ${n(y + (g * h) / 4)} m ${n(x + w)} ${n(y + (g * h) / 4)} l S`);
  const bw = w / bars;
  for (let i = 0; i < bars; i++) {
    const bh = between(r, 0.1, 0.95) * h;
    c.ops.push(`${n(r())} ${n(0.3 + 0.5 * r())} ${n(0.6 + 0.4 * r())} rg ${n(x + i * bw + bw * 0.15)} ${n(y)} ${n(bw * 0.7)} ${n(bh)} re f`);
  }
  c.ops.push("Q");
}

export function lineChart(c: Canvas, r: Rng, x: number, y: number, w: number, h: number): void {
  c.ops.push(`q 0.5 w 0 0 0 RG ${n(x)} ${n(y)} ${n(w)} ${n(h)} re S`);
  for (let s = 0; s < 3; s++) {
    let v = between(r, 0.2, 0.8);
    const pts = 80 + Math.floor(r() * 120);
    const path: string[] = [];
    for (let i = 0; i <= pts; i++) {
      v = Math.min(0.98, Math.max(0.02, v + between(r, -0.05, 0.05)));
      path.push(`${n(x + (i / pts) * w)} ${n(y + v * h)} ${i === 0 ? "m" : "l"}`);
    }
    c.ops.push(`${["0.8 0.1 0.1", "0.1 0.4 0.8", "0.1 0.6 0.2"][s]} RG 0.9 w ${path.join(" ")} S`);
  }
  c.ops.push("Q");
}

export function pieChart(c: Canvas, r: Rng, cx: number, cy: number, radius: number): void {
  let a = 0;
  const k = 0.5523;
  c.ops.push("q");
  while (a < Math.PI * 2 - 0.01) {
    const span = Math.min(Math.PI * 2 - a, between(r, 0.3, 1.6));
    c.ops.push(`${n(r())} ${n(r())} ${n(r())} rg ${n(cx)} ${n(cy)} m ${n(cx + radius * Math.cos(a))} ${n(cy + radius * Math.sin(a))} l`);
    // Quarter-circle Bézier pieces along the arc.
    for (let t = a; t < a + span - 1e-6; t += Math.PI / 2) {
      const e = Math.min(a + span, t + Math.PI / 2);
      const d = ((e - t) / (Math.PI / 2)) * k * radius;
      c.ops.push(
        `${n(cx + radius * Math.cos(t) - d * Math.sin(t))} ${n(cy + radius * Math.sin(t) + d * Math.cos(t))} ` +
          `${n(cx + radius * Math.cos(e) + d * Math.sin(e))} ${n(cy + radius * Math.sin(e) - d * Math.cos(e))} ` +
          `${n(cx + radius * Math.cos(e))} ${n(cy + radius * Math.sin(e))} c`,
      );
    }
    c.ops.push("h f");
    a += span;
  }
  c.ops.push("Q");
}

/** A technical drawing: outlines, holes, hatching, centre lines and dimensions. */
export function technicalDrawing(c: Canvas, r: Rng, x: number, y: number, w: number, h: number): void {
  c.ops.push(`q 1.2 w 0 0 0 RG ${n(x)} ${n(y)} ${n(w)} ${n(h)} re S`);
  for (let part = 0; part < 6; part++) {
    const px = x + between(r, 0.05, 0.6) * w;
    const py = y + between(r, 0.05, 0.6) * h;
    const pw = between(r, 0.15, 0.35) * w;
    const ph = between(r, 0.15, 0.35) * h;
    c.ops.push(`0.8 w ${n(px)} ${n(py)} ${n(pw)} ${n(ph)} re S`);
    // Hatching clipped to the part.
    c.ops.push(`q ${n(px)} ${n(py)} ${n(pw)} ${n(ph)} re W n 0.25 w`);
    for (let d = -ph; d < pw; d += 4) c.ops.push(`${n(px + d)} ${n(py)} m ${n(px + d + ph)} ${n(py + ph)} l S`);
    c.ops.push("Q");
    for (let hole = 0; hole < 4; hole++) {
      const hx = px + between(r, 0.2, 0.8) * pw;
      const hy = py + between(r, 0.2, 0.8) * ph;
      const rad = between(r, 3, 12);
      const k = 0.5523 * rad;
      c.ops.push(
        `1 g ${n(hx + rad)} ${n(hy)} m ${n(hx + rad)} ${n(hy + k)} ${n(hx + k)} ${n(hy + rad)} ${n(hx)} ${n(hy + rad)} c ` +
          `${n(hx - k)} ${n(hy + rad)} ${n(hx - rad)} ${n(hy + k)} ${n(hx - rad)} ${n(hy)} c ` +
          `${n(hx - rad)} ${n(hy - k)} ${n(hx - k)} ${n(hy - rad)} ${n(hx)} ${n(hy - rad)} c ` +
          `${n(hx + k)} ${n(hy - rad)} ${n(hx + rad)} ${n(hy - k)} ${n(hx + rad)} ${n(hy)} c b`,
      );
      c.ops.push(`[6 2 1 2] 0 d 0.3 w ${n(hx - rad * 1.6)} ${n(hy)} m ${n(hx + rad * 1.6)} ${n(hy)} l S [] 0 d`);
    }
    c.ops.push(`0.3 w ${n(px)} ${n(py - 10)} m ${n(px + pw)} ${n(py - 10)} l S`);
    c.line(`${(pw / 2.835).toFixed(1)}`, px + pw / 2 - 8, py - 18, "sans", 6);
  }
  c.ops.push("Q");
}

/** Contour lines of a random landscape: many long polylines, as on a map or a plot. */
export function contourMap(c: Canvas, r: Rng, x: number, y: number, w: number, h: number, lines: number): void {
  const hills = Array.from({ length: 8 }, () => ({ x: r(), y: r(), s: between(r, 0.05, 0.25), a: between(r, -1, 1) }));
  const height = (u: number, v: number) => hills.reduce((s, p) => s + p.a * Math.exp(-((u - p.x) ** 2 + (v - p.y) ** 2) / (2 * p.s * p.s)), 0);
  c.ops.push("q 0.35 w");
  for (let i = 0; i < lines; i++) {
    const v0 = i / lines;
    const path: string[] = [];
    for (let j = 0; j <= 120; j++) {
      const u = j / 120;
      const v = v0 + 0.04 * height(u, v0);
      path.push(`${n(x + u * w)} ${n(y + Math.min(1, Math.max(0, v)) * h)} ${j === 0 ? "m" : "l"}`);
    }
    c.ops.push(`${n(0.3 + 0.4 * v0)} ${n(0.25)} ${n(0.1)} RG ${path.join(" ")} S`);
  }
  c.ops.push("Q");
}

// ---------------------------------------------------------------------------------------------
// Images: a "photo" (smooth colour with noise, JPEG), a grey scan of a typed page (JPEG), and a
// black-and-white fax scan (1 bit per pixel, Flate).

export function photo(doc: mupdf.PDFDocument, r: Rng, w: number, h: number): mupdf.PDFObject {
  const pix = new mupdf.Pixmap(mupdf.ColorSpace.DeviceRGB, [0, 0, w, h], false);
  try {
    const px = pix.getPixels();
    const [a, b, c] = [r() * 6, r() * 6, r() * 6];
    for (let yy = 0; yy < h; yy++) {
      for (let xx = 0; xx < w; xx++) {
        const o = (yy * w + xx) * 3;
        const u = xx / w;
        const v = yy / h;
        const noise = (r() - 0.5) * 30;
        px[o] = 128 + 100 * Math.sin(a + u * 3 + v) + noise;
        px[o + 1] = 128 + 100 * Math.sin(b + v * 4 - u) + noise;
        px[o + 2] = 128 + 100 * Math.sin(c + (u + v) * 2) + noise;
      }
    }
    return addJpeg(doc, pix, 70);
  } finally {
    pix.destroy();
  }
}

export function addJpeg(doc: mupdf.PDFDocument, pix: mupdf.Pixmap, quality: number): mupdf.PDFObject {
  const image = new mupdf.Image(pix.asJPEG(quality));
  try {
    return doc.addImage(image);
  } finally {
    image.destroy();
  }
}

/** A typed page drawn into a grey pixmap at `dpi`, slightly skewed, on off-white paper with noise. */
export function typedPage(r: Rng, fontsDoc: mupdf.PDFDocument, fonts: Fonts, dpi: number): mupdf.Pixmap {
  const page = new Canvas(fonts, 612, 792);
  let y = 720;
  page.line(word(r).toUpperCase() + " " + word(r).toUpperCase(), 72, y, "mono", 14);
  y -= 36;
  while (y > 100) y = page.text(paragraph(r, 3 + Math.floor(r() * 4)), 72, y, 468, "mono", 10.5, 13) - 12;
  page.addTo(fontsDoc);
  const last = fontsDoc.loadPage(fontsDoc.countPages() - 1);
  const s = dpi / 72;
  const skew = between(r, -0.012, 0.012);
  const ctm = mupdf.Matrix.concat(mupdf.Matrix.rotate((skew * 180) / Math.PI), mupdf.Matrix.scale(s, s));
  const w = Math.round(612 * s);
  const h = Math.round(792 * s);
  const pix = new mupdf.Pixmap(mupdf.ColorSpace.DeviceGray, [0, 0, w, h], false);
  pix.clear(255);
  const dev = new mupdf.DrawDevice(mupdf.Matrix.translate(0, h * skew), pix);
  last.run(dev, ctm);
  dev.close();
  dev.destroy();
  last.destroy();
  const px = pix.getPixels();
  // Paper that darkens towards one edge, ink that is not quite black, and specks of dust.
  const paper = 232 + Math.floor(r() * 14);
  const fade = between(r, 0, 20);
  for (let yy = 0; yy < h; yy++) {
    const bg = paper - (fade * yy) / h;
    for (let xx = 0; xx < w; xx++) {
      const i = yy * w + xx;
      const v = px[i]!;
      px[i] = v > 200 ? bg : v + 25;
    }
  }
  for (let i = 0; i < 400; i++) px[Math.floor(r() * w * h)] = 60;
  return pix;
}

export function grayScan(doc: mupdf.PDFDocument, r: Rng, scratch: mupdf.PDFDocument, fonts: Fonts): mupdf.PDFObject {
  const pix = typedPage(r, scratch, fonts, 150);
  try {
    return addJpeg(doc, pix, 30);
  } finally {
    pix.destroy();
  }
}

export function faxScan(doc: mupdf.PDFDocument, r: Rng, scratch: mupdf.PDFDocument, fonts: Fonts): { ref: mupdf.PDFObject; w: number; h: number } {
  const pix = typedPage(r, scratch, fonts, 200);
  try {
    const w = pix.getWidth();
    const h = pix.getHeight();
    const px = pix.getPixels();
    const stride = Math.ceil(w / 8);
    const bits = new Uint8Array(stride * h);
    for (let yy = 0; yy < h; yy++) {
      for (let xx = 0; xx < w; xx++) {
        // 1 = white (DeviceGray, Decode [0 1]); a speck of dirt now and then.
        const white = px[yy * w + xx]! > 150;
        if (white) bits[yy * stride + (xx >> 3)]! |= 0x80 >> (xx & 7);
      }
    }
    const ref = doc.addRawStream(deflateSync(bits, { level: 9 }), {
      Type: doc.newName("XObject"),
      Subtype: doc.newName("Image"),
      Width: w,
      Height: h,
      ColorSpace: doc.newName("DeviceGray"),
      BitsPerComponent: 1,
      Filter: doc.newName("FlateDecode"),
    });
    return { ref, w, h };
  } finally {
    pix.destroy();
  }
}

