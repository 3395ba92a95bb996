import { inflateSync } from "node:zlib";

/** What measureInk needs of an image: its size, its dark pixels and the sum of its gray levels. */
export interface InkCount {
  width: number;
  height: number;
  inkPixels: number;
  graySum: number;
}

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/**
 * Counts the ink of a PNG read with Node's zlib (native) instead of mupdf (WebAssembly): the
 * reference model scores every page, and decoding was most of its cost. Reads 8-bit gray and RGB,
 * non-interlaced PNGs (what the pipeline and mupdf write) in one pass, unfiltered rows straight
 * from the inflated data; returns undefined for anything else (palette, 16-bit, alpha,
 * interlaced), which the caller hands to mupdf, and throws when the image data is damaged. RGB
 * becomes gray as mupdf's fast path does: ((r+1)·77 + (g+1)·150 + (b+1)·28) >> 8.
 */
export function pngInk(bytes: Uint8Array, inkThreshold: number): InkCount | undefined {
  if (bytes.length < 33 || SIGNATURE.some((b, i) => bytes[i] !== b)) return undefined;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.toString("latin1", 12, 16) !== "IHDR") return undefined;
  const width = buf.readUInt32BE(16);
  const height = buf.readUInt32BE(20);
  const [depth, colorType, interlace] = [buf[24], buf[25], buf[28]];
  if (depth !== 8 || interlace !== 0 || (colorType !== 0 && colorType !== 2) || width === 0 || height === 0) return undefined;
  const idat: Buffer[] = [];
  for (let at = 8; at + 8 <= buf.length; ) {
    const length = buf.readUInt32BE(at);
    const type = buf.toString("latin1", at + 4, at + 8);
    if (type === "IDAT") idat.push(buf.subarray(at + 8, at + 8 + length));
    if (type === "IEND") break;
    at += 12 + length;
  }
  const channels = colorType === 2 ? 3 : 1;
  const stride = width * channels;
  const raw = inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat));
  if (raw.length < (stride + 1) * height) throw new RangeError(`PNG data ends after ${raw.length} of ${(stride + 1) * height} bytes`);

  let inkPixels = 0;
  let graySum = 0;
  let prev = new Uint8Array(stride);
  let cur = new Uint8Array(stride);
  let prevIsRaw = -1; // the previous row is still in `raw` at this offset (it had no filter)
  for (let y = 0; y < height; y++) {
    const start = y * (stride + 1) + 1;
    const filter = raw[start - 1]!;
    let row: Uint8Array;
    let at: number;
    if (filter === 0) {
      row = raw;
      at = start;
      prevIsRaw = start;
    } else {
      if (prevIsRaw >= 0) prev.set(raw.subarray(prevIsRaw, prevIsRaw + stride));
      unfilter(filter, raw.subarray(start, start + stride), prev, cur, channels);
      row = cur;
      at = 0;
      [prev, cur] = [cur, prev];
      prevIsRaw = -1;
    }
    if (channels === 3) {
      for (let i = at, end = at + stride; i < end; i += 3) {
        const g = ((row[i]! + 1) * 77 + (row[i + 1]! + 1) * 150 + (row[i + 2]! + 1) * 28) >> 8;
        graySum += g;
        if (g < inkThreshold) inkPixels++;
      }
    } else {
      for (let i = at, end = at + stride; i < end; i++) {
        const g = row[i]!;
        graySum += g;
        if (g < inkThreshold) inkPixels++;
      }
    }
  }
  return { width, height, inkPixels, graySum };
}

/** Undoes a PNG row filter (types 1-4) into `cur`, given the previous row's result. */
function unfilter(type: number, line: Uint8Array, prev: Uint8Array, cur: Uint8Array, bpp: number): void {
  const n = line.length;
  switch (type) {
    case 1:
      for (let x = 0; x < n; x++) cur[x] = line[x]! + (x >= bpp ? cur[x - bpp]! : 0);
      return;
    case 2:
      for (let x = 0; x < n; x++) cur[x] = line[x]! + prev[x]!;
      return;
    case 3:
      for (let x = 0; x < n; x++) cur[x] = line[x]! + (((x >= bpp ? cur[x - bpp]! : 0) + prev[x]!) >> 1);
      return;
    case 4:
      for (let x = 0; x < n; x++) {
        const a = x >= bpp ? cur[x - bpp]! : 0;
        const b = prev[x]!;
        const c = x >= bpp ? prev[x - bpp]! : 0;
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        cur[x] = line[x]! + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      return;
    default:
      throw new RangeError(`unknown PNG row filter ${type}`);
  }
}
