import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCorpus, generateLargePdf } from "./corpus.js";
import { inspectPdf } from "./open.js";
import { pageBounds } from "./test-helpers.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-pdf-corpus-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("generateCorpus", () => {
  it("writes the same bytes every time", async () => {
    const a = await generateCorpus(join(dir, "a"), { invalid: false });
    const b = await generateCorpus(join(dir, "b"), { invalid: false });
    expect(a.files.length).toBeGreaterThan(2);
    for (const [i, f] of a.files.entries()) {
      expect((await readFile(f.path)).equals(await readFile(b.files[i]!.path))).toBe(true);
    }
  });

  it("reports the page sizes and rotations mupdf sees", async () => {
    const c = await generateCorpus(join(dir, "c"), { invalid: false });
    for (const f of c.files) {
      // mupdf keeps coordinates as 32-bit floats.
      const seen = pageBounds(f.path).map((b) => ({ ...b, width: round2(b.width), height: round2(b.height) }));
      expect(seen).toEqual(
        f.pages.map((p) => ({
          width: p.rotate % 180 ? p.heightPt : p.widthPt,
          height: p.rotate % 180 ? p.widthPt : p.heightPt,
          rotate: p.rotate,
        })),
      );
    }
    const rotations = new Set(c.files.flatMap((f) => f.pages.map((p) => p.rotate)));
    expect([...rotations].sort()).toEqual([0, 180, 270, 90]);
  });
});

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

describe("generateLargePdf", () => {
  it("reaches the target size and page count, cycling sizes and rotations", async () => {
    const f = await generateLargePdf(join(dir, "large.pdf"), {
      pageCount: 40,
      targetBytes: 8_000_000,
      sizes: [
        { widthPt: 612, heightPt: 792 },
        { widthPt: 595.28, heightPt: 841.89 },
      ],
      rotations: [0, 90, 180],
    });
    expect(f.sizeBytes).toBeGreaterThan(7_600_000);
    expect(f.sizeBytes).toBeLessThan(8_400_000);
    expect(await inspectPdf(f.path)).toMatchObject({ pageCount: 40, repaired: false, sizeBytes: f.sizeBytes });
    expect(f.pages[4]).toEqual({ widthPt: 612, heightPt: 792, rotate: 90 });
  });
});
