import { crc32, deflateSync } from "node:zlib";
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
  it("counts the dark pixels of a page", async () => {
    const r = await measureInk(png(200, 100, 50, 40));
    expect(r).toMatchObject({ width: 200, height: 100, inkPixels: 2000, blank: false });
    expect(r.inkCoverage).toBeCloseTo(0.1, 6);
  });

  it("flags a white page as blank, and a page with a speck below the threshold too", async () => {
    expect(await measureInk(png(300, 300, 0, 0))).toMatchObject({ inkPixels: 0, inkCoverage: 0, blank: true, meanGray: 255 });
    expect((await measureInk(png(300, 300, 2, 2))).blank).toBe(true);
    expect((await measureInk(png(300, 300, 2, 2), { blankThreshold: 0.00001 })).blank).toBe(false);
  });

  it("reads a PNG with alpha as if on white paper", async () => {
    // 10×10 RGBA: transparent, but for an opaque black row and a half-transparent black one.
    const pix = new mupdf.Pixmap(mupdf.ColorSpace.DeviceRGB, [0, 0, 10, 10], true);
    try {
      const px = pix.getPixels();
      px.fill(0);
      for (let x = 0; x < 10; x++) {
        px[x * 4 + 3] = 255;
        px[pix.getStride() + x * 4 + 3] = 100;
      }
      const r = await measureInk(pix.asPNG());
      expect(r).toMatchObject({ width: 10, height: 10, inkPixels: 10 });
      expect(r.meanGray).toBeCloseTo((10 * 0 + 10 * 155 + 80 * 255) / 100, 6);
    } finally {
      pix.destroy();
    }
  });

  it("rejects bytes that are not an image", async () => {
    await expect(measureInk(new TextEncoder().encode("not a png"))).rejects.toThrow(ImageDecodeError);
  });
});

describe("measureInk on the PNGs the pipeline writes", () => {
  /** Deterministic RGB pixels: text-like dark strokes on white, some colour. */
  function page(w: number, h: number): mupdf.Pixmap {
    const pix = new mupdf.Pixmap(mupdf.ColorSpace.DeviceRGB, [0, 0, w, h], false);
    const px = pix.getPixels();
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = y * pix.getStride() + x * 3;
        const stroke = (x * 7 + y * 3) % 23 < 4;
        px[o] = stroke ? 20 : 255;
        px[o + 1] = stroke ? 20 : 255 - (x % 9);
        px[o + 2] = stroke ? 40 : 250;
      }
    }
    return pix;
  }

  it("reads the PNGs of the same pixels from our encoder and from mupdf's to the same figures", async () => {
    const { encodePngPixels } = await import("@docpipe/pdf");
    const pix = page(97, 61);
    try {
      const ours = await measureInk(encodePngPixels({ data: pix.getPixels(), width: 97, height: 61, stride: pix.getStride(), channels: 3 }));
      const theirs = await measureInk(pix.asPNG());
      expect(ours).toEqual(theirs);
      expect(ours.inkPixels).toBeGreaterThan(0);
    } finally {
      pix.destroy();
    }
  });

  it.each([1, 3] as const)("counts white runs and dark pixels at every byte alignment (%i channels)", async (channels) => {
    const { encodePngPixels } = await import("@docpipe/pdf");
    // Rows of mostly white with a few darker bytes (254 is white to the eye but not a white byte).
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let width = 1; width <= 23; width++) {
      const height = 9;
      const data = new Uint8Array(width * height * channels).map(() => (next() < 0.9 ? 255 : next() < 0.5 ? 254 : Math.floor(next() * 200)));
      const levels = Array.from({ length: width * height }, (_, i) =>
        channels === 1 ? data[i]! : ((data[i * 3]! + 1) * 77 + (data[i * 3 + 1]! + 1) * 150 + (data[i * 3 + 2]! + 1) * 28) >> 8,
      );
      const png = encodePngPixels({ data, width, height, stride: width * channels, channels });
      for (const inkThreshold of [128, 255, 256]) {
        const r = await measureInk(png, { inkThreshold });
        expect(r.inkPixels, `width ${width}, threshold ${inkThreshold}`).toBe(levels.filter((v) => v < inkThreshold).length);
        expect(r.meanGray).toBeCloseTo(levels.reduce((a, v) => a + v, 0) / levels.length, 9);
      }
    }
  });

  it("turns a PNG whose image data is damaged into an ImageDecodeError", async () => {
    const good = png(50, 50, 10, 10);
    const bad = good.slice();
    bad.fill(7, 45, bad.length - 20);
    await expect(measureInk(bad)).rejects.toThrow(ImageDecodeError);
  });
});

describe("measureInk on filtered PNGs (as other encoders write them)", () => {
  /** An 8-bit gray or RGB PNG whose row y uses filter y % 5 (None, Sub, Up, Average, Paeth). */
  function filteredPng(px: Uint8Array, width: number, height: number, channels: 1 | 3): Uint8Array {
    const stride = width * channels;
    const raw = new Uint8Array((stride + 1) * height);
    const at = (y: number, x: number) => (y < 0 || x < 0 ? 0 : px[y * stride + x]!);
    for (let y = 0; y < height; y++) {
      const f = y % 5;
      raw[y * (stride + 1)] = f;
      for (let x = 0; x < stride; x++) {
        const a = at(y, x - channels);
        const b = at(y - 1, x);
        const c = at(y - 1, x - channels);
        const p = a + b - c;
        const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
        const pred = [0, a, b, (a + b) >> 1, paeth][f]!;
        raw[y * (stride + 1) + 1 + x] = (at(y, x) - pred) & 255;
      }
    }
    return pngOf(raw, width, height, channels);
  }

  /** A PNG of `raw` (filter bytes and rows) as the image data of a width×height image, whatever raw's length. */
  function pngOf(raw: Uint8Array, width: number, height: number, channels: 1 | 3): Uint8Array {
    const chunk = (type: string, data: Uint8Array) => {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(data.length);
      head.write(type, 4, "latin1");
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(data, crc32(head.subarray(4))));
      return [head, Buffer.from(data), crc];
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(width);
    ihdr.writeUInt32BE(height, 4);
    ihdr[8] = 8;
    ihdr[9] = channels === 3 ? 2 : 0;
    return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), ...chunk("IHDR", ihdr), ...chunk("IDAT", deflateSync(raw)), ...chunk("IEND", new Uint8Array(0))]);
  }

  it.each([1, 3] as const)("undoes every row filter (%i channels)", async (channels) => {
    const width = 41;
    const height = 17;
    const px = new Uint8Array(width * height * channels);
    for (let i = 0; i < px.length; i++) px[i] = (i * 37 + ((i * i) % 11) * 19) & 255;
    const gray = (i: number) =>
      channels === 1 ? px[i]! : ((px[i * 3]! + 1) * 77 + (px[i * 3 + 1]! + 1) * 150 + (px[i * 3 + 2]! + 1) * 28) >> 8;
    const levels = Array.from({ length: width * height }, (_, i) => gray(i));
    const r = await measureInk(filteredPng(px, width, height, channels));
    expect(r.inkPixels).toBe(levels.filter((v) => v < 128).length);
    expect(r.meanGray).toBeCloseTo(levels.reduce((s, v) => s + v, 0) / levels.length, 9);
  });

  it("refuses image data that inflates past what the image's size needs, saying so", async () => {
    // 4×4 gray needs 4·(1+4) = 20 bytes; this data inflates to 16 MiB (a 16 KiB PNG).
    const bomb = pngOf(new Uint8Array(16 << 20), 4, 4, 1);
    expect(bomb.length).toBeLessThan(32 << 10);
    await expect(measureInk(bomb)).rejects.toThrow(/inflates past the 20 bytes a 4×4 gray image needs/);
    // One byte too many is refused too; exactly the size is read.
    await expect(measureInk(pngOf(new Uint8Array(21), 4, 4, 1))).rejects.toThrow(ImageDecodeError);
    expect(await measureInk(pngOf(new Uint8Array(20), 4, 4, 1))).toMatchObject({ width: 4, height: 4, inkPixels: 16 });
  });

  it("refuses an image with more pixels than maxPixels before decoding it", async () => {
    await expect(measureInk(pngOf(new Uint8Array(10), 100_000, 100_000, 3))).rejects.toThrow(/100000×100000 pixels, more than the 50000000/);
    await expect(measureInk(pngOf(new Uint8Array(3 * 101 * 100), 100, 100, 3), { maxPixels: 9_999 })).rejects.toThrow(ImageDecodeError);
    // An image mupdf decodes (a JPEG) is held to the same cap.
    const pix = new mupdf.Pixmap(mupdf.ColorSpace.DeviceRGB, [0, 0, 100, 100], false);
    try {
      pix.clear(255);
      await expect(measureInk(pix.asJPEG(90, false), { maxPixels: 9_999 })).rejects.toThrow(/100×100 pixels, more than the 9999/);
      expect(await measureInk(pix.asJPEG(90, false), { maxPixels: 10_000 })).toMatchObject({ width: 100, height: 100 });
    } finally {
      pix.destroy();
    }
  });
});
