import * as mupdf from "mupdf";
import { describe, expect, it } from "vitest";
import { ImageDecodeError, measureInk } from "./ink.js";

/** A white RGB PNG of w×h with a black rectangle of bw×bh in its corner. */
function png(w: number, h: number, bw: number, bh: number): Uint8Array {
  const page = new mupdf.Pixmap(mupdf.ColorSpace.DeviceRGB, [0, 0, w, h], false);
  page.clear(255);
  const pixels = page.getPixels();
  const stride = page.getStride();
  for (let y = 0; y < bh; y++) for (let x = 0; x < bw * 3; x++) pixels[y * stride + x] = 0;
  return page.asPNG();
}

describe("measureInk", () => {
  it("counts the dark pixels of a page", () => {
    const r = measureInk(png(200, 100, 50, 40));
    expect(r).toMatchObject({ width: 200, height: 100, inkPixels: 2000, blank: false });
    expect(r.inkCoverage).toBeCloseTo(0.1, 6);
  });

  it("flags a white page as blank, and a page with a speck below the threshold too", () => {
    expect(measureInk(png(300, 300, 0, 0))).toMatchObject({ inkPixels: 0, inkCoverage: 0, blank: true, meanGray: 255 });
    expect(measureInk(png(300, 300, 2, 2)).blank).toBe(true);
    expect(measureInk(png(300, 300, 2, 2), { blankThreshold: 0.00001 }).blank).toBe(false);
  });

  it("rejects bytes that are not an image", () => {
    expect(() => measureInk(new TextEncoder().encode("not a png"))).toThrow(ImageDecodeError);
  });
});
