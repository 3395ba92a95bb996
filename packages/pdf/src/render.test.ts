import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCorpus, generatePdf, PAGE_SIZES, type Corpus } from "./corpus.js";
import { PdfError } from "./errors.js";
import { fitPixels } from "./pixels.js";
import { renderPage } from "./render.js";
import { decodePng, expectedPixels } from "./test-helpers.js";

let dir: string;
let corpus: Corpus;
const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-pdf-render-"));
  corpus = await generateCorpus(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("renderPage", () => {
  it("renders every size and rotation at round(pt / 72 × dpi), sides swapped for 90 and 270", async () => {
    const mixed = corpus.files.find((f) => f.pageCount === 24)!;
    for (const [i, p] of mixed.pages.entries()) {
      const r = await renderPage(mixed.path, i, { dpi: 100 });
      expect([...r.png.subarray(0, 8)]).toEqual(PNG);
      expect({ width: r.width, height: r.height }, `page ${i + 1} ${JSON.stringify(p)}`).toEqual(expectedPixels(p, 100));
      expect(r.dpi).toBe(100);
    }
  });

  it("defaults to 150 dpi", async () => {
    const r = await renderPage(corpus.files[0]!.path, 0);
    expect(r).toMatchObject({ width: 1275, height: 1650, dpi: 150 });
  });

  it("turns the content with /Rotate: the text line moves from the top edge to the right edge at 90", async () => {
    const path = join(dir, "rot.pdf");
    const [w, h] = PAGE_SIZES.letter;
    await generatePdf(path, [
      { widthPt: w, heightPt: h, rotate: 0, content: "text" },
      { widthPt: w, heightPt: h, rotate: 90, content: "text" },
    ]);
    // The text sits near the top-left corner of the unrotated page; rotated 90° clockwise it
    // is near the top-right corner, running downwards.
    const up = await renderPage(path, 0, { dpi: 72 });
    const turned = await renderPage(path, 1, { dpi: 72 });
    const inkIn = (png: Uint8Array, x0: number, y0: number, x1: number, y1: number) => {
      const img = decodePng(png);
      let dark = 0;
      for (let y = y0; y < y1; y += 2) for (let x = x0; x < x1; x += 2) if (img.at(x, y)[0] < 128) dark++;
      return dark;
    };
    expect(inkIn(up.png, 30, 10, 200, 40)).toBeGreaterThan(20);
    expect(inkIn(turned.png, turned.width - 40, 30, turned.width - 10, 200)).toBeGreaterThan(20);
    expect(inkIn(turned.png, 30, 10, 200, 40)).toBe(0);
  });

  it("draws the image content", async () => {
    const f = corpus.files.find((x) => x.path.endsWith("twelve-letter.pdf"))!;
    const r = await renderPage(f.path, 1, { dpi: 50 }); // an image page
    const img = decodePng(r.png);
    expect([img.width, img.height]).toEqual([r.width, r.height]);
    const [rr, gg, bb] = img.at(Math.floor(r.width / 2), Math.floor(r.height / 2));
    expect(rr + gg + bb).toBeLessThan(600); // not white paper
    expect(img.at(10, Math.floor(r.height / 2))).toEqual([255, 255, 255]); // the margin is
  });

  it("scales a page down to fit maxPixels and reports the resolution used", async () => {
    const r = await renderPage(corpus.files[0]!.path, 0, { dpi: 300, maxPixels: 1_000_000 });
    expect(r.width * r.height).toBeLessThanOrEqual(1_000_000);
    expect(r.width * r.height).toBeGreaterThan(990_000);
    expect(r.dpi).toBeLessThan(300);
    expect(r.width).toBe(Math.round((612 / 72) * r.dpi));
  });

  it("refuses a page that cannot fit even one pixel, and bad page indexes", async () => {
    await expect(renderPage(corpus.files[0]!.path, 0, { maxPixels: 0 })).rejects.toThrow(RangeError);
    const e = await renderPage(corpus.files[0]!.path, 0, { maxPixels: 0.5 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PdfError);
    expect(e).toMatchObject({ code: "page_too_large", permanent: true });
    await expect(renderPage(corpus.files[0]!.path, 1)).rejects.toThrow(RangeError);
  });

  it("refuses an encrypted PDF", async () => {
    await expect(renderPage(corpus.invalid!.encrypted, 0)).rejects.toMatchObject({ code: "encrypted" });
  });
});

describe("fitPixels", () => {
  it("keeps the requested dpi when the page fits", () => {
    expect(fitPixels(595.28, 841.89, 150, 5e6)).toEqual({ width: 1240, height: 1754, dpi: 150 });
  });
  it("never exceeds maxPixels after rounding", () => {
    for (const max of [1e4, 123_457, 2e6]) {
      const s = fitPixels(595.28, 841.89, 600, max);
      expect(s.width * s.height).toBeLessThanOrEqual(max);
    }
  });
});

describe("renderPage memory", () => {
  it("reports a page whose pixmap cannot be allocated as page_too_large, and mupdf keeps working", async () => {
    const path = corpus.files[0]!.path;
    await expect(renderPage(path, 0, { dpi: 3000, maxPixels: 1e10 })).rejects.toMatchObject({ code: "page_too_large" });
    await expect(renderPage(path, 0, { dpi: 20 })).resolves.toMatchObject({ width: 170 });
  });
});
