import { crc32, deflateSync } from "node:zlib";

/**
 * zlib level of the PNGs this library writes. Level 1 with no row filter is about four times
 * faster than mupdf's own encoder (zlib's default level, in WebAssembly) for PNGs about 30%
 * larger; measurements per level are in bench/README.md. Lossless at every level.
 */
export const DEFAULT_PNG_LEVEL = 1;

/** Raw pixels as mupdf lays them out: `stride` bytes a row, `channels` bytes a pixel (gray, gray+alpha, RGB or RGBA). */
export interface RawPixels {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  stride: number;
  channels: 1 | 2 | 3 | 4;
}

const SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
const COLOR_TYPE = { 1: 0, 2: 4, 3: 2, 4: 6 } as const;

function chunk(type: string, data: Uint8Array): Buffer[] {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4))), 0);
  return [head, Buffer.from(data.buffer, data.byteOffset, data.byteLength), crc];
}

// The filtered rows of the last page, kept for the next one: a page at 150 dpi is ~6 MB of rows,
// and a fresh ArrayBuffer of that size per page drove a full garbage collection every ~3 pages
// in each render worker (V8 collects when external memory grows). One hostile page size must not
// pin its buffer for the thread's life, hence the cap.
const KEEP_ROWS_BYTES = 64 * 2 ** 20;
let scratch: Buffer | undefined;

function rowBuffer(bytes: number): Buffer {
  if (scratch && scratch.byteLength >= bytes) return scratch.subarray(0, bytes);
  // Not Buffer.allocUnsafe: pooled memory could be shared with other small Buffers.
  const fresh = Buffer.from(new ArrayBuffer(bytes));
  if (bytes <= KEEP_ROWS_BYTES) scratch = fresh;
  return fresh;
}

/**
 * Encodes 8-bit pixels as a PNG with Node's zlib (native, unlike mupdf's encoder, which runs in
 * WebAssembly). Rows are stored unfiltered: at the low levels that pay off, the filters cost more
 * CPU in JavaScript than they save in bytes.
 */
export function encodePngPixels(px: RawPixels, level = DEFAULT_PNG_LEVEL): Uint8Array {
  const { width, height, stride, channels, data } = px;
  checkLevel(level);
  const row = width * channels;
  // One filter byte (0: none) before each row, as PNG wants them.
  const raw = rowBuffer((row + 1) * height);
  for (let y = 0, o = 0; y < height; y++, o += row + 1) {
    raw[o] = 0;
    raw.set(data.subarray(y * stride, y * stride + row), o + 1);
  }
  return encodeFilteredRows(raw, width, height, channels, level);
}

/**
 * Spare bytes that filterRowsInPlace needs after `height` rows of `row` bytes: one filter byte a
 * row, so one spare row holds them all when a row has at least `height` bytes (any page not over
 * three times as tall as wide, in RGB). 0: none is enough, use encodePngPixels.
 */
export function spareRowsForFilters(row: number, height: number): number {
  return height <= row ? 1 : 0;
}

/**
 * PNG of `height` packed rows of `width` × `channels` bytes at the start of `px`, which must hold
 * spareRowsForFilters more rows after them: the rows are moved down in place to make room for
 * their filter bytes, so no second copy of the pixels is made (the pixels are gone afterwards).
 */
export function encodePackedRowsInPlace(
  px: Uint8Array | Uint8ClampedArray,
  width: number,
  height: number,
  channels: RawPixels["channels"],
  level = DEFAULT_PNG_LEVEL,
): Uint8Array {
  checkLevel(level);
  const row = width * channels;
  const bytes = (row + 1) * height;
  if (spareRowsForFilters(row, height) === 0 || px.length < bytes) throw new RangeError(`no room for the filter bytes of ${height} rows`);
  // From the last row up, each row lands past where the rows above it still are.
  for (let y = height - 1; y >= 0; y--) {
    px.copyWithin(y * (row + 1) + 1, y * row, y * row + row);
    px[y * (row + 1)] = 0;
  }
  return encodeFilteredRows(new Uint8Array(px.buffer, px.byteOffset, bytes), width, height, channels, level);
}

function checkLevel(level: number): void {
  if (!(level >= 0 && level <= 9 && Number.isInteger(level))) throw new RangeError(`PNG level must be 0-9, got ${level}`);
}

/** PNG of rows that already carry their filter byte (0) each. */
function encodeFilteredRows(raw: Uint8Array, width: number, height: number, channels: RawPixels["channels"], level: number): Uint8Array {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  header[9] = COLOR_TYPE[channels];
  // zlib writes into chunkSize-byte buffers and concatenates them when there are several: with
  // its 16 KiB default a page came out of ~30 fresh buffers and a copy. An eighth of the rows holds
  // the whole stream of most pages at level 1 (text pages compress to ~5%, scans to ~15-30%).
  const idat = deflateSync(raw, { level, chunkSize: Math.max(64 * 1024, raw.byteLength >>> 3) });
  const parts = [SIGNATURE, ...chunk("IHDR", header), ...chunk("IDAT", idat), ...chunk("IEND", new Uint8Array(0))];
  // A plain Uint8Array of its own: Node's pooled Buffer memory cannot be transferred to another thread.
  const png = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    png.set(p, at);
    at += p.byteLength;
  }
  return png;
}
