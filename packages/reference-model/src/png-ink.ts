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
 * interlaced), which the caller hands to mupdf, and throws when the image data is damaged, would
 * inflate past the image's size, or the image has more than `maxPixels` pixels. RGB
 * becomes gray as mupdf's fast path does: ((r+1)·77 + (g+1)·150 + (b+1)·28) >> 8.
 */
export function pngInk(bytes: Uint8Array, inkThreshold: number, maxPixels: number): InkCount | undefined {
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
  if (width * height > maxPixels) throw new RangeError(`the image is ${width}×${height} pixels, more than the ${maxPixels} this model reads`);
  const channels = colorType === 2 ? 3 : 1;
  const stride = width * channels;
  const size = (stride + 1) * height;
  // One output buffer of the image's size (plus a byte, so zlib stops inside it rather than
  // asking for another): left to its default 16 KiB chunks, inflate allocated and then
  // concatenated hundreds of them per page. Nothing past that size is inflated: data that
  // would inflate further (a few KB can inflate to gigabytes) is refused at the first extra byte.
  let inflated: Buffer;
  try {
    inflated = inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat), { chunkSize: Math.max(64, size + 1), maxOutputLength: size });
  } catch (e) {
    if ((e as { code?: string }).code !== "ERR_BUFFER_TOO_LARGE") throw e;
    const kind = channels === 3 ? "RGB" : "gray";
    throw new RangeError(`its image data inflates past the ${size} bytes a ${width}×${height} ${kind} image needs`, { cause: e });
  }
  // A plain Uint8Array, like the rows unfiltered below: one kind of array keeps RowCounter's reads fast.
  const raw = new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
  if (raw.length < size) throw new RangeError(`PNG data ends after ${raw.length} of ${size} bytes`);

  const count = new RowCounter(inkThreshold, channels);
  // Rounded up to whole words, so RowCounter reads a row's last bytes as a word too.
  let prev = new Uint8Array((stride + 3) & ~3);
  let cur = new Uint8Array((stride + 3) & ~3);
  let prevIsRaw = -1; // the previous row is still in `raw` at this offset (it had no filter)
  for (let y = 0; y < height; y++) {
    const start = y * (stride + 1) + 1;
    const filter = raw[start - 1]!;
    if (filter === 0) {
      count.row(raw, start, start + stride);
      prevIsRaw = start;
    } else {
      if (prevIsRaw >= 0) prev.set(raw.subarray(prevIsRaw, prevIsRaw + stride));
      unfilter(filter, raw.subarray(start, start + stride), prev, cur, channels);
      count.row(cur, 0, stride);
      [prev, cur] = [cur, prev];
      prevIsRaw = -1;
    }
  }
  return { width, height, ...count.totals() };
}

const WHITE = -1; // four 0xFF bytes read as an Int32

/**
 * Adds up rows of pixels. Pages are mostly white, so it reads a row four bytes at a time and
 * counts white runs without looking at their pixels (a white pixel is gray 255, whatever the
 * channels); only the pixels that share a word with a darker byte are converted one by one.
 */
class RowCounter {
  private inkPixels = 0;
  private graySum = 0;
  private white = 0;
  private words: Int32Array = new Int32Array(0);

  constructor(
    private readonly inkThreshold: number,
    private readonly channels: 1 | 3,
  ) {}

  /** Counts the pixels of bytes[from, to): whole pixels, `channels` bytes each. */
  row(bytes: Uint8Array, from: number, to: number): void {
    const base = bytes.byteOffset;
    if (this.words.buffer !== bytes.buffer) this.words = new Int32Array(bytes.buffer, 0, bytes.buffer.byteLength >> 2);
    const words = this.words;
    const ps = this.channels;
    // Words are aligned in the whole ArrayBuffer; those that stick out of the row (into the
    // filter byte or a neighbour) only send their pixels down the slow path, never count.
    let done = from; // pixels before this are counted
    let w = (base + from) >> 2;
    const lastWord = Math.min((base + to - 1) >> 2, words.length - 1);
    while (done < to) {
      while (w < lastWord && (words[w]! & words[w + 1]!) === WHITE) w += 2;
      while (w <= lastWord && words[w] === WHITE) w++;
      // Every byte from `done` up to word w is white.
      const whiteEnd = Math.min(w * 4 - base, to);
      if (whiteEnd > done) {
        const n = Math.floor((whiteEnd - done) / ps);
        this.white += n;
        done += n * ps;
      }
      if (w > lastWord) break;
      // Then the run of words that are not all white, pixel by pixel.
      let dark = w + 1;
      while (dark <= lastWord && words[dark] !== WHITE) dark++;
      done = this.slow(bytes, done, Math.min(dark * 4 - base, to));
      w = (base + done) >> 2;
    }
    // Bytes past the last whole word of the buffer, if any.
    if (done < to) this.slow(bytes, done, to);
  }

  totals(): { inkPixels: number; graySum: number } {
    return { inkPixels: this.inkPixels + (255 < this.inkThreshold ? this.white : 0), graySum: this.graySum + 255 * this.white };
  }

  /** Counts pixels one by one from `at` until one ends at or past `end`; returns where it stopped. */
  private slow(bytes: Uint8Array, at: number, end: number): number {
    const t = this.inkThreshold;
    let ink = 0;
    let sum = 0;
    if (this.channels === 3) {
      for (; at < end; at += 3) {
        const g = ((bytes[at]! + 1) * 77 + (bytes[at + 1]! + 1) * 150 + (bytes[at + 2]! + 1) * 28) >> 8;
        sum += g;
        if (g < t) ink++;
      }
    } else {
      for (; at < end; at++) {
        const g = bytes[at]!;
        sum += g;
        if (g < t) ink++;
      }
    }
    this.inkPixels += ink;
    this.graySum += sum;
    return at;
  }
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
