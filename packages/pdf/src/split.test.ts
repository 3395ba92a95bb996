import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCorpus, generateLargePdf, type Corpus, type CorpusFile } from "./corpus.js";
import { inspectPdf } from "./open.js";
import { splitChunks, splitIntoChunks, splitPages, splitRange } from "./split.js";
import { pageBounds, pageTexts } from "./test-helpers.js";

let dir: string;
let corpus: Corpus;
let mixed: CorpusFile;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-pdf-split-"));
  corpus = await generateCorpus(dir);
  mixed = corpus.files.find((f) => f.pageCount === 24)!;
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("splitRange", () => {
  it("copies pages first..last in order, with their sizes and rotations", async () => {
    const out = join(dir, "range.pdf");
    await splitRange(mixed.path, 5, 9, out);
    expect(pageTexts(out)).toEqual(pageTexts(mixed.path).slice(4, 9));
    expect(pageBounds(out)).toEqual(pageBounds(mixed.path).slice(4, 9));
    expect(pageTexts(out)[0]).toContain("Page 5 rotate");
  });

  it("rejects a range outside the document", async () => {
    await expect(splitRange(mixed.path, 0, 3, join(dir, "x.pdf"))).rejects.toThrow(RangeError);
    await expect(splitRange(mixed.path, 20, 25, join(dir, "x.pdf"))).rejects.toThrow(RangeError);
    await expect(splitRange(mixed.path, 5, 4, join(dir, "x.pdf"))).rejects.toThrow(RangeError);
  });

  it("refuses an encrypted PDF", async () => {
    await expect(splitRange(corpus.invalid!.encrypted, 1, 1, join(dir, "x.pdf"))).rejects.toMatchObject({
      code: "encrypted",
    });
  });
});

describe("splitChunks", () => {
  it("yields ≤N-page chunks covering every page once, in order, deleting each file once consumed", async () => {
    const chunkDir = join(dir, "chunks");
    const seen: { first: number; last: number; texts: string[] }[] = [];
    let previous: string | undefined;
    for await (const c of splitChunks(mixed.path, { dir: chunkDir, pagesPerChunk: 10 })) {
      expect(existsSync(c.path)).toBe(true);
      if (previous) expect(existsSync(previous)).toBe(false);
      previous = c.path;
      expect(c.totalPages).toBe(24);
      seen.push({ first: c.first, last: c.last, texts: pageTexts(c.path) });
    }
    expect(seen.map((c) => [c.first, c.last])).toEqual([
      [1, 10],
      [11, 20],
      [21, 24],
    ]);
    expect(seen.flatMap((c) => c.texts)).toEqual(pageTexts(mixed.path));
    expect(await readdir(chunkDir)).toEqual([]);
  });

  it("keeps files when asked and resumes from a page", async () => {
    const chunkDir = join(dir, "kept");
    const n = await splitIntoChunks(mixed.path, async () => {}, {
      dir: chunkDir,
      pagesPerChunk: 7,
      keepFiles: true,
      fromPage: 8,
    });
    expect(n).toBe(3);
    expect((await readdir(chunkDir)).sort()).toEqual(["15-21.pdf", "22-24.pdf", "8-14.pdf"]);
  });

  it("deletes the current chunk when the consumer stops early", async () => {
    const chunkDir = join(dir, "early");
    for await (const c of splitChunks(mixed.path, { dir: chunkDir, pagesPerChunk: 5 })) {
      expect(c.first).toBe(1);
      break;
    }
    expect(await readdir(chunkDir)).toEqual([]);
  });
});

describe("splitPages", () => {
  it("writes one single-page PDF per page, numbered from 1", async () => {
    const got: [number, string][] = [];
    const n = await splitPages(
      mixed.path,
      async (pageNumber, path) => {
        expect((await inspectPdf(path)).pageCount).toBe(1);
        got.push([pageNumber, pageTexts(path)[0]!]);
      },
      { dir: join(dir, "pages") },
    );
    expect(n).toBe(24);
    expect(got.map(([n]) => n)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(got.map(([, t]) => t)).toEqual(pageTexts(mixed.path));
  });
});

describe("memory", () => {
  it("splits a 30 MB PDF without holding it in memory", async () => {
    const big = await generateLargePdf(join(dir, "big.pdf"), { pageCount: 60, targetBytes: 30_000_000 });
    expect(big.sizeBytes).toBeGreaterThan(29_000_000);
    // In a child process, so the peak RSS is this split's alone. Each 10-page chunk is ~5 MB;
    // loading the source would add at least 30 MB (twice: a JS copy and the WASM heap).
    const code = `
      const { splitChunks } = await import(${JSON.stringify(new URL("./split.ts", import.meta.url).href)});
      const base = process.memoryUsage().rss;
      let chunks = 0;
      for await (const c of splitChunks(${JSON.stringify(big.path)}, { dir: ${JSON.stringify(join(dir, "big-chunks"))}, pagesPerChunk: 10 })) chunks++;
      console.log(JSON.stringify({ chunks, base, peak: process.resourceUsage().maxRSS * 1024 }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      cwd: new URL("..", import.meta.url).pathname,
    });
    const r = JSON.parse(stdout.trim().split("\n").pop()!) as { chunks: number; base: number; peak: number };
    expect(r.chunks).toBe(6);
    expect(r.peak - r.base).toBeLessThan(30_000_000);
  });
});
