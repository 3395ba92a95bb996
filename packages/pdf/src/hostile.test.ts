import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as mupdf from "mupdf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PdfError } from "./errors.js";
import { generateHostileCorpus, HOSTILE_PASSWORD, type HostileFixture } from "./hostile.js";
import { inspectPdf, openPdf, setMupdfLog } from "./open.js";
import { RenderPool } from "./pool.js";
import { fitPixels } from "./pixels.js";
import { DEFAULT_MAX_PIXELS, renderPage, type RenderResult } from "./render.js";
import { splitChunks, splitPages } from "./split.js";
import { decodePng, pageTexts } from "./test-helpers.js";

const MAX_PAGES = 100_000;
let dir: string;
let fixtures: HostileFixture[];
let pool: RenderPool;
const poolLog: string[] = [];

beforeAll(async () => {
  // The fixtures make mupdf complain on purpose; keep the test output readable.
  setMupdfLog("silent");
  dir = await mkdtemp(join(tmpdir(), "docpipe-pdf-hostile-"));
  fixtures = await generateHostileCorpus(join(dir, "corpus"));
  pool = new RenderPool({ size: 1, timeoutMs: 20_000, onMupdfLog: (level, m) => poolLog.push(`${level}: ${m}`) });
});
afterAll(async () => {
  await pool.close();
  await rm(dir, { recursive: true, force: true });
});

/**
 * Rejected as documents (by inspectPdf and splitting, which check the whole page tree) though
 * their first page is intact: rendering one page checks only that page, so page 1 renders.
 */
const WHOLE_TREE_DAMAGE = new Set(["truncated-at-object.pdf"]);

function fixture(name: string): HostileFixture {
  const f = fixtures.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f;
}

async function failure(p: Promise<unknown>): Promise<PdfError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, "expected a PdfError").toBeInstanceOf(PdfError);
  return e as PdfError;
}

/** Share of dark pixels in a rendered page: a page that lost its drawing is all white. */
function ink(r: RenderResult): number {
  const img = decodePng(r.png);
  let dark = 0;
  let seen = 0;
  for (let y = 0; y < img.height; y += 2) {
    for (let x = 0; x < img.width; x += 2) {
      seen++;
      if (img.at(x, y)[0] < 160) dark++;
    }
  }
  return dark / seen;
}

describe("generateHostileCorpus", () => {
  it("writes the same small files every time, one per kind of damage", async () => {
    const again = await generateHostileCorpus(join(dir, "again"));
    expect(again.map((f) => f.name)).toEqual(fixtures.map((f) => f.name));
    for (const [i, f] of fixtures.entries()) {
      const bytes = await readFile(f.path);
      expect(bytes.length, f.name).toBeLessThan(8192);
      expect(bytes.equals(await readFile(again[i]!.path)), `${f.name} is deterministic`).toBe(true);
    }
    expect(new Set(fixtures.map((f) => f.expect.kind))).toEqual(new Set(["rejected", "processed"]));
  });

  it("encrypts for real: the password opens the pages", async () => {
    const bytes = await readFile(fixture("encrypted.pdf").path);
    const doc = mupdf.Document.openDocument(new Uint8Array(bytes), "application/pdf");
    try {
      expect(doc.needsPassword()).toBe(true);
      expect(doc.authenticatePassword("wrong")).toBe(0);
      expect(doc.authenticatePassword(HOSTILE_PASSWORD)).toBeGreaterThan(0);
      const page = doc.loadPage(1);
      expect(page.toStructuredText("").asText()).toContain("Page 2");
      page.destroy();
    } finally {
      doc.destroy();
    }
  });
});

describe("inspectPdf on hostile input", () => {
  it("gives each fixture its expected verdict", async () => {
    for (const f of fixtures) {
      const run = inspectPdf(f.path, { maxPages: MAX_PAGES });
      if (f.expect.kind === "rejected") {
        const e = await failure(run);
        expect({ name: f.name, code: e.code, permanent: e.permanent }).toEqual({
          name: f.name,
          code: f.expect.code,
          permanent: true,
        });
      } else {
        const info = await run;
        expect({ name: f.name, pageCount: info.pageCount }).toEqual({ name: f.name, pageCount: f.expect.pageCount });
        if (f.expect.kind === "processed" && f.expect.repaired !== undefined) {
          expect(info.repaired, f.name).toBe(f.expect.repaired);
        }
      }
    }
  });

  it("counts a billion-page claim by the tree's leaves, so a page limit below the claim lets it through", async () => {
    await expect(inspectPdf(fixture("billion-pages.pdf").path, { maxPages: 10 })).resolves.toMatchObject({ pageCount: 1 });
    // And a limit below the leaves still refuses.
    const e = await failure(inspectPdf(fixture("one-broken-page.pdf").path, { maxPages: 4 }));
    expect(e.code).toBe("too_many_pages");
  });

  it("refuses a file over maxBytes before opening it", async () => {
    const f = fixture("one-broken-page.pdf");
    const e = await failure(inspectPdf(f.path, { maxBytes: 1000 }));
    expect({ code: e.code, permanent: e.permanent }).toEqual({ code: "file_too_large", permanent: true });
    const split = splitChunks(f.path, { dir: join(dir, "too-big"), maxBytes: 1000 }).next();
    expect((await failure(split)).code).toBe("file_too_large");
  });

  it("tells the same warning every time, though mupdf drops a warning that repeats the one before it", async () => {
    const overstated = fixture("count-overstated.pdf").path;
    const clean = fixture("one-broken-page.pdf").path;
    for (let n = 0; n < 3; n++) {
      expect((await inspectPdf(overstated)).warnings).toEqual(["Document claims to have 7 pages, but only has 2."]);
      // A file that opens without a word in between.
      expect((await inspectPdf(clean)).warnings).toEqual([]);
    }
  });

  it("names the pages a truncated file lost", async () => {
    const e = await failure(inspectPdf(fixture("truncated-at-object.pdf").path));
    expect(e.message).toMatch(/pages are missing from the file \(pages [\d, ]+\)/);
  });
});

describe("a document only pdfium opens", () => {
  it("is inspected, split and rendered by pdfium, and the pages it writes open in mupdf", async () => {
    const f = fixture("only-pdfium-opens.pdf");
    const info = await inspectPdf(f.path);
    expect(info).toMatchObject({ pageCount: 1, engine: "pdfium" });
    expect(info.warnings.join("\n")).toMatch(/mupdf: the PDF has no pages/);
    const r = await renderPage(f.path, 0, { dpi: 30 });
    expect({ engine: r.engine, degraded: r.degraded }).toEqual({ engine: "pdfium", degraded: false });
    expect(ink(r)).toBeGreaterThan(0.005);
    // From its bytes (a page the converter holds in memory), pdfium gets the same bytes to read.
    const fromBytes = await renderPage(await readFile(f.path), 0, { dpi: 30 });
    expect(Buffer.from(fromBytes.png).equals(Buffer.from(r.png))).toBe(true);
    await splitPages(
      f.path,
      async (_, path) => {
        expect(pageTexts(path)[0]).toMatch(/^Page 1/);
      },
      { dir: join(dir, "pdfium-pages") },
    );
  });
});

describe("splitting hostile input", () => {
  it("refuses rejected fixtures with the same code, before writing any chunk", async () => {
    for (const f of fixtures) {
      if (f.expect.kind !== "rejected") continue;
      const written: number[] = [];
      const run = (async () => {
        for await (const c of splitChunks(f.path, { dir: join(dir, "chunks", f.name), pagesPerChunk: 2, maxPages: MAX_PAGES })) {
          written.push(c.first);
        }
      })();
      const e = await failure(run);
      // Not-PDF bytes fail inside mupdf's open, which cannot tell them from a damaged PDF.
      const code = f.expect.code === "not_pdf" ? "corrupt" : f.expect.code;
      expect({ name: f.name, code: e.code, written }).toEqual({ name: f.name, code, written: [] });
    }
  });

  it("splits repairable and partly broken fixtures into all their pages", async () => {
    for (const f of fixtures) {
      if (f.expect.kind === "rejected") continue;
      const pages: number[] = [];
      const n = await splitPages(
        f.path,
        async (pageNumber, path) => {
          pages.push(pageNumber);
          await expect(inspectPdf(path), `${f.name} page ${pageNumber}`).resolves.toMatchObject({ pageCount: 1 });
        },
        { dir: join(dir, "pages", f.name), maxPages: MAX_PAGES },
      );
      expect({ name: f.name, n, pages }).toEqual({
        name: f.name,
        n: f.expect.pageCount,
        pages: Array.from({ length: f.expect.pageCount }, (_, i) => i + 1),
      });
    }
  });
});

describe("rendering hostile input", () => {
  it("renders every page of processed fixtures, with their drawing", async () => {
    for (const f of fixtures) {
      if (f.expect.kind !== "processed") continue;
      for (let i = 0; i < f.expect.pageCount; i++) {
        // A degraded page lost (some of) its drawing: see the next test.
        if (f.expect.degradedPages?.includes(i + 1)) continue;
        const r = await renderPage(f.path, i, { dpi: 20, maxPixels: 1_000_000 });
        expect(ink(r), `${f.name} page ${i + 1}`).toBeGreaterThan(0.005);
      }
      // mupdf extracts the text: it cannot open the first kind, and loses the drawing of the others.
      if (f.expect.onlyPdfium) continue;
      const degraded = [...(f.expect.degradedPages ?? []), ...(f.expect.pdfiumPages ?? [])];
      expect(pageTexts(f.path).map((t, i) => (degraded.includes(i + 1) ? "(damaged)" : t.split("\n")[0]))).toEqual(
        Array.from({ length: f.expect.pageCount }, (_, i) => (degraded.includes(i + 1) ? "(damaged)" : `Page ${i + 1}`)),
      );
    }
  });

  it("renders a 200-inch page under the pixel cap and records the lower dpi", async () => {
    const f = fixture("huge-mediabox.pdf");
    const r = await renderPage(f.path, 0, { dpi: 150, maxPixels: 4_000_000 });
    expect(r.width * r.height).toBeLessThanOrEqual(4_000_000);
    expect(r.dpi).toBeLessThan(150);
    expect(r.width).toBe(Math.round((14_400 / 72) * r.dpi));
    expect(ink(r)).toBeGreaterThan(0);
    // The sibling letter page keeps the requested resolution.
    expect(await renderPage(f.path, 1, { dpi: 150, maxPixels: 4_000_000 })).toMatchObject({ width: 1275, dpi: 150 });
    // With the default cap the page is scaled down too: 30000 × 30000 pixels at 150 dpi is 900 M.
    expect(fitPixels(14_400, 14_400, 150, DEFAULT_MAX_PIXELS).dpi).toBeLessThan(150);
  });

  it("keeps damaged pages as degraded, with mupdf's reason, and renders their siblings cleanly", async () => {
    const reasons: Record<string, RegExp> = { "one-broken-page.pdf": /zlib error/, "image-bomb.pdf": /image is too large/ };
    for (const f of fixtures) {
      if (f.expect.kind !== "processed") continue;
      const degraded = f.expect.degradedPages ?? [];
      for (let i = 0; i < f.expect.pageCount; i++) {
        const r = await renderPage(f.path, i, { dpi: 30 });
        expect({ name: f.name, page: i + 1, degraded: r.degraded }).toEqual({ name: f.name, page: i + 1, degraded: degraded.includes(i + 1) });
        if (degraded.includes(i + 1)) {
          expect(r.warnings.join("\n")).toMatch(reasons[f.name]!);
          // pdfium drew no more of it than mupdf, so mupdf's image stays.
          expect(r.engine).toBe("mupdf");
          const e = await failure(renderPage(f.path, i, { dpi: 30, rejectDamaged: true }));
          expect({ code: e.code, permanent: e.permanent }).toEqual({ code: "corrupt_page", permanent: true });
          expect(e.message).toMatch(reasons[f.name]!);
        } else if (f.expect.pdfiumPages?.includes(i + 1)) {
          // mupdf drew it with damage, pdfium cleanly and more fully: pdfium's image, not degraded.
          expect({ engine: r.engine, warnings: r.warnings.join("\n") }).toEqual({ engine: "pdfium", warnings: expect.stringMatching(/syntax error/) });
          expect(ink(r), `${f.name} page ${i + 1}`).toBeGreaterThan(0.005);
          await expect(renderPage(f.path, i, { dpi: 30, rejectDamaged: true })).resolves.toMatchObject({ engine: "pdfium" });
        } else {
          expect(ink(r), `${f.name} page ${i + 1}`).toBeGreaterThan(0.005);
        }
      }
    }
  });

  it("notices the same damage twice in a row, though mupdf stops repeating identical warnings", async () => {
    const path = fixture("one-broken-page.pdf").path;
    for (let n = 0; n < 3; n++) expect((await renderPage(path, 2, { dpi: 10 })).degraded).toBe(true);
  });

  it("refuses a page that a truncated file lost, as corrupt_page, even past the document check", async () => {
    // The document check (inspect, split) already fails this file; a caller rendering a page
    // directly must not get a blank PNG either.
    const path = fixture("truncated-at-object.pdf").path;
    const doc = openPdf(path);
    const missing = Array.from({ length: doc.countPages() }, (_, i) => i).filter((i) => !doc.findPage(i).isDictionary());
    doc.destroy();
    expect(missing.length).toBeGreaterThan(0);
    const e = await failure(renderPage(path, missing[0]!, { dpi: 10 }));
    expect(e.code).toBe("corrupt_page");
  });

  it("refuses the other rejected fixtures with a permanent error, never a crash", async () => {
    for (const f of fixtures) {
      if (f.expect.kind !== "rejected" || WHOLE_TREE_DAMAGE.has(f.name)) continue;
      const e = await failure(renderPage(f.path, 0, { dpi: 10 }));
      expect({ name: f.name, permanent: e.permanent }).toEqual({ name: f.name, permanent: true });
    }
  });
});

describe("RenderPool on hostile input", () => {
  it("gives the split pages of every fixture the expected outcome and keeps its worker", async () => {
    for (const f of fixtures) {
      if (f.expect.kind === "rejected") continue;
      const degraded = f.expect.degradedPages ?? [];
      const outcomes: string[] = [];
      await splitPages(
        f.path,
        async (pageNumber, path) => {
          // From the bytes, as the page converter renders a page it read into memory.
          const r = await pool.render(await readFile(path), 0, { dpi: 20, maxPixels: 1_000_000 }).then(
            (x) => `ok ${x.dpi < 20 ? "scaled" : "full"}${x.degraded ? " degraded" : ""}`,
            (e: unknown) => (e instanceof PdfError ? e.code : String(e)),
          );
          outcomes.push(r);
        },
        { dir: join(dir, "pool", f.name) },
      );
      const scaled = f.expect.scaledDownPages ?? [];
      expect({ name: f.name, outcomes }).toEqual({
        name: f.name,
        outcomes: outcomes.map((_, i) => `ok ${scaled.includes(i + 1) ? "scaled" : "full"}${degraded.includes(i + 1) ? " degraded" : ""}`),
      });
      expect(outcomes).toHaveLength(f.expect.pageCount);
    }
    expect(poolLog.join("\n")).toMatch(/zlib error/);
  });

  it("refuses rejected fixtures in its workers, then still renders", async () => {
    for (const f of fixtures) {
      if (f.expect.kind !== "rejected" || WHOLE_TREE_DAMAGE.has(f.name)) continue;
      const e = await failure(pool.render(f.path, 0, { dpi: 10 }));
      expect({ name: f.name, permanent: e.permanent }).toEqual({ name: f.name, permanent: true });
      const fromBytes = await failure(pool.render(await readFile(f.path), 0, { dpi: 10 }));
      expect({ name: f.name, code: fromBytes.code }).toEqual({ name: f.name, code: e.code });
    }
    const ok = await pool.render(fixture("xref-missing.pdf").path, 0, { dpi: 10 });
    expect(ok.width).toBe(85);
    expect(pool.size).toBe(1);
  });
});
