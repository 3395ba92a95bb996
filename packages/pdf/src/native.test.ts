import { execFileSync } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspectPdf, MAX_MUPDF_FILE_BYTES, openPdf } from "./open.js";
import { PdfPool } from "./pool.js";
import { splitChunks, splitRange } from "./split.js";
import { pageTexts } from "./test-helpers.js";

function hasMutool(): boolean {
  try {
    execFileSync("mutool", ["-v"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * A 3-page PDF whose bulk is a sparse, unreferenced-by-pages stream of `gap` zeros: instant to
 * write, costs no disk, and with a gap over 2 GiB puts every page object past the 2 GiB mark.
 */
function writeSparsePdf(path: string, gap: number): void {
  const fd = openSync(path, "w");
  let pos = 0;
  const offsets: number[] = [];
  const put = (s: string) => {
    const b = Buffer.from(s, "latin1");
    writeSync(fd, b, 0, b.length, pos);
    pos += b.length;
  };
  const obj = (n: number, body: string) => {
    offsets[n] = pos;
    put(`${n} 0 obj\n${body}\nendobj\n`);
  };
  put("%PDF-1.7\n");
  offsets[7] = pos;
  put(`7 0 obj\n<< /Length ${gap} >>\nstream\n`);
  pos += gap;
  put("\nendstream\nendobj\n");
  obj(1, "<< /Type /Catalog /Pages 2 0 R /Filler 7 0 R >>");
  obj(2, "<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 >>");
  obj(6, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
  for (const n of [3, 4, 5]) {
    obj(n, `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Resources << /Font << /F1 6 0 R >> >> /Contents ${n + 5} 0 R >>`);
  }
  for (const [i, n] of [8, 9, 10].entries()) {
    const text = `BT /F1 20 Tf 20 100 Td (Huge page ${i + 1}) Tj ET`;
    obj(n, `<< /Length ${text.length} >>\nstream\n${text}\nendstream`);
  }
  const xref = pos;
  const rows = Array.from({ length: 10 }, (_, k) => `${String(offsets[k + 1]).padStart(10, "0")} 00000 n\r`);
  put(["xref", "0 11", "0000000000 65535 f\r", ...rows, "trailer", "<< /Size 11 /Root 1 0 R >>", "startxref", String(xref), "%%EOF", ""].join("\n"));
  closeSync(fd);
}

let dir: string;
let huge: string;
/** The same three pages, a few hundred bytes. */
let small: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-pdf-native-"));
  huge = join(dir, "huge.pdf");
  writeSparsePdf(huge, 2 ** 31 + 4096);
  small = join(dir, "small.pdf");
  writeSparsePdf(small, 16);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("files over mupdf WASM's 2 GiB", () => {
  it("are refused by openPdf, and by inspectPdf when the native fallback is off", async () => {
    expect((await stat(huge)).size).toBeGreaterThan(MAX_MUPDF_FILE_BYTES);
    expect(() => openPdf(huge)).toThrow(expect.objectContaining({ code: "file_too_large", permanent: true }));
    await expect(inspectPdf(huge, { mutool: false })).rejects.toMatchObject({ code: "file_too_large" });
    await expect(inspectPdf(huge, { mutool: "/nonexistent/mutool" })).rejects.toMatchObject({ code: "file_too_large" });
  });

  it.skipIf(!hasMutool())("are inspected and split by native mutool", async () => {
    await expect(inspectPdf(huge)).resolves.toMatchObject({ pageCount: 3, repaired: false });
    await expect(inspectPdf(huge, { maxPages: 2 })).rejects.toMatchObject({ code: "too_many_pages" });
    const out = join(dir, "two.pdf");
    await splitRange(huge, 2, 3, out);
    expect(pageTexts(out)).toEqual(["Huge page 2", "Huge page 3"]);
    await expect(splitRange(huge, 3, 4, out)).rejects.toThrow(RangeError);
    const chunks: string[][] = [];
    for await (const c of splitChunks(huge, { dir: join(dir, "chunks"), pagesPerChunk: 2 })) chunks.push(pageTexts(c.path));
    expect(chunks).toEqual([["Huge page 1", "Huge page 2"], ["Huge page 3"]]);
  });

  it.skipIf(!hasMutool())("go through native mutool from a PdfPool too, with the same results and refusals", async () => {
    const pool = new PdfPool({ size: 1 });
    try {
      await expect(pool.inspect(huge)).resolves.toMatchObject({ pageCount: 3, repaired: false, engine: "mutool" });
      await expect(pool.inspect(huge, { mutool: false })).rejects.toMatchObject({ code: "file_too_large" });
      const chunks: string[][] = [];
      for await (const c of pool.splitPieces(huge, { dir: join(dir, "pool-chunks"), pagesPerChunk: 2 })) chunks.push(pageTexts(c.bytes));
      expect(chunks).toEqual([["Huge page 1", "Huge page 2"], ["Huge page 3"]]);
      // mutool's chunk files were read and removed.
      expect(await readdir(join(dir, "pool-chunks"))).toEqual([]);
    } finally {
      await pool.close();
    }
  });
});

describe("nativeMinBytes", () => {
  it.skipIf(!hasMutool())("sends a smaller file through native mutool, with the same pages and chunks", async () => {
    await expect(inspectPdf(small)).resolves.toMatchObject({ pageCount: 3, engine: "mupdf" });
    await expect(inspectPdf(small, { nativeMinBytes: 1 })).resolves.toMatchObject({ pageCount: 3, engine: "mutool" });
    // It is mutool that reads it: without one, the file is refused as one past the WASM build's reach.
    await expect(inspectPdf(small, { nativeMinBytes: 1, mutool: "/nonexistent/mutool" })).rejects.toMatchObject({ code: "file_too_large" });
    await expect(splitRange(small, 1, 2, join(dir, "small-two.pdf"), { nativeMinBytes: 1, mutool: false })).rejects.toMatchObject({ code: "file_too_large" });
    const chunks: string[][] = [];
    for await (const c of splitChunks(small, { dir: join(dir, "small-chunks"), pagesPerChunk: 2, nativeMinBytes: 1 })) chunks.push(pageTexts(c.path));
    expect(chunks).toEqual([["Huge page 1", "Huge page 2"], ["Huge page 3"]]);
  });

  it("cannot keep a file of 2 GiB or more away from mutool", async () => {
    await expect(inspectPdf(huge, { nativeMinBytes: 2 ** 40, mutool: false })).rejects.toMatchObject({ code: "file_too_large" });
  });
});
