import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCorpus, generatePdf, type Corpus } from "./corpus.js";
import { generateStreamBomb } from "./hostile.js";
import { PdfError } from "./errors.js";
import { RenderPool } from "./pool.js";
import { inspectPdf } from "./open.js";
import { renderPage } from "./render.js";
import { decodePng, expectedPixels, pageTexts } from "./test-helpers.js";

let dir: string;
let corpus: Corpus;
let pool: RenderPool;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-pdf-pool-"));
  corpus = await generateCorpus(dir);
  pool = new RenderPool({ size: 2, timeoutMs: 20_000 });
});
afterAll(async () => {
  await pool.close();
  await rm(dir, { recursive: true, force: true });
});

describe("RenderPool", () => {
  it("renders pages in workers with the same result as renderPage", async () => {
    const mixed = corpus.files.find((f) => f.pageCount === 24)!;
    const results = await Promise.all(mixed.pages.map((_, i) => pool.render(mixed.path, i, { dpi: 60 })));
    for (const [i, r] of results.entries()) {
      expect({ width: r.width, height: r.height }).toEqual(expectedPixels(mixed.pages[i]!, 60));
    }
    const direct = await renderPage(mixed.path, 3, { dpi: 60 });
    expect(Buffer.from(results[3]!.png).equals(Buffer.from(direct.png))).toBe(true);
  });

  it("renders from bytes what it renders from the file, moving the bytes to the worker", async () => {
    const mixed = corpus.files.find((f) => f.pageCount === 24)!;
    const bytes = new Uint8Array(await readFile(mixed.path));
    const fromBytes = await pool.render(bytes, 3, { dpi: 60 });
    expect(bytes.byteLength).toBe(0);
    const fromFile = await pool.render(mixed.path, 3, { dpi: 60 });
    expect(Buffer.from(fromBytes.png).equals(Buffer.from(fromFile.png))).toBe(true);
    // A view into a larger buffer is copied, not moved, and renders the same.
    const file = await readFile(mixed.path);
    const shared = Buffer.concat([Buffer.alloc(1), file]).subarray(1);
    expect(Buffer.from((await pool.render(shared, 3, { dpi: 60 })).png).equals(Buffer.from(fromFile.png))).toBe(true);
    expect(shared.byteLength).toBe(file.byteLength);
    await expect(pool.render(Buffer.from("%PDF-1.7 nothing else"), 0)).rejects.toMatchObject({ name: "PdfError", code: "corrupt", path: undefined });
  });

  it("passes PdfErrors back from the worker", async () => {
    const e = await pool.render(corpus.invalid!.encrypted, 0).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PdfError);
    expect(e).toMatchObject({ code: "encrypted", permanent: true });
    await expect(pool.render(corpus.files[0]!.path, 5)).rejects.toThrow(RangeError);
  });

  it("times out a slow page, replaces its worker and keeps rendering", async () => {
    // Thousands of tiny vector paths at 300 dpi take far longer than 1 ms.
    const slow = join(dir, "slow.pdf");
    await generatePdf(slow, [{ widthPt: 612, heightPt: 792, content: "mixed", imagePixels: 1500 }]);
    const e = await pool.render(slow, 0, { dpi: 300, timeoutMs: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PdfError);
    expect(e).toMatchObject({ code: "timeout", permanent: false });
    const after = await Promise.all([0, 0, 0].map(() => pool.render(corpus.files[0]!.path, 0, { dpi: 30 })));
    expect(after.map((r) => r.width)).toEqual([255, 255, 255]);
    expect(pool.size).toBe(2);
  });

  it("refuses work once closed", async () => {
    const p = new RenderPool({ size: 1 });
    await p.close();
    await expect(p.render(corpus.files[0]!.path, 0)).rejects.toThrow(/closed/);
  });
});

describe("PdfPool inspect and split", () => {
  it("inspects and splits in a worker with inspectPdf's and splitChunks' results and errors, the chunks in memory", async () => {
    const mixed = corpus.files.find((f) => f.pageCount === 24)!;
    expect(await pool.inspect(mixed.path, { maxPages: 100 })).toEqual(await inspectPdf(mixed.path, { maxPages: 100 }));
    await expect(pool.inspect(mixed.path, { maxPages: 10 })).rejects.toMatchObject({ name: "PdfError", code: "too_many_pages" });
    await expect(pool.inspect(corpus.invalid!.notPdf)).rejects.toMatchObject({ code: "not_pdf", path: corpus.invalid!.notPdf });

    const chunks: [number, number, string[]][] = [];
    for await (const c of pool.splitPieces(mixed.path, { dir: join(dir, "pool-chunks"), pagesPerChunk: 10 })) {
      chunks.push([c.first, c.last, pageTexts(c.bytes)]);
    }
    // No chunk touched the disk.
    expect(await readdir(join(dir, "pool-chunks")).catch(() => [])).toEqual([]);
    const texts = pageTexts(mixed.path);
    expect(chunks).toEqual([
      [1, 10, texts.slice(0, 10)],
      [11, 20, texts.slice(10, 20)],
      [21, 24, texts.slice(20, 24)],
    ]);
    const split = async (path: string) => {
      for await (const _ of pool.splitPieces(path, { dir: join(dir, "pool-pages"), pagesPerChunk: 1 }));
    };
    await expect(split(corpus.invalid!.corrupt)).rejects.toMatchObject({ code: "corrupt" });
    // Each split gave its worker back.
    expect(pool.pending).toBe(0);
    expect((await pool.render(mixed.path, 0, { dpi: 10 })).png.byteLength).toBeGreaterThan(0);
  });

  it("holds one worker for a split and serves other tasks on the rest", async () => {
    const mixed = corpus.files.find((f) => f.pageCount === 24)!;
    const split = pool.splitPieces(mixed.path, { dir: join(dir, "held"), pagesPerChunk: 5 });
    expect((await split.next()).value).toMatchObject({ first: 1, last: 5 });
    // The split holds one of the two workers between chunks; the other inspects.
    expect((await pool.inspect(mixed.path)).pageCount).toBe(24);
    await split.return();
    expect(pool.pending).toBe(0);
    // The worker went back to the pool with the split's document closed: it renders.
    expect((await pool.render(mixed.path, 0, { dpi: 10 })).png.byteLength).toBeGreaterThan(0);
  });
});

describe("RenderPool mupdf log", () => {
  it("forwards the workers' mupdf warnings to onMupdfLog", async () => {
    const messages: string[] = [];
    const p = new RenderPool({ size: 1, onMupdfLog: (level, m) => messages.push(`${level}: ${m}`) });
    try {
      await p.render(corpus.invalid!.repairable, 0, { dpi: 10 });
    } finally {
      await p.close();
    }
    expect(messages.join("\n")).toMatch(/repair/);
  });
});

describe("RenderPool recycling", () => {
  it("replaces a worker whose heap grew past the bound after a page, and loses no page", { timeout: 120_000 }, async () => {
    // Pages with a large image grow a worker's mupdf heap well past 1 MiB; a bound that low
    // recycles the worker after every page.
    const heavy = join(dir, "heavy.pdf");
    await generatePdf(heavy, Array.from({ length: 6 }, () => ({ widthPt: 612, heightPt: 792, content: "image" as const, imagePixels: 1500 })));
    const p = new RenderPool({ size: 1, recycleAboveBytes: 1 << 20 });
    try {
      const results = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => p.render(heavy, i, { dpi: 30 })));
      expect(results.map((r) => r.width)).toEqual([255, 255, 255, 255, 255, 255]);
      expect(p.recycled).toBe(6);
      expect(p.size).toBe(1);
    } finally {
      await p.close();
    }
    // With the default bound (512 MiB) the same pages keep their worker.
    const results = await Promise.all([0, 1, 2].map((i) => pool.render(heavy, i, { dpi: 30 })));
    expect(results).toHaveLength(3);
    expect(pool.recycled).toBe(0);
  });
});

describe("RenderPool memory under inflating pages", () => {
  it("draws a stream of pages whose content streams inflate to 48 MiB each without holding what they inflate to", { timeout: 180_000 }, async () => {
    // A 0.15 MB file asking for 144 MiB. mupdf interprets a content stream as it inflates it, so a
    // worker's memory does not follow the inflated size; a heap that did would be replaced after
    // the page (RenderPool recycling, above), but would still show here as growth of the process.
    const MiB = 2 ** 20;
    const bomb = await generateStreamBomb(join(dir, "stream-bomb.pdf"), { pages: 3, inflatedBytes: 48 * MiB });
    expect(bomb.fileBytes).toBeLessThan(0.5 * MiB);
    const p = new RenderPool({ size: 1, timeoutMs: 120_000 });
    try {
      await p.render(corpus.files[0]!.path, 0, { dpi: 10 }); // the worker and its heaps exist before the baseline
      const before = process.memoryUsage().rss;
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      try {
        for (let i = 0; i < 3; i++) {
          const r = await p.render(bomb.path, i, { dpi: 20 });
          const png = decodePng(r.png);
          let dark = 0;
          for (let y = 0; y < png.height; y++) for (let x = 0; x < png.width; x++) if (png.at(x, y)[0] < 128) dark++;
          expect({ page: i + 1, degraded: r.degraded, drawn: dark > 100 }).toEqual({ page: i + 1, degraded: false, drawn: true });
        }
      } finally {
        clearInterval(sampler);
      }
      expect((peak - before) / MiB).toBeLessThan(32);
    } finally {
      await p.close();
    }
  });
});
