import * as mupdf from "mupdf";
import { describe, expect, it } from "vitest";
import { encodeDrawnPage, pagePixmap } from "./pixels.js";
import { encodePngPixels } from "./png.js";

/** Deterministic pixels with edges, gradients and noise, so every level has something to squeeze. */
function pixels(width: number, height: number, channels: number, seed: number): Uint8Array {
  const px = new Uint8Array(width * height * channels);
  let x = seed;
  for (let i = 0; i < px.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    px[i] = i % 7 === 0 ? x >>> 24 : (i * 3) & 255;
  }
  // Opaque: mupdf premultiplies what it decodes, so only an opaque alpha reads back unchanged.
  if (channels === 2 || channels === 4) for (let i = channels - 1; i < px.length; i += channels) px[i] = 255;
  return px;
}

/** What mupdf decodes from a PNG, as raw samples. */
function decode(png: Uint8Array): { width: number; height: number; n: number; samples: Uint8Array } {
  const image = new mupdf.Image(png);
  const pixmap = image.toPixmap();
  try {
    const n = pixmap.getNumberOfComponents();
    const width = pixmap.getWidth();
    const stride = pixmap.getStride();
    const height = pixmap.getHeight();
    const all = pixmap.getPixels();
    const samples = new Uint8Array(width * n * height);
    for (let y = 0; y < height; y++) samples.set(all.subarray(y * stride, y * stride + width * n), y * width * n);
    return { width, height, n, samples };
  } finally {
    pixmap.destroy();
    image.destroy();
  }
}

describe("encodePngPixels", () => {
  it.each([
    [1, 0],
    [3, 1],
    [3, 6],
    [4, 9],
  ] as const)("is lossless: %i channels at level %i", (channels, level) => {
    const data = pixels(37, 23, channels, 7 + level);
    const png = encodePngPixels({ data, width: 37, height: 23, stride: 37 * channels, channels }, level);
    const back = decode(png);
    expect({ width: back.width, height: back.height, n: back.n }).toEqual({ width: 37, height: 23, n: channels });
    expect(Buffer.from(back.samples).equals(Buffer.from(data))).toBe(true);
  });

  it("encodes a small page after a large one from its own pixels only (the row buffer is reused)", () => {
    encodePngPixels({ data: pixels(200, 150, 3, 1), width: 200, height: 150, stride: 600, channels: 3 });
    const small = pixels(9, 5, 3, 2);
    const back = decode(encodePngPixels({ data: small, width: 9, height: 5, stride: 27, channels: 3 }));
    expect({ width: back.width, height: back.height }).toEqual({ width: 9, height: 5 });
    expect(Buffer.from(back.samples).equals(Buffer.from(small))).toBe(true);
  });

  it("reads rows `stride` apart and ignores the padding between them", () => {
    const data = new Uint8Array(10 * 4).fill(99);
    for (let y = 0; y < 4; y++) data.set([y, y + 1, y + 2, y + 3, y + 4, y + 5], y * 10);
    const back = decode(encodePngPixels({ data, width: 2, height: 4, stride: 10, channels: 3 }));
    expect([...back.samples.subarray(6, 12)]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("refuses a level zlib does not have", () => {
    expect(() => encodePngPixels({ data: new Uint8Array(3), width: 1, height: 1, stride: 3, channels: 3 }, 10)).toThrow(RangeError);
  });

  it.each([
    ["in place, with a spare row below the page", 120, 90],
    ["by copy, for a page over three times as tall as wide", 10, 40],
  ])("encodes a drawn page's pixmap %s, to the same pixels mupdf's own encoder does", (_, width, height) => {
    const page = pixels(width, height, 3, 3);
    const drawn = pagePixmap(width, height);
    const plain = new mupdf.Pixmap(mupdf.ColorSpace.DeviceRGB, [0, 0, width, height], false);
    try {
      // What spills past the page's bottom edge is not part of the page.
      drawn.getPixels().fill(7).set(page);
      plain.getPixels().set(page);
      const ours = decode(encodeDrawnPage(drawn, height, 1));
      const theirs = decode(plain.asPNG());
      expect({ width: ours.width, height: ours.height }).toEqual({ width, height });
      expect(Buffer.from(ours.samples).equals(Buffer.from(theirs.samples))).toBe(true);
    } finally {
      drawn.destroy();
      plain.destroy();
    }
  });
});
