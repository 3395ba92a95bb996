// The corpus's documents: what each file holds and how it is laid out.
import * as mupdf from "mupdf";
import { barChart, contourMap, faxScan, grayScan, lineChart, photo, pieChart, technicalDrawing } from "./art.ts";
import { between, Canvas, embedFonts, type Fonts, n, paragraph, pick, type Rng, sentence, word } from "./pdf.ts";

export interface Spec {
  name: string;
  kind: string;
  write: (doc: mupdf.PDFDocument, fonts: Fonts, r: Rng) => void;
}

function book(pages: number): Spec["write"] {
  return (doc, fonts, r) => {
    const W = 432;
    const H = 648;
    let chapter = 0;
    for (let p = 1; p <= pages; p++) {
      const c = new Canvas(fonts, W, H);
      let y = H - 60;
      if (p === 1 || r() < 0.06) {
        chapter++;
        y -= 80;
        c.line(`Chapter ${chapter}`, 54, y, "bold", 20);
        y -= 20;
        c.line(sentence(r).slice(0, 40), 54, y, "italic", 13);
        y -= 30;
      } else {
        c.line(`${chapter}. ${word(r)} ${word(r)}`, 54, H - 40, "italic", 8.5);
      }
      while (y > 90) {
        y = c.text(paragraph(r, 2 + Math.floor(r() * 6)), 54, y, W - 108, "serif", 10.5, 13) - 4;
        if (r() < 0.04 && y > 200) {
          y = c.text(paragraph(r, 2), 80, y - 6, W - 160, "mono", 8.5, 10.5) - 10;
        }
      }
      if (r() < 0.15) c.text(`${p}. ${sentence(r)}`, 54, 70, W - 108, "serif", 7.5, 9);
      c.line(String(p), W / 2 - 6, 36, "serif", 9);
      c.addTo(doc);
    }
  };
}

function report(pages: number): Spec["write"] {
  return (doc, fonts, r) => {
    const photos = Array.from({ length: 4 }, () => photo(doc, r, 480, 320));
    for (let p = 1; p <= pages; p++) {
      const c = new Canvas(fonts, 612, 792);
      c.ops.push("q 0.1 0.25 0.5 rg 0 760 612 32 re f Q");
      c.line(`Annual report ${word(r)}`, 40, 772, "bold", 12);
      const col = 254;
      for (const x of [40, 318]) {
        let y = 730;
        while (y > 70) {
          const what = r();
          if (what < 0.12 && y > 260) {
            barChart(c, r, x, y - 160, col, 150);
            y -= 175;
          } else if (what < 0.22 && y > 260) {
            lineChart(c, r, x, y - 160, col, 150);
            y -= 175;
          } else if (what < 0.27 && y > 260) {
            pieChart(c, r, x + col / 2, y - 80, 70);
            y -= 175;
          } else if (what < 0.31 && y > 260) {
            c.image(`Im${x}`, pick(r, photos), x, y - 170, col, 170);
            y -= 185;
          } else {
            y = c.text(paragraph(r, 2 + Math.floor(r() * 4)), x, y, col, "sans", 9, 11.5) - 8;
          }
        }
      }
      c.line(`${p}`, 300, 30, "sans", 8);
      c.addTo(doc);
    }
  };
}

function scans(pages: number, kind: "gray" | "fax"): Spec["write"] {
  return (doc, fonts, r) => {
    // The typed pages are drawn in a scratch document that is never saved.
    const scratch = new mupdf.PDFDocument();
    const scratchFonts = embedFonts(scratch);
    try {
      for (let p = 0; p < pages; p++) {
        const c = new Canvas(fonts, 612, 792);
        if (kind === "gray") c.image("Im1", grayScan(doc, r, scratch, scratchFonts), 0, 0, 612, 792);
        else c.image("Im1", faxScan(doc, r, scratch, scratchFonts).ref, 0, 0, 612, 792);
        c.addTo(doc);
      }
    } finally {
      scratch.destroy();
    }
  };
}

function drawings(pages: number): Spec["write"] {
  return (doc, fonts, r) => {
    for (let p = 0; p < pages; p++) {
      // A3 landscape.
      const c = new Canvas(fonts, 1191, 842);
      technicalDrawing(c, r, 30, 120, 1131, 690);
      c.ops.push("q 0.8 w 0 0 0 RG 831 30 330 80 re S 831 70 m 1161 70 l S 1000 30 m 1000 110 l S Q");
      c.line(`DRAWING ${word(r).toUpperCase()}-${p + 1}`, 840, 85, "bold", 12);
      c.line(`scale 1:${pick(r, [5, 10, 20, 50])}  sheet ${p + 1}`, 840, 45, "sans", 8);
      c.addTo(doc);
    }
  };
}

/** One big page: a conference poster (A0), a contour map (36 × 48 in), a strip log (A1). */
function poster(kind: "a0" | "map" | "plot"): Spec["write"] {
  return (doc, fonts, r) => {
    if (kind === "a0") {
      const c = new Canvas(fonts, 2384, 3370);
      c.ops.push("q 0.1 0.2 0.45 rg 0 3120 2384 250 re f Q");
      c.line(sentence(r).slice(0, 60), 100, 3220, "bold", 64);
      const img = photo(doc, r, 900, 600);
      for (let col = 0; col < 3; col++) {
        let y = 3050;
        const x = 100 + col * 740;
        while (y > 200) {
          const what = r();
          if (what < 0.2 && y > 700) {
            barChart(c, r, x, y - 450, 660, 420);
            y -= 490;
          } else if (what < 0.3 && y > 700) {
            c.image(`Im${col}`, img, x, y - 440, 660, 440);
            y -= 480;
          } else y = c.text(paragraph(r, 3 + Math.floor(r() * 3)), x, y, 660, "serif", 22, 27) - 24;
        }
      }
      c.addTo(doc);
    } else if (kind === "map") {
      const c = new Canvas(fonts, 2592, 3456);
      contourMap(c, r, 60, 60, 2472, 3336, 600);
      for (let i = 0; i < 120; i++) c.line(word(r), between(r, 100, 2400), between(r, 100, 3300), "sans", between(r, 9, 20));
      c.addTo(doc);
    } else {
      const c = new Canvas(fonts, 1684, 2384);
      let y = 2280;
      c.line(`Strip log ${word(r)}-${word(r)}`, 60, 2320, "bold", 28);
      while (y > 80) {
        const h = between(r, 20, 90);
        c.ops.push(`q ${n(r())} ${n(0.5 + 0.5 * r())} ${n(0.3 + 0.5 * r())} rg 420 ${n(y - h)} 140 ${n(h)} re f 0 G 0.5 w 420 ${n(y - h)} 140 ${n(h)} re S Q`);
        c.text(paragraph(r, 1 + Math.floor(r() * 2)), 600, y - 10, 1000, "sans", 9, 11);
        c.line(word(r), 80, y - 14, "sans", 11);
        y -= h;
      }
      c.addTo(doc);
    }
  };
}

function letter(pages: number): Spec["write"] {
  return (doc, fonts, r) => {
    for (let p = 0; p < pages; p++) {
      const c = new Canvas(fonts, 612, 792);
      c.ops.push(`q 0.7 0.1 0.1 rg 72 730 m 92 760 l 112 730 l f 0.1 0.1 0.5 RG 2 w 72 722 m 540 722 l S Q`);
      c.line(`${word(r)} & ${word(r)}`.toUpperCase(), 124, 738, "bold", 16);
      let y = 680;
      if (p === 0) {
        for (let i = 0; i < 4; i++) c.line(sentence(r).slice(0, 36), 72, (y -= 13), "serif", 11);
        y -= 30;
        c.line(`Dear ${word(r)},`, 72, y, "serif", 11);
        y -= 24;
      }
      while (y > 140) y = c.text(paragraph(r, 3 + Math.floor(r() * 4)), 72, y, 468, "serif", 11, 14) - 10;
      c.line(word(r), 72, 100, "italic", 12);
      c.addTo(doc);
    }
  };
}

function form(pages: number): Spec["write"] {
  return (doc, fonts, r) => {
    for (let p = 0; p < pages; p++) {
      const c = new Canvas(fonts, 595, 842);
      c.line(`FORM ${word(r).toUpperCase()} ${p + 1}/${pages}`, 40, 800, "bold", 14);
      let y = 770;
      c.ops.push("q 0.5 w 0 G");
      while (y > 60) {
        const cols = 1 + Math.floor(r() * 4);
        const cw = 515 / cols;
        for (let i = 0; i < cols; i++) {
          c.ops.push(`${n(40 + i * cw)} ${n(y - 28)} ${n(cw)} 28 re S`);
          c.line(word(r), 44 + i * cw, y - 10, "sans", 7);
          if (r() < 0.7) c.line(sentence(r).slice(0, Math.floor(cw / 5)), 44 + i * cw, y - 23, "mono", 9);
        }
        y -= 28;
      }
      c.ops.push("Q");
      c.addTo(doc);
    }
  };
}

/** The corpus: about 560 pages through all three routes (large, small, single page). */
export const E2E_CORPUS: Spec[] = [
  { name: "book.pdf", kind: "book-like text: 6×9 in, embedded serif, chapters, footnotes", write: book(300) },
  { name: "annual-report.pdf", kind: "two-column report: text, bar/line/pie charts, JPEG photos", write: report(60) },
  { name: "scan-gray.pdf", kind: "grey scans: one 150 dpi JPEG per Letter page, skewed, noisy", write: scans(24, "gray") },
  { name: "scan-fax.pdf", kind: "black-and-white scans: one 200 dpi 1-bit Flate image per page", write: scans(20, "fax") },
  { name: "drawings.pdf", kind: "A3 technical drawings: outlines, hatching, holes, dimensions", write: drawings(20) },
  { name: "poster-a0.pdf", kind: "one A0 page: poster with text, charts, a photo", write: poster("a0") },
  { name: "map-36x48in.pdf", kind: "one 36×48 in page: 600 contour lines, labels", write: poster("map") },
  { name: "strip-log-a1.pdf", kind: "one A1 page: coloured strata and notes", write: poster("plot") },
  ...Array.from({ length: 14 }, (_, i) => ({
    name: `letters/letter-${String(i + 1).padStart(2, "0")}.pdf`,
    kind: "business letter, 1–4 pages",
    write: letter(1 + (i % 4)),
  })),
  ...Array.from({ length: 12 }, (_, i) => ({
    name: `forms/form-${String(i + 1).padStart(2, "0")}.pdf`,
    kind: "boxed form, 2–8 pages",
    write: form(2 + ((i * 5) % 7)),
  })),
];
