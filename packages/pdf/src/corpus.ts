import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as mupdf from "mupdf";
import { StreamingPdfWriter, pdfNum } from "./pdf-writer.js";

export type Rotation = 0 | 90 | 180 | 270;

/** Page sizes in points (1/72 inch), portrait unless named otherwise. */
export const PAGE_SIZES = {
  letter: [612, 792],
  a4: [595.28, 841.89],
  legal: [612, 1008],
  label4x6: [288, 432],
  label2x1: [144, 72],
  letterLandscape: [792, 612],
} as const satisfies Record<string, readonly [number, number]>;

export interface CorpusPageSpec {
  widthPt: number;
  heightPt: number;
  /** The page's /Rotate. @defaultValue 0 */
  rotate?: Rotation;
  /**
   * What the page shows besides its "Page N rotate R" label: lines of text, a deterministic
   * image, both, or nothing at all (no label either). @defaultValue "text"
   */
  content?: "text" | "image" | "mixed" | "blank";
  /** Side of the square RGB image in pixels, for image and mixed pages. @defaultValue 64 */
  imagePixels?: number;
}

export interface CorpusFileSpec {
  /** File name inside the corpus directory, e.g. "mixed.pdf". */
  name: string;
  pages: CorpusPageSpec[];
}

export interface CorpusSpec {
  /** @defaultValue DEFAULT_CORPUS */
  files?: CorpusFileSpec[];
  /** Also write not-a-PDF, zero-byte, encrypted, corrupt and repairable files. @defaultValue true */
  invalid?: boolean;
}

export interface CorpusPage {
  widthPt: number;
  heightPt: number;
  rotate: Rotation;
}

export interface CorpusFile {
  path: string;
  pageCount: number;
  pages: CorpusPage[];
  sizeBytes: number;
}

export interface Corpus {
  files: CorpusFile[];
  /** Files every stage must refuse (or, for `repairable`, repair); present unless spec.invalid is false. */
  invalid?: {
    /** A text file. */ notPdf: string;
    /** Zero bytes. */ empty: string;
    /** AES-256, user password "secret". */ encrypted: string;
    /** A %PDF- header followed by garbage: mupdf cannot recover a page. */ corrupt: string;
    /** A one-page PDF whose xref offsets are wrong: mupdf repairs it. */ repairable: string;
  };
}

const ROTATIONS: Rotation[] = [0, 90, 180, 270];

/** One file per kind of page the pipeline meets, plus a mixed file that walks through them all. */
export const DEFAULT_CORPUS: CorpusFileSpec[] = [
  { name: "single-letter.pdf", pages: [{ ...size("letter"), content: "text" }] },
  { name: "single-a4-rotated.pdf", pages: [{ ...size("a4"), rotate: 90, content: "mixed" }] },
  {
    name: "mixed.pdf",
    pages: Object.keys(PAGE_SIZES).flatMap((name, i) =>
      ROTATIONS.map((rotate, j) => ({
        ...size(name as keyof typeof PAGE_SIZES),
        rotate,
        content: (["text", "image", "mixed"] as const)[(i + j) % 3],
      })),
    ),
  },
  {
    name: "twelve-letter.pdf",
    pages: Array.from({ length: 12 }, (_, i) => ({ ...size("letter"), content: i % 2 ? "image" : "text" })),
  },
];

function size(name: keyof typeof PAGE_SIZES): { widthPt: number; heightPt: number } {
  const [widthPt, heightPt] = PAGE_SIZES[name];
  return { widthPt, heightPt };
}

/**
 * Deterministic bytes (xorshift32): incompressible, so a PDF of a given size stays that size
 * however it is stored, and the same seed always gives the same file.
 */
export function noise(bytes: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(bytes / 4));
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, bytes);
}

/** A smooth gradient with a diagonal band: deterministic and easy to see in a rendered page. */
function pattern(side: number, seed: number): Uint8Array {
  const px = new Uint8Array(side * side * 3);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const o = (y * side + x) * 3;
      const band = Math.abs(x - y) < side / 8;
      px[o] = band ? 0 : (x * 255) / side;
      px[o + 1] = band ? 0 : (y * 255) / side;
      px[o + 2] = (seed * 37) & 255;
    }
  }
  return px;
}

interface WritePage extends CorpusPageSpec {
  image?: { side: number; data: Uint8Array };
}

/** Streams pages to `path` one at a time; `pageAt(i)` builds page i only when it is written. */
async function writePdf(path: string, pageCount: number, pageAt: (i: number) => WritePage): Promise<CorpusFile> {
  const w = await StreamingPdfWriter.create(path);
  try {
    const catalog = w.reserve();
    const pagesRoot = w.reserve();
    const font = await w.object("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
    const kids: number[] = [];
    const pages: CorpusPage[] = [];
    for (let i = 0; i < pageCount; i++) {
      const p = pageAt(i);
      const rotate = p.rotate ?? 0;
      const { widthPt: pw, heightPt: ph } = p;
      const ops: string[] = [];
      let resources = `/Font << /F1 ${font} 0 R >>`;
      if (p.image) {
        const im = await w.stream(
          `/Type /XObject /Subtype /Image /Width ${p.image.side} /Height ${p.image.side} /ColorSpace /DeviceRGB /BitsPerComponent 8`,
          p.image.data,
        );
        resources += ` /XObject << /Im1 ${im} 0 R >>`;
        // Fill the page with the image, leaving a margin.
        const side = Math.min(pw, ph) * 0.8;
        ops.push(`q ${pdfNum(side)} 0 0 ${pdfNum(side)} ${pdfNum((pw - side) / 2)} ${pdfNum((ph - side) / 2)} cm /Im1 Do Q`);
      }
      if (p.content !== "blank") {
        // A frame marks the page box, so a rendering that loses an edge shows it.
        ops.push(`0 0 0 RG 2 w 4 4 ${pdfNum(pw - 8)} ${pdfNum(ph - 8)} re S`);
      }
      if (p.content !== "blank") {
        // Every page says which it is, so a test can check page order from the extracted text.
        const fs = Math.max(6, Math.min(24, ph / 8));
        const lines = [`Page ${i + 1} rotate ${rotate}`];
        if (p.content === undefined || p.content === "text" || p.content === "mixed") {
          lines.push("The quick brown fox jumps over the lazy dog.", "0123456789 docpipe test corpus");
        }
        ops.push(
          `BT /F1 ${pdfNum(fs)} Tf 0 0 0 rg ${pdfNum(1.2 * fs)} TL ${pdfNum(fs)} ${pdfNum(ph - 1.5 * fs)} Td ` +
            lines.map((l) => `(${l}) Tj T*`).join(" ") +
            " ET",
        );
      }
      const content = await w.stream("", Buffer.from(ops.join("\n"), "latin1"));
      const page = await w.object(
        `<< /Type /Page /Parent ${pagesRoot} 0 R /MediaBox [0 0 ${pdfNum(pw)} ${pdfNum(ph)}] /Rotate ${rotate} ` +
          `/Resources << ${resources} >> /Contents ${content} 0 R >>`,
      );
      kids.push(page);
      pages.push({ widthPt: pw, heightPt: ph, rotate });
    }
    await w.object(`<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(" ")}] /Count ${kids.length} >>`, pagesRoot);
    await w.object(`<< /Type /Catalog /Pages ${pagesRoot} 0 R >>`, catalog);
    const sizeBytes = await w.finish(catalog);
    return { path, pageCount, pages, sizeBytes };
  } finally {
    await w.close();
  }
}

/** Writes a PDF with exactly the given pages (images are a deterministic gradient). */
export async function generatePdf(path: string, pages: CorpusPageSpec[]): Promise<CorpusFile> {
  return writePdf(path, pages.length, (i) => {
    const p = pages[i]!;
    const side = p.imagePixels ?? 64;
    const withImage = p.content === "image" || p.content === "mixed";
    return withImage ? { ...p, image: { side, data: pattern(side, i) } } : p;
  });
}

/**
 * Generates the test corpus into dir (created if missing). Deterministic: the same spec gives
 * byte-identical files (except the encrypted one, whose salt mupdf randomises).
 */
export async function generateCorpus(dir: string, spec: CorpusSpec = {}): Promise<Corpus> {
  await mkdir(dir, { recursive: true });
  const files: CorpusFile[] = [];
  for (const f of spec.files ?? DEFAULT_CORPUS) files.push(await generatePdf(join(dir, f.name), f.pages));
  if (spec.invalid === false) return { files };

  const invalid = {
    notPdf: join(dir, "not-a-pdf.txt"),
    empty: join(dir, "empty.pdf"),
    encrypted: join(dir, "encrypted.pdf"),
    corrupt: join(dir, "corrupt.pdf"),
    repairable: join(dir, "repairable.pdf"),
  };
  await writeFile(invalid.notPdf, "This is a plain text file that someone named .pdf.\n");
  await writeFile(invalid.empty, new Uint8Array(0));
  await writeFile(invalid.corrupt, Buffer.concat([Buffer.from("%PDF-1.7\n"), Buffer.from(noise(4096, 7))]));

  const plain = join(dir, "repairable.tmp.pdf");
  await generatePdf(plain, [{ ...size("letter"), content: "text" }]);
  const { readFile, rm } = await import("node:fs/promises");
  const bytes = await readFile(plain);
  await rm(plain);
  // Shift every object by inserting a comment after the header: the xref offsets all go stale.
  await writeFile(invalid.repairable, Buffer.concat([bytes.subarray(0, 9), Buffer.from("%shifted\n"), bytes.subarray(9)]));

  const doc = new mupdf.PDFDocument(new Uint8Array(bytes));
  try {
    const out = doc.saveToBuffer("encrypt=aes-256,user-password=secret,owner-password=owner-secret");
    try {
      await writeFile(invalid.encrypted, out.asUint8Array().slice());
    } finally {
      out.destroy();
    }
  } finally {
    doc.destroy();
  }
  return { files, invalid };
}

export interface LargePdfOptions {
  pageCount: number;
  /** Approximate file size; each page carries an incompressible image of targetBytes / pageCount. */
  targetBytes: number;
  /** Page sizes cycled through. @defaultValue [letter] */
  sizes?: { widthPt: number; heightPt: number }[];
  /** Rotations cycled through. @defaultValue [0] */
  rotations?: Rotation[];
}

/**
 * Streams a large PDF to path: pageCount pages, each with a page-number line and an RGB image
 * of noise sized so the file reaches about targetBytes. Only one page's image is in memory at
 * a time, so 1 GB or more is fine.
 */
export async function generateLargePdf(path: string, opts: LargePdfOptions): Promise<CorpusFile> {
  const sizes = opts.sizes ?? [size("letter")];
  const rotations = opts.rotations ?? [0];
  const perPage = Math.max(3, Math.floor(opts.targetBytes / opts.pageCount) - 600);
  const side = Math.max(1, Math.round(Math.sqrt(perPage / 3)));
  return writePdf(path, opts.pageCount, (i) => ({
    ...sizes[i % sizes.length]!,
    rotate: rotations[i % rotations.length]!,
    content: "mixed",
    image: { side, data: noise(side * side * 3, i + 1) },
  }));
}
