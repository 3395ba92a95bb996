import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCorpus, type Corpus } from "./corpus.js";
import { PdfError } from "./errors.js";
import { inspectPdf, openPdf } from "./open.js";

let dir: string;
let corpus: Corpus;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-pdf-inspect-"));
  corpus = await generateCorpus(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function codeOf(p: Promise<unknown>): Promise<[string, boolean]> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(PdfError);
  return [(e as PdfError).code, (e as PdfError).permanent];
}

describe("inspectPdf", () => {
  it("counts the pages of every corpus file", async () => {
    for (const f of corpus.files) {
      await expect(inspectPdf(f.path)).resolves.toEqual({
        pageCount: f.pageCount,
        repaired: false,
        sizeBytes: f.sizeBytes,
        engine: "mupdf",
        warnings: [],
      });
    }
  });

  it("refuses a text file, an empty file, an encrypted and a corrupt PDF with permanent errors", async () => {
    const inv = corpus.invalid!;
    expect(await codeOf(inspectPdf(inv.notPdf))).toEqual(["not_pdf", true]);
    expect(await codeOf(inspectPdf(inv.empty))).toEqual(["not_pdf", true]);
    expect(await codeOf(inspectPdf(inv.encrypted))).toEqual(["encrypted", true]);
    expect(await codeOf(inspectPdf(inv.corrupt))).toEqual(["corrupt", true]);
  });

  it("accepts a %PDF- header after leading junk, near or far, as mupdf does", async () => {
    const { readFile } = await import("node:fs/promises");
    const pdf = await readFile(corpus.files[0]!.path);
    const near = join(dir, "junk-near.pdf");
    const far = join(dir, "junk-far.pdf");
    await writeFile(near, Buffer.concat([Buffer.alloc(1000, 0x20), pdf]));
    await writeFile(far, Buffer.concat([Buffer.alloc(1100, 0x20), pdf]));
    await expect(inspectPdf(near)).resolves.toMatchObject({ pageCount: 1, engine: "mupdf" });
    await expect(inspectPdf(far)).resolves.toMatchObject({ pageCount: 1, engine: "mupdf" });
  });

  it("reports a repaired xref", async () => {
    await expect(inspectPdf(corpus.invalid!.repairable)).resolves.toMatchObject({ pageCount: 1, repaired: true });
  });

  it("refuses more pages than maxPages", async () => {
    const mixed = corpus.files.find((f) => f.pageCount === 24)!;
    await expect(inspectPdf(mixed.path, { maxPages: 24 })).resolves.toMatchObject({ pageCount: 24 });
    expect(await codeOf(inspectPdf(mixed.path, { maxPages: 23 }))).toEqual(["too_many_pages", true]);
  });

  it("fails with a plain error for a missing file, which is not a verdict on the PDF", async () => {
    await expect(inspectPdf(join(dir, "missing.pdf"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("openPdf", () => {
  it("opens through a file descriptor and closes it on destroy", async () => {
    const { readdir } = await import("node:fs/promises");
    const before = (await readdir("/proc/self/fd")).length;
    const doc = openPdf(corpus.files[2]!.path);
    expect(doc.countPages()).toBe(24);
    expect((await readdir("/proc/self/fd")).length).toBe(before + 1);
    doc.destroy();
    expect((await readdir("/proc/self/fd")).length).toBe(before);
  });

  it("closes the descriptor when the file cannot be opened", async () => {
    const { readdir } = await import("node:fs/promises");
    const before = (await readdir("/proc/self/fd")).length;
    expect(() => openPdf(corpus.invalid!.corrupt)).toThrow(PdfError);
    expect((await readdir("/proc/self/fd")).length).toBe(before);
  });
});
