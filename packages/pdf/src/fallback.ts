// pdfium takes over a document mupdf refuses.
import { PdfError, type PdfErrorCode } from "./errors.js";
import { errorText, pathOf, type PdfSource } from "./open.js";
import { loadPdfium, PdfiumDocument } from "./pdfium.js";

// What pdfium may read better: a file mupdf finds corrupt or without pages, one it wants a
// password for (pdfium tries the empty one), one without a header. Limits and I/O are final.
const HANDED_OVER: ReadonlySet<PdfErrorCode> = new Set(["corrupt", "encrypted", "not_pdf"]);

/**
 * Opens path in pdfium after mupdf refused it with `refused`, and runs use on it. When pdfium
 * cannot open it either, or finds no pages, mupdf's error is thrown with pdfium's reason added.
 */
export async function withPdfium<T>(path: string, refused: unknown, use: (doc: PdfiumDocument) => T | Promise<T>): Promise<T> {
  const doc = await openInPdfium(path, refused);
  try {
    return await use(doc);
  } finally {
    doc.destroy();
  }
}

/** Like withPdfium, for a caller that keeps the document open (and must destroy() it). */
export async function openInPdfium(source: PdfSource, refused: unknown): Promise<PdfiumDocument> {
  if (!(refused instanceof PdfError) || !HANDED_OVER.has(refused.code)) throw refused;
  const path = pathOf(source);
  let doc: PdfiumDocument;
  try {
    doc = PdfiumDocument.open(await loadPdfium(), source);
  } catch (e) {
    throw new PdfError(refused.code, `${refused.message} (pdfium: ${errorText(e).replace(/^pdfium /, "")})`, { path, cause: refused });
  }
  if (doc.pageCount < 1) {
    doc.destroy();
    throw new PdfError(refused.code, `${refused.message} (pdfium finds no pages either)`, { path, cause: refused });
  }
  return doc;
}
