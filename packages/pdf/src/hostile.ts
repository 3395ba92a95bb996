import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { deflateSync, inflateSync } from "node:zlib";
import * as mupdf from "mupdf";
import type { PdfErrorCode } from "./errors.js";
import { rc4Encryption, type Rc4Encryption } from "./rc4-encryption.js";

/**
 * What the pipeline must make of a hostile fixture:
 * - `rejected`: the whole document fails with this permanent code, without retries;
 * - `processed`: every page renders (`repaired`: mupdf had to rebuild the cross-reference
 *   table; `scaledDownPages`: 1-based pages whose box is too big for the default 50 M pixel
 *   cap at any resolution above 35 dpi, so their PNG records a lower dpi than requested;
 *   `degradedPages`: 1-based pages no engine draws cleanly, kept and flagged `degraded`, or
 *   failed alone as "corrupt_page" under `rejectDamaged` / `onDamagedPage: "fail"`).
 */
export type HostileExpectation =
  | { kind: "rejected"; code: PdfErrorCode }
  | {
      kind: "processed";
      pageCount: number;
      repaired?: boolean;
      scaledDownPages?: number[];
      degradedPages?: number[];
      /** Only pdfium opens it: mupdf finds no pages. */
      onlyPdfium?: boolean;
      /** 1-based pages mupdf draws with damage and pdfium draws cleanly and more fully: pdfium's image is theirs. */
      pdfiumPages?: number[];
    };

export interface HostileFixture {
  /** File name inside the corpus directory, also a stable id for tests. */
  name: string;
  path: string;
  /** What is wrong with the file, for test names and failure messages. */
  description: string;
  expect: HostileExpectation;
}

/** The user password of `encrypted.pdf`. */
export const HOSTILE_PASSWORD = "secret";

/** The page count `billion-pages.pdf` claims; any maxPages below it rejects it as too_many_pages. */
export const CLAIMED_PAGES = 1_000_000_000;

const FONT = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";
const LETTER = [612, 792] as const;

/**
 * A page's drawing: a frame on the page box, a label and some lines of text, laid out for a
 * letter page and stretched to the page's size, so even a scaled-down render of a huge page
 * shows ink and a blank render is obvious.
 */
function pageContent(label: string, widthPt: number, heightPt: number): Buffer {
  const lines = [
    `q ${widthPt / LETTER[0]} 0 0 ${heightPt / LETTER[1]} 0 0 cm`,
    "0 0 0 RG 4 w 4 4 604 784 re S",
    `BT /F1 48 Tf 48 700 Td (${label}) Tj ET`,
    // Some bulk, so a cut in the middle of the file lands inside page objects, not the header.
    ...Array.from({ length: 12 }, (_, i) => `BT /F1 14 Tf 48 ${640 - 20 * i} Td (line ${i + 1} of ${label}) Tj ET`),
    "Q",
  ];
  return Buffer.from(lines.join("\n"), "latin1");
}

type Body = string | { dict: string; data: Uint8Array };

/**
 * An in-memory PDF: object n is bodies[n - 1]. Fixtures are a few kilobytes, and building them
 * by hand is the only way to get exactly the damage a fixture needs.
 */
function buildPdf(bodies: Body[], opts: { trailer?: string; encrypt?: Rc4Encryption } = {}): Buffer {
  const parts: Buffer[] = [Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "latin1")];
  let pos = parts[0]!.length;
  const offsets: number[] = [];
  bodies.forEach((body, i) => {
    const num = i + 1;
    offsets.push(pos);
    let bytes: Buffer;
    if (typeof body === "string") {
      bytes = Buffer.from(`${num} 0 obj\n${body}\nendobj\n`, "latin1");
    } else {
      const data = opts.encrypt && num !== opts.encrypt.objectNumber ? opts.encrypt.stream(num, body.data) : body.data;
      bytes = Buffer.concat([
        Buffer.from(`${num} 0 obj\n<< ${body.dict} /Length ${data.length} >>\nstream\n`, "latin1"),
        data,
        Buffer.from("\nendstream\nendobj\n", "latin1"),
      ]);
    }
    parts.push(bytes);
    pos += bytes.length;
  });
  const size = bodies.length + 1;
  const xref = ["xref", `0 ${size}`, "0000000000 65535 f\r", ...offsets.map((o) => `${String(o).padStart(10, "0")} 00000 n\r`)];
  const trailer = `<< /Size ${size} /Root 1 0 R ${opts.trailer ?? ""}>>`;
  parts.push(Buffer.from([...xref, "trailer", trailer, "startxref", String(pos), "%%EOF", ""].join("\n"), "latin1"));
  return Buffer.concat(parts);
}

interface PageSpec {
  widthPt?: number;
  heightPt?: number;
  /** Replaces the page's compressed content stream bytes. */
  content?: (deflated: Buffer) => Buffer;
  /** An RGB image XObject of this many pixels, drawn on the page; its data is `bytes` zeros, deflated. */
  image?: { width: number; height: number; bytes: number };
}

/**
 * Objects of a document with the catalog (1), page tree (2) and font (3) first, as most
 * producers write them, then per page its dictionary and content stream. `count` overrides the
 * page tree's /Count; `extraKids` is appended to its /Kids.
 */
function documentBodies(pages: PageSpec[], count = pages.length, extraKids = ""): Body[] {
  const kids = pages.map((_, i) => `${4 + 2 * i} 0 R`).join(" ") + extraKids;
  const bodies: Body[] = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    `<< /Type /Pages /Kids [${kids}] /Count ${count} >>`,
    FONT,
  ];
  const images: Body[] = [];
  pages.forEach((p, i) => {
    const [w, h] = [p.widthPt ?? LETTER[0], p.heightPt ?? LETTER[1]];
    let xobject = "";
    let draw = "";
    if (p.image) {
      const num = 4 + 2 * pages.length + images.length;
      images.push({
        dict: `/Type /XObject /Subtype /Image /Width ${p.image.width} /Height ${p.image.height} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode`,
        data: deflateSync(Buffer.alloc(p.image.bytes)),
      });
      xobject = ` /XObject << /Im1 ${num} 0 R >>`;
      draw = `\nq ${w / 2} 0 0 ${h / 2} ${w / 4} ${h / 4} cm /Im1 Do Q`;
    }
    bodies.push(
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${w} ${h}] /Resources << /Font << /F1 3 0 R >>${xobject} >> /Contents ${5 + 2 * i} 0 R >>`,
    );
    const deflated = deflateSync(Buffer.concat([pageContent(`Page ${i + 1}`, w, h), Buffer.from(draw, "latin1")]));
    bodies.push({ dict: "/Filter /FlateDecode", data: p.content ? p.content(deflated) : deflated });
  });
  bodies.push(...images);
  return bodies;
}

function letterPages(n: number): PageSpec[] {
  return Array.from({ length: n }, () => ({}));
}

/** An 8 × 8 PNG, encoded by mupdf (deterministic). */
function tinyPng(): Uint8Array {
  const pix = new mupdf.Pixmap(mupdf.ColorSpace.DeviceRGB, [0, 0, 8, 8], false);
  try {
    pix.clear(200);
    return pix.asPNG().slice();
  } finally {
    pix.destroy();
  }
}

/**
 * Flips bits across the middle of a deflate stream, as disk or transfer damage does: zlib
 * refuses it (a bad block, or at the latest the Adler-32 check), so the page's drawing is lost.
 */
function bitRot(deflated: Buffer): Buffer {
  const out = Buffer.from(deflated);
  for (let i = Math.floor(out.length / 4); i < out.length - 4; i += 3) out[i] = out[i]! ^ 0x5a;
  return out;
}

/**
 * Writes the hostile and broken fixture set into dir (created if missing) and says what each
 * must turn into. Deterministic and small (a few kilobytes each), so nothing binary is
 * committed: tests and end-to-end runs regenerate it.
 */
export async function generateHostileCorpus(dir: string): Promise<HostileFixture[]> {
  await mkdir(dir, { recursive: true });
  const fixtures: HostileFixture[] = [];
  const add = async (name: string, bytes: Uint8Array, description: string, expect: HostileExpectation) => {
    const path = join(dir, name);
    await writeFile(path, bytes);
    fixtures.push({ name, path, description, expect });
  };

  await add("empty.pdf", new Uint8Array(0), "zero bytes", { kind: "rejected", code: "not_pdf" });
  await add("png-named.pdf", tinyPng(), "a PNG image renamed .pdf", { kind: "rejected", code: "not_pdf" });
  await add(
    "text-named.pdf",
    Buffer.from("Quarterly report\n\nThis is plain text that someone saved with a .pdf name.\n"),
    "a text file renamed .pdf",
    { kind: "rejected", code: "not_pdf" },
  );

  {
    const bodies = documentBodies(letterPages(2));
    const enc = rc4Encryption(bodies.length + 1, HOSTILE_PASSWORD, "owner-secret");
    bodies.push(enc.dict);
    await add(
      "encrypted.pdf",
      buildPdf(bodies, { encrypt: enc, trailer: enc.trailer }),
      `two pages, RC4 40-bit, user password "${HOSTILE_PASSWORD}"`,
      { kind: "rejected", code: "encrypted" },
    );
  }

  {
    // Only an owner password (permissions), the user password empty: viewers open it without asking.
    const bodies = documentBodies(letterPages(2));
    const enc = rc4Encryption(bodies.length + 1, "", "owner-secret");
    bodies.push(enc.dict);
    await add("owner-password-only.pdf", buildPdf(bodies, { encrypt: enc, trailer: enc.trailer }), "two pages, RC4 40-bit, an owner password only", {
      kind: "processed",
      pageCount: 2,
    });
  }

  const six = buildPdf(documentBodies(letterPages(6)));
  // A download cut off halfway, inside a content stream: mupdf's repair fails on the torn object.
  await add("truncated.pdf", six.subarray(0, Math.floor(six.length / 2)), "6 pages cut off at half the file", {
    kind: "rejected",
    code: "corrupt",
  });
  // The same, cut right after an object: mupdf's repair now succeeds and the page tree still
  // lists six pages, but the objects of the last ones do not exist. Unchecked, mupdf would
  // render each of them as a blank page without complaint.
  const cut = six.lastIndexOf("endobj\n", Math.floor(six.length * 0.6)) + "endobj\n".length;
  await add("truncated-at-object.pdf", six.subarray(0, cut), "6 pages cut off after an object, 60% into the file", {
    kind: "rejected",
    code: "corrupt",
  });
  // Cut inside the cross-reference table: every object is intact, only the index is lost.
  const xrefAt = six.lastIndexOf("\nxref\n") + 1;
  await add("truncated-xref.pdf", six.subarray(0, xrefAt + 60), "6 pages cut off inside the xref table", {
    kind: "processed",
    pageCount: 6,
    repaired: true,
  });

  await add(
    "billion-pages.pdf",
    buildPdf(documentBodies(letterPages(1), CLAIMED_PAGES)),
    `one page; the page tree's /Count claims ${CLAIMED_PAGES}`,
    // Counted by its leaves, as a viewer does: the count is bounded by the file, not the claim.
    { kind: "processed", pageCount: 1 },
  );

  // Viewers show the pages the tree holds; mupdf corrects the count once it has walked the tree.
  await add("count-overstated.pdf", buildPdf(documentBodies(letterPages(2), 7)), "2 pages; /Count says 7", {
    kind: "processed",
    pageCount: 2,
  });
  // The page tree lists itself as a kid: a naive walk never ends; a viewer shows the 2 pages.
  await add(
    "page-tree-cycle.pdf",
    buildPdf(documentBodies(letterPages(2), 3, " 2 0 R")),
    "2 pages; the page tree is its own third kid (/Count 3)",
    { kind: "processed", pageCount: 2 },
  );

  await add(
    "huge-mediabox.pdf",
    buildPdf(documentBodies([{ widthPt: 14_400, heightPt: 14_400 }, {}])),
    "page 1 is 200 × 200 inches (14400 pt square), page 2 is letter",
    { kind: "processed", pageCount: 2, scaledDownPages: [1] },
  );

  {
    const three = buildPdf(documentBodies(letterPages(3)));
    // Every object moves 23 bytes down; the xref still points at the old places.
    const shifted = Buffer.concat([three.subarray(0, 9), Buffer.from("% inserted by an editor\n"), three.subarray(9)]);
    await add("xref-offsets-wrong.pdf", shifted, "3 pages; every xref offset is stale", {
      kind: "processed",
      pageCount: 3,
      repaired: true,
    });
    const at = three.lastIndexOf("\nxref\n") + 1;
    const noXref = Buffer.concat([three.subarray(0, at), Buffer.from("trailer\n<< /Root 1 0 R >>\n%%EOF\n")]);
    await add("xref-missing.pdf", noXref, "3 pages; no xref table and no startxref", {
      kind: "processed",
      pageCount: 3,
      repaired: true,
    });
  }

  // 60000 × 60000 RGB is 10.8 GB decoded, from 10 kB in the file. mupdf refuses to decode it
  // ("image is too large") and draws the page without it; pdfium cannot decode it either.
  await add(
    "image-bomb.pdf",
    buildPdf(documentBodies([{}, { image: { width: 60_000, height: 60_000, bytes: 1_000_000 } }, {}])),
    "3 pages; page 2 draws an image that claims 60000 × 60000 pixels",
    { kind: "processed", pageCount: 3, degradedPages: [2] },
  );

  await add(
    "one-broken-page.pdf",
    buildPdf(documentBodies([{}, {}, { content: bitRot }, {}, {}])),
    "5 pages; page 3's compressed content stream has flipped bits",
    { kind: "processed", pageCount: 5, degradedPages: [3] },
  );

  // A content stream that ends inside an array it never closes (as in qpdf's
  // content-stream-errors.pdf): mupdf's interpreter gives up on what it was drawing and loses the
  // page's text; pdfium draws the whole page without complaint, so pdfium's image is the page's.
  await add(
    "only-pdfium-draws.pdf",
    buildPdf(documentBodies([{}, { content: (d) => deflateSync(Buffer.concat([inflateSync(d), Buffer.from("\n[ /oops", "latin1")])) }])),
    "2 pages; page 2's content stream ends in an array it never closes",
    { kind: "processed", pageCount: 2, pdfiumPages: [2] },
  );

  {
    // An update section whose trailer gives /Prev as an array: mupdf reads only that section,
    // finds no objects and no pages; pdfium (like poppler) reads the file as a viewer would.
    const base = buildPdf(documentBodies(letterPages(1)));
    const prev = base.lastIndexOf("startxref\n") + "startxref\n".length;
    const xref = Number(base.subarray(prev).toString("latin1").split("\n")[0]);
    const update = `xref\n0 1\n0000000000 65535 f\r\ntrailer\n<< /Size 6 /Root 1 0 R /Prev [${xref}] >>\nstartxref\n${base.length}\n%%EOF\n`;
    await add("only-pdfium-opens.pdf", Buffer.concat([base, Buffer.from(update, "latin1")]), "1 page; its last trailer's /Prev is an array", {
      kind: "processed",
      pageCount: 1,
      onlyPdfium: true,
    });
  }

  {
    // The page tree's root is the page itself: no /Kids to walk. Viewers show the page.
    const bodies = documentBodies(letterPages(1));
    bodies[1] = `<< /Type /Pages /Kids [2 0 R] /Count 1 >>`;
    bodies[3] = (bodies[3] as string).replace("/Parent 2 0 R ", "");
    const onePage = buildPdf([bodies[0] as string, "<< /Type /Pages /Kids [] /Count 0 >>", ...bodies.slice(2)]);
    await add("page-outside-tree.pdf", onePage, "1 page; the page tree's /Kids is empty and the page hangs outside it", {
      kind: "processed",
      pageCount: 1,
    });
  }

  return fixtures;
}

/**
 * A small PDF whose pages' content streams each inflate to `inflatedBytes` (the page's drawing,
 * then whitespace): 96 MiB of it deflates to ~95 kB, so a 0.5 MB file can ask for gigabytes.
 * For memory tests of the converter; see README, "Memory of the render pool".
 */
export async function generateStreamBomb(path: string, opts: { pages: number; inflatedBytes: number }): Promise<{ path: string; fileBytes: number }> {
  const padding = Buffer.alloc(opts.inflatedBytes, 0x20);
  const pages: PageSpec[] = Array.from({ length: opts.pages }, (_, i) => ({
    content: () => deflateSync(Buffer.concat([pageContent(`Page ${i + 1}`, LETTER[0], LETTER[1]), Buffer.from("\n"), padding])),
  }));
  const bytes = buildPdf(documentBodies(pages));
  await writeFile(path, bytes);
  return { path, fileBytes: bytes.length };
}
